"""Attention masks for packed reward-model forwards, per attention backend (issue 4).

A packed row holds several *documents* (one sample each); a document is a shared prefix
(branch 0) followed by one branch per response (branch 1..k). Token ``i`` may attend token ``j``
when both are in the same document, ``j <= i`` and ``j`` is in the prefix or in ``i``'s branch.
Padding gets document -1 (it attends only padding, so no softmax row is empty).

How the rule reaches the model depends on ``config._attn_implementation``:

* ``sdpa``: a boolean 4D mask ``[R, 1, W, W]`` (True = attend); transformers passes 4D masks
  through untouched (``masking_utils._preprocess_mask_arguments``). An integer mask is rejected.
* ``eager``: an additive float mask (0 / dtype min). The eager kernel *adds* the mask to the
  scores, so a 0/1 float mask silently gives wrong rewards: :func:`check_mask` refuses it.
* ``rmforge_flex`` / ``flex_attention`` (GPU, :mod:`rmforge.reward_model.flex`): a FlexAttention
  ``BlockMask`` built on the device from the same rule (fully masked blocks are skipped).
* ``rmforge_varlen`` (:mod:`rmforge.reward_model.varlen`, CUDA without FlexAttention): no mask at all;
  ``padding_free`` only, each document (and a row's padding tail) attends within itself through
  cumulative sequence lengths computed once per forward (torch's fused ``varlen_attn`` kernel in
  fp16/bf16, else one SDPA call per segment). Prefix sharing is unavailable.
* ``flash_attention_*``: no custom masks; only block-diagonal packing (``padding_free``) through
  ``position_ids`` (transformers derives the sequence boundaries), prefix sharing is unavailable.

Every packed forward (reward models, SFT, GRPO's shared prompts) gets its attention arguments from
:func:`rmforge.reward_model.packed_attention.packed_attention`. On a GPU no dense ``[R, 1, W, W]`` mask
is built: without FlexAttention a packed forward goes through ``rmforge_varlen`` (reward models:
:func:`choose_packing`, :func:`resolve_packing`; causal LMs:
:func:`rmforge.reward_model.packed_attention.switch_packed_attention`), or is not packed.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from rmforge.reward_model.flex import (  # noqa: F401 - re-exported: the FlexAttention pieces live in .flex
    FLEX_IMPL,
    FLEX_MIN_HEAD_DIM,
    block_mask,
    flex_attention_usable,
    head_dim,
    use_flex_attention,
)
from rmforge.reward_model.varlen import VARLEN_IMPL, use_varlen_attention  # noqa: F401 - re-exported

logger = logging.getLogger("rmforge.reward_model")

PACKING_MODES = ("auto", "prefix_shared", "padding_free", "none")
MASK_BACKENDS = ("sdpa", "eager", "flex_attention", "varlen")
# Decoder families whose attention is plain causal self-attention with RoPE driven by position_ids
# (no sliding window by default, no per-layer mask tricks): ``auto`` packs only these.
PACKABLE_TYPES = {"llama", "qwen2", "qwen3", "mistral", "phi3", "olmo", "olmo2", "granite", "gemma", "smollm3"}


def hf_model(model):
    """The Hugging Face ``PreTrainedModel`` inside DDP / peft wrappers."""
    model = getattr(model, "module", model)  # DDP
    get_base = getattr(model, "get_base_model", None)  # peft
    return get_base() if callable(get_base) and hasattr(model, "peft_config") else model


def attn_implementation(model) -> str:
    """The model's attention backend (``sdpa``, ``eager``, ``flex_attention``, ``flash_attention_2``...)."""
    return getattr(hf_model(model).config, "_attn_implementation", None) or "eager"


def _decoder_with(hf, heads: tuple[str, ...]) -> bool:
    cfg = hf.config
    return (any(hasattr(hf, h) for h in heads) and not getattr(cfg, "is_encoder_decoder", False)
            and getattr(hf, "base_model_prefix", "") == "model" and cfg.model_type not in {"bert", "roberta"})


def is_decoder_rm(model) -> bool:
    """True for a causal decoder with a ``score`` head (``*ForSequenceClassification`` of a decoder LM)."""
    return _decoder_with(hf_model(model), ("score",))


def is_causal_decoder(model) -> bool:
    """True for a decoder reward model (:func:`is_decoder_rm`) or a decoder LM with an ``lm_head``
    (``*ForCausalLM``): the models whose packed forwards are causal within each document."""
    return _decoder_with(hf_model(model), ("score", "lm_head"))


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def model_device_type(model) -> str:
    """``cuda`` / ``cpu`` / ... of the model's parameters (cpu for a model without any)."""
    try:
        return next(hf_model(model).parameters()).device.type
    except StopIteration:
        return "cpu"


def resolve_packing(model, packing: str) -> str:
    """Concrete packing for ``model`` where it lives (see :func:`choose_packing`). On CUDA a packed mode
    of a model on SDPA/eager attention switches it to ``rmforge_varlen`` first (no dense mask on a GPU);
    where that fails, ``none``."""
    return gpu_packed_mode(model, choose_packing(model, packing)[0], model_device_type(model))[0]


def gpu_packed_mode(model, mode: str, device_type: str) -> tuple[str, str | None]:
    """``(mode, None)``, after switching a packed ``mode`` of a model on SDPA/eager attention on CUDA to
    ``rmforge_varlen`` (no dense mask on a GPU); ``("none", why)`` where that switch fails."""
    if mode != "none" and device_type == "cuda" and mask_backend(model) in ("sdpa", "eager"):
        ok, why = use_varlen_attention(model)
        if not ok:
            return "none", why
    return mode, None


def choose_packing(model, packing: str, device_type: str | None = None, flex_reason: str | None = None,
                   varlen: tuple[bool, str] | None = None) -> tuple[str, str]:
    """Concrete packing for ``model`` on ``device_type`` (default: where its parameters are) and why.

    ``auto``: encoders and unknown decoder families get ``none``; flash attention and ``rmforge_varlen``
    get ``padding_free`` (no prefix sharing); on CUDA, ``prefix_shared`` when the model runs FlexAttention
    (block-sparse masks), else ``padding_free`` through ``rmforge_varlen`` when torch's fused varlen kernel
    can run (``varlen``: ``(usable, why not)`` from :func:`rmforge.reward_model.varlen.varlen_verdict`),
    else ``none`` (plain padded rows keep SDPA's fused kernel; ``flex_reason`` says why FlexAttention is
    off); on CPU ``prefix_shared``. An explicit mode is kept, except that without FlexAttention on CUDA
    (or under ``rmforge_varlen``) ``prefix_shared`` falls back to ``padding_free`` with one logged warning:
    on a GPU the caller runs a packed forward through ``rmforge_varlen``, never a dense mask. An explicit
    packing mode on an encoder, or ``prefix_shared`` under flash attention, raises ValueError."""
    if packing not in PACKING_MODES:
        raise ValueError(f"packing must be one of {', '.join(PACKING_MODES)}, not {packing!r}")
    if packing == "none":
        return "none", "packing=none was asked for"
    impl = attn_implementation(model)
    if not is_decoder_rm(model):
        if packing == "auto":
            return "none", f"{type(hf_model(model)).__name__} attends bidirectionally: one padded row per response"
        raise ValueError(f"packing={packing} needs a causal decoder reward model; "
                         f"{type(hf_model(model)).__name__} attends bidirectionally: use packing=none")
    flash = impl.startswith("flash_attention")
    flex = impl in (FLEX_IMPL, "flex_attention")
    on_varlen = impl == VARLEN_IMPL
    device_type = device_type or model_device_type(model)
    gpu_varlen = device_type == "cuda" and not (flash or flex or on_varlen)  # the caller switches to rmforge_varlen
    flex_off = f"FlexAttention is off ({flex_reason or impl})"
    if packing == "auto":
        model_type = hf_model(model).config.model_type
        if model_type not in PACKABLE_TYPES:
            return "none", f"{model_type} is not a decoder family known to pack safely"
        if flash:
            return "padding_free", f"{impl}: block-diagonal packing through position_ids (no prefix sharing)"
        if on_varlen:
            return "padding_free", (f"{VARLEN_IMPL}: each document attends within itself (cumulative sequence "
                                    "lengths, no mask, no prefix sharing)")
        if device_type == "cuda":
            if flex:
                return "prefix_shared", ("FlexAttention on CUDA: prompts encoded once, no padding, fully "
                                         "masked blocks skipped, a few static row widths")
            if varlen is not None and varlen[0]:
                return "padding_free", (f"{flex_off}: no padding through {VARLEN_IMPL} (torch's varlen_attn "
                                        "kernel, no mask; prefix sharing needs FlexAttention)")
            why = varlen[1] if varlen is not None else "not checked"
            return "none", (f"{flex_off} and torch's varlen_attn kernel cannot run ({why}): plain padded rows "
                            "keep the fused SDPA kernel")
        return "prefix_shared", (f"{device_type}: prompts encoded once and no padding (fastest here: "
                                 "bench/bt_throughput.py)")
    if packing == "prefix_shared" and flash:
        raise ValueError(f"packing=prefix_shared needs custom attention masks, which {impl} does not take: "
                         "load the model with attn_implementation='sdpa' or use packing=padding_free")
    if on_varlen or gpu_varlen:
        off = f"the model runs {VARLEN_IMPL}" if on_varlen else flex_off
        if packing == "prefix_shared":
            _warn_once(f"packing=prefix_shared needs FlexAttention here ({off}): falling back to "
                       f"packing=padding_free through {VARLEN_IMPL} (no dense masks; each response row is its "
                       "own document)")
            return "padding_free", (f"packing=prefix_shared was asked for; {off}: padding_free through "
                                    f"{VARLEN_IMPL} instead (no dense mask)")
        return packing, f"packing={packing} was asked for: through {VARLEN_IMPL}, no dense mask ({off})"
    return packing, f"packing={packing} was asked for"


def mask_backend(model) -> str:
    """Which mask form the model's backend takes: ``sdpa`` (bool), ``eager`` (additive float),
    ``flex_attention`` (BlockMask), ``varlen`` (no mask: segments from the documents) or
    ``position_ids`` (flash attention: boundaries from positions)."""
    impl = attn_implementation(model)
    if impl.startswith("flash_attention"):
        return "position_ids"
    if impl == FLEX_IMPL:
        return "flex_attention"
    if impl == VARLEN_IMPL:
        return "varlen"
    return impl if impl in MASK_BACKENDS else "sdpa"


def dense_mask(doc: Tensor, branch: Tensor) -> Tensor:
    """Boolean ``[R, 1, W, W]`` mask (True = attend) from per-token document and branch ids ``[R, W]``."""
    width = doc.shape[1]
    idx = torch.arange(width, device=doc.device)
    causal = idx[:, None] >= idx[None, :]
    same_doc = doc[:, :, None] == doc[:, None, :]
    seen = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    return (causal[None] & same_doc & seen)[:, None]


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """0 where ``mask`` is True, the dtype's minimum elsewhere (what the eager kernel adds to scores)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def check_mask(mask, backend: str) -> None:
    """Refuse masks the backend would misread: integer masks (SDPA raises) and 0/1 float masks under
    eager attention (added to the scores as +0/+1: every token sees every other one)."""
    if not isinstance(mask, Tensor):
        return
    if not (mask.dtype == torch.bool or mask.is_floating_point()):
        raise ValueError(f"a {mask.dtype} attention mask is not supported: use a bool mask (True = attend) "
                         "or an additive float mask (0 / -inf)")
    if backend == "eager" and mask.is_floating_point() and bool(((mask == 0) | (mask == 1)).all()) \
            and bool((mask == 1).any()):
        raise ValueError("eager attention adds the mask to the scores: a 0/1 float mask would let every token "
                         "attend everywhere; pass an additive mask (0 = attend, dtype min = masked) or a bool mask")


def attention_inputs(model, doc: Tensor, branch: Tensor, dtype: torch.dtype = torch.float32):
    """The ``attention_mask`` argument for ``model``'s backend (None under flash attention and
    ``rmforge_varlen``: :func:`rmforge.reward_model.packed_attention.packed_attention` passes the segments)."""
    backend = mask_backend(model)
    if backend in ("position_ids", "varlen"):
        if bool((branch > 1).any()):
            name = "flash attention" if backend == "position_ids" else VARLEN_IMPL
            raise ValueError(f"{name} cannot share prefixes (branches > 1): use packing=padding_free")
        return None
    if backend == "flex_attention":
        return block_mask(doc, branch)
    mask = dense_mask(doc, branch)
    out = additive_mask(mask, dtype) if backend == "eager" else mask
    check_mask(out, backend)
    return out
