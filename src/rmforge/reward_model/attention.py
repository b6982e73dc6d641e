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
* ``flash_attention_*``: no custom masks; only block-diagonal packing (``padding_free``) through
  ``position_ids`` (transformers derives the sequence boundaries), prefix sharing is unavailable.
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

logger = logging.getLogger("rmforge.reward_model")

PACKING_MODES = ("auto", "prefix_shared", "padding_free", "none")
MASK_BACKENDS = ("sdpa", "eager", "flex_attention")
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


def is_decoder_rm(model) -> bool:
    """True for a causal decoder with a ``score`` head (``*ForSequenceClassification`` of a decoder LM)."""
    hf = hf_model(model)
    cfg = hf.config
    return (hasattr(hf, "score") and not getattr(cfg, "is_encoder_decoder", False)
            and getattr(hf, "base_model_prefix", "") == "model" and cfg.model_type not in {"bert", "roberta"})


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
    """Concrete packing for ``model`` where it lives (see :func:`choose_packing`)."""
    return choose_packing(model, packing)[0]


def choose_packing(model, packing: str, device_type: str | None = None, flex_reason: str | None = None
                   ) -> tuple[str, str]:
    """Concrete packing for ``model`` on ``device_type`` (default: where its parameters are) and why.

    ``auto``: encoders and unknown decoder families get ``none``; flash attention gets ``padding_free``
    (boundaries from ``position_ids``); on CUDA, ``prefix_shared`` when the model runs FlexAttention
    (block-sparse masks), else ``none`` (plain padded rows keep SDPA's fused kernel; a dense packed
    mask on the GPU is slower: ``flex_reason`` says why FlexAttention is off); on CPU ``prefix_shared``.
    An explicit mode is kept (with a warning when it needs dense masks on a GPU); an explicit packing
    mode on an encoder, or ``prefix_shared`` under flash attention, raises ValueError."""
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
    device_type = device_type or model_device_type(model)
    if packing == "auto":
        model_type = hf_model(model).config.model_type
        if model_type not in PACKABLE_TYPES:
            return "none", f"{model_type} is not a decoder family known to pack safely"
        if flash:
            return "padding_free", f"{impl}: block-diagonal packing through position_ids (no prefix sharing)"
        if device_type == "cuda":
            if flex:
                return "prefix_shared", ("FlexAttention on CUDA: prompts encoded once, no padding, fully "
                                         "masked blocks skipped, a few static row widths")
            return "none", (f"FlexAttention is off ({flex_reason or impl}): plain padded rows keep the fused "
                            "SDPA kernel; a dense packed mask on the GPU would be slower")
        return "prefix_shared", (f"{device_type}: prompts encoded once and no padding (fastest here: "
                                 "bench/bt_throughput.py)")
    if packing == "prefix_shared" and flash:
        raise ValueError(f"packing=prefix_shared needs custom attention masks, which {impl} does not take: "
                         "load the model with attn_implementation='sdpa' or use packing=padding_free")
    if device_type == "cuda" and not flash and not flex:
        _warn_once(f"packing={packing} without FlexAttention ({flex_reason or impl}) builds dense [rows, 1, width, "
                   "width] masks on the GPU; packing=auto would use plain padded rows")
        return packing, f"packing={packing} was asked for (dense masks: FlexAttention is off)"
    return packing, f"packing={packing} was asked for"


def mask_backend(model) -> str:
    """Which mask form the model's backend takes: ``sdpa`` (bool), ``eager`` (additive float),
    ``flex_attention`` (BlockMask) or ``position_ids`` (flash attention: boundaries from positions)."""
    impl = attn_implementation(model)
    if impl.startswith("flash_attention"):
        return "position_ids"
    if impl == FLEX_IMPL:
        return "flex_attention"
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
    """The ``attention_mask`` argument for ``model``'s backend (None under flash attention)."""
    backend = mask_backend(model)
    if backend == "position_ids":
        if bool((branch > 1).any()):
            raise ValueError("flash attention cannot share prefixes (branches > 1): use packing=padding_free")
        return None
    if backend == "flex_attention":
        return block_mask(doc, branch)
    mask = dense_mask(doc, branch)
    out = additive_mask(mask, dtype) if backend == "eager" else mask
    check_mask(out, backend)
    return out
