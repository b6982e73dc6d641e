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
* ``flex_attention`` (GPU): a FlexAttention ``BlockMask`` built from the same rule (fully masked
  blocks are skipped); when it cannot be built, the dense boolean mask is used (SDPA semantics).
* ``flash_attention_*``: no custom masks; only block-diagonal packing (``padding_free``) through
  ``position_ids`` (transformers derives the sequence boundaries), prefix sharing is unavailable.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

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


def resolve_packing(model, packing: str) -> str:
    """Concrete packing for ``model``: ``auto`` = prefix_shared for known decoder families whose
    backend takes custom masks (padding_free under flash attention), none otherwise (encoders).
    An explicit packing mode on an encoder raises ValueError."""
    if packing not in PACKING_MODES:
        raise ValueError(f"packing must be one of {', '.join(PACKING_MODES)}, not {packing!r}")
    if packing == "none":
        return "none"
    impl = attn_implementation(model)
    if not is_decoder_rm(model):
        if packing == "auto":
            return "none"
        raise ValueError(f"packing={packing} needs a causal decoder reward model; "
                         f"{type(hf_model(model)).__name__} attends bidirectionally: use packing=none")
    flash = impl.startswith("flash_attention")
    if packing == "auto":
        if hf_model(model).config.model_type not in PACKABLE_TYPES:
            return "none"
        return "padding_free" if flash else "prefix_shared"
    if packing == "prefix_shared" and flash:
        raise ValueError(f"packing=prefix_shared needs custom attention masks, which {impl} does not take: "
                         "load the model with attn_implementation='sdpa' or use packing=padding_free")
    return packing


def mask_backend(model) -> str:
    """Which mask form the model's backend takes: ``sdpa`` (bool), ``eager`` (additive float),
    ``flex_attention`` (BlockMask) or ``position_ids`` (flash attention: boundaries from positions)."""
    impl = attn_implementation(model)
    if impl.startswith("flash_attention"):
        return "position_ids"
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


def block_mask(doc: Tensor, branch: Tensor):
    """FlexAttention ``BlockMask`` for the same rule as :func:`dense_mask`."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, kv):
        return (q >= kv) & (doc[b, q] == doc[b, kv]) & ((branch[b, kv] == 0) | (branch[b, q] == branch[b, kv]))

    rows, width = doc.shape
    return create_block_mask(mask_mod, rows, None, width, width, device=doc.device)


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
        try:
            return block_mask(doc, branch)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to the dense mask
            logger.warning("FlexAttention block mask failed (%s); using a dense boolean mask", exc)
            return dense_mask(doc, branch)
    mask = dense_mask(doc, branch)
    out = additive_mask(mask, dtype) if backend == "eager" else mask
    check_mask(out, backend)
    return out


FLEX_MIN_HEAD_DIM = 16
"""FlexAttention's Triton kernels cannot lower head dimensions under 16 (the tiny test models)."""
FLEX_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def flex_attention_usable(device_type: str, head_dim: int | None, dtype: torch.dtype, supports_flex: bool,
                          torch_version: str = torch.__version__) -> tuple[bool, str]:
    """Whether FlexAttention can run a model, and why not: a pure decision (no kernels are built).

    Needs a CUDA device, a model class that supports it, torch >= 2.5, a head dimension of at least
    :data:`FLEX_MIN_HEAD_DIM` and a float16/bfloat16/float32 model.
    """
    if device_type != "cuda":
        return False, f"FlexAttention kernels need a CUDA device, not {device_type}"
    if not supports_flex:
        return False, "the model class does not support FlexAttention"
    major, minor = (int(x) for x in torch_version.split("+")[0].split(".")[:2])
    if (major, minor) < (2, 5):
        return False, f"torch {torch_version} is older than 2.5"
    if head_dim is not None and head_dim < FLEX_MIN_HEAD_DIM:
        return False, f"head dimension {head_dim} < {FLEX_MIN_HEAD_DIM}"
    if dtype not in FLEX_DTYPES:
        return False, f"dtype {dtype} is not supported"
    return True, "ok"


def head_dim(config) -> int | None:
    """Attention head dimension of a transformers config (``head_dim`` or hidden / heads)."""
    dim = getattr(config, "head_dim", None)
    if dim:
        return int(dim)
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return hidden // heads if hidden and heads else None


def use_flex_attention(model) -> bool:
    """On CUDA, switch a decoder that supports it to FlexAttention (block-sparse packed masks);
    returns whether the model now uses it. Where :func:`flex_attention_usable` says no (CPU, head
    dim < 16, old torch...), the model is left as it is with one logged reason, never a crash."""
    hf = hf_model(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dtype = next(hf.parameters()).dtype
    except StopIteration:
        dtype = torch.float32
    ok, why = flex_attention_usable(device, head_dim(hf.config), dtype, bool(getattr(hf, "_supports_flex_attn", False)))
    if not ok:
        if device == "cuda":
            logger.warning("FlexAttention not used (%s); keeping %s", why, attn_implementation(model))
        return False
    try:
        from torch.nn.attention import flex_attention  # noqa: F401

        hf.set_attn_implementation("flex_attention")
    except Exception as exc:  # noqa: BLE001
        logger.warning("FlexAttention unavailable (%s); keeping %s", exc, attn_implementation(model))
        return False
    return True
