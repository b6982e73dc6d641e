"""Padding-free packed forwards without any attention mask: ``rmforge_varlen`` (issue 17).

Where FlexAttention cannot run on a GPU (head dimension < 16, an unsupported dtype or model class,
an old torch), a ``padding_free`` packed row would otherwise need a dense ``[R, 1, W, W]`` mask.
rmforge registers its own attention function instead, ``rmforge_varlen`` (transformers'
``AttentionInterface``): each row is cut into *segments* (its documents; a row's padding tail is a
segment of its own) and every segment attends causally within itself only. The segment boundaries
(cumulative sequence lengths over the flattened ``[R * W]`` tokens) are computed once per forward
from :attr:`PackedBatch.doc <rmforge.reward_model.packing.PackedBatch.doc>` (one host sync, none per
layer) by :func:`varlen_forward`, which passes them to every attention call as a keyword argument
(so activation checkpointing, which re-runs layers during the backward pass, sees them too) and
makes the registered mask function return None for that forward: transformers builds no mask at all
(not even its packed-sequence mask from ``position_ids``).

Kernels: on CUDA in fp16/bf16 with ``torch.nn.attention.varlen.varlen_attn`` (torch >= 2.10) one
fused flash kernel over all segments (:func:`varlen_kernel_usable`); elsewhere (CPU, fp32, an older
torch) a loop over the segments with ``scaled_dot_product_attention(is_causal=True)``: exact, no
``W x W`` mask, one kernel call per segment and layer. A layer's sliding window (``sliding_window``
keyword, e.g. Qwen2/Mistral) is honoured: a window in torch's kernel, a per-segment band mask in the
loop (only for segments longer than the window). Plain forwards of the model (padded rows with
a 2D mask, ``packing=none``) go to transformers' SDPA function unchanged. Prefix sharing needs a
custom mask and is not available here (:func:`~rmforge.reward_model.attention.choose_packing` falls
back to ``padding_free``). Any causal decoder can switch (:func:`use_varlen_attention`): decoder reward
models, and ``*ForCausalLM`` models for packed SFT on a GPU without FlexAttention
(:func:`rmforge.reward_model.packed_attention.switch_packed_attention`).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from rmforge.reward_model.flex import _same_dtype, head_dim

logger = logging.getLogger("rmforge.reward_model")

VARLEN_IMPL = "rmforge_varlen"
"""Name of rmforge's segment attention function in transformers' ``AttentionInterface``."""
SEGMENTS_KWARG = "rmforge_segments"
"""Keyword argument that carries a packed forward's :class:`Segments` down to the attention calls."""
VARLEN_DTYPES = (torch.float16, torch.bfloat16)
VARLEN_MAX_HEAD_DIM = 256
VARLEN_MIN_CAPABILITY = (8, 0)

_packed: contextvars.ContextVar = contextvars.ContextVar("rmforge_varlen_packed", default=None)
_broken: dict[str, str] = {}
_warned: set[str] = set()


@dataclass(frozen=True)
class Segments:
    """Segment boundaries of one packed ``[rows, width]`` forward."""

    rows: int
    width: int
    spans: tuple[tuple[int, int, int], ...]
    """``(row, start, end)`` of every segment, in token order."""
    cu_seqlens: Tensor
    """int32 ``[len(spans) + 1]`` cumulative offsets in the flattened tokens, on the batch's device."""
    max_len: int

    @property
    def tokens(self) -> int:
        return self.rows * self.width


def segments(doc: Tensor) -> Segments:
    """The segments of packed rows with document ids ``doc`` ``[R, W]`` (-1 = padding): runs of equal
    ids within a row (one host transfer of ``doc``)."""
    rows, width = doc.shape
    host = doc.detach().to("cpu")
    starts = torch.ones(rows, width, dtype=torch.bool)
    starts[:, 1:] = host[:, 1:] != host[:, :-1]
    r, c = starts.nonzero(as_tuple=True)
    r, c = r.tolist(), c.tolist()
    spans = tuple((row, col, c[i + 1] if i + 1 < len(c) and r[i + 1] == row else width)
                  for i, (row, col) in enumerate(zip(r, c)))
    cu = [row * width + start for row, start, _ in spans] + [rows * width]
    max_len = max(end - start for _, start, end in spans)
    return Segments(rows, width, spans, torch.tensor(cu, dtype=torch.int32).to(doc.device), max_len)


@contextmanager
def varlen_forward(doc: Tensor):
    """Context of one packed forward under ``rmforge_varlen``: yields the keyword arguments to pass to
    the model (the :class:`Segments`), and transformers' mask creation returns None inside it."""
    segs = segments(doc)
    token = _packed.set(segs)
    try:
        yield {SEGMENTS_KWARG: segs}
    finally:
        _packed.reset(token)


def _varlen_fn():
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def varlen_kernel_usable(device_type: str, dtype: torch.dtype, head_dim: int | None, has_kernel: bool,
                         capability: tuple[int, int] | None = None) -> tuple[bool, str]:
    """Whether torch's fused ``varlen_attn`` (flash) kernel can run a forward, and why not: a pure
    decision. Needs CUDA with compute capability >= 8.0, ``torch.nn.attention.varlen.varlen_attn``
    (torch >= 2.10), an fp16/bf16 forward and a head dimension of at most 256. Where it cannot,
    ``rmforge_varlen`` still runs, one SDPA call per segment."""
    if device_type != "cuda":
        return False, f"torch's varlen_attn kernel needs a CUDA device, not {device_type}"
    if not has_kernel:
        return False, f"torch {torch.__version__} has no torch.nn.attention.varlen.varlen_attn (torch >= 2.10)"
    if capability is not None and tuple(capability) < VARLEN_MIN_CAPABILITY:
        return False, f"compute capability {capability[0]}.{capability[1]} < 8.0 (flash kernels)"
    if dtype not in VARLEN_DTYPES:
        return False, f"varlen_attn needs fp16/bf16, the forward runs in {dtype}"
    if head_dim is not None and head_dim > VARLEN_MAX_HEAD_DIM:
        return False, f"head dimension {head_dim} > {VARLEN_MAX_HEAD_DIM}"
    return True, "ok"


def _kernel_here(device_type: str, dtype: torch.dtype, dim: int | None, device=None) -> tuple[bool, str]:
    """:func:`varlen_kernel_usable` with this machine's kernel and ``device``'s compute capability."""
    capability = torch.cuda.get_device_capability(device) if device_type == "cuda" else None
    return varlen_kernel_usable(device_type, dtype, dim, _varlen_fn() is not None, capability)


def varlen_verdict(model, dtype: torch.dtype | None = None) -> tuple[bool, str]:
    """:func:`varlen_kernel_usable` for ``model`` on this machine's GPU; ``dtype``: the forward's compute
    dtype (the autocast dtype), default the model's parameter dtype."""
    from rmforge.reward_model.attention import hf_model

    hf = hf_model(model)
    if dtype is None:
        try:
            dtype = next(hf.parameters()).dtype
        except StopIteration:
            dtype = torch.float32
    return _kernel_here("cuda" if torch.cuda.is_available() else "cpu", dtype, head_dim(hf.config))


@lru_cache(maxsize=32)
def _fused_ok(device: torch.device, dtype: torch.dtype, dim: int) -> bool:
    """Whether a forward on ``device`` runs torch's fused kernel (cached per device, dtype and head dim)."""
    return _kernel_here(device.type, dtype, dim, device)[0]


@lru_cache(maxsize=1)
def _kernel_params() -> frozenset:
    fn = _varlen_fn()
    return frozenset(inspect.signature(fn).parameters) if fn is not None else frozenset()


def _fused(query: Tensor, key: Tensor, value: Tensor, segs: Segments, scaling: float | None,
           causal: bool, window: int | None) -> Tensor:
    """torch's varlen flash kernel on ``[tokens, heads, dim]`` inputs (torch 2.10 and later signatures);
    ``window``: a sliding window (the query and the ``window - 1`` tokens before it)."""
    params = _kernel_params()
    kwargs: dict = {}
    if "window_size" in params:  # torch >= 2.11: causal is a (-1, 0) window
        kwargs["window_size"] = (window - 1 if window else -1, 0) if causal else (-1, -1)
    else:  # torch 2.10 (no windows: the caller loops instead)
        kwargs["is_causal"] = causal
    heads, kv_heads = query.shape[1], key.shape[1]
    if heads != kv_heads:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            key, value = (t.repeat_interleave(heads // kv_heads, dim=1) for t in (key, value))
    if scaling is not None:
        if "scale" in params:
            kwargs["scale"] = scaling
        else:  # the kernel's default scale is 1 / sqrt(dim)
            query = query * (scaling * math.sqrt(query.shape[-1]))
    return _varlen_fn()(query, key, value, segs.cu_seqlens, segs.cu_seqlens, segs.max_len, segs.max_len, **kwargs)


def _segment_loop(query: Tensor, key: Tensor, value: Tensor, segs: Segments, scaling: float | None,
                  dropout: float, causal: bool, window: int | None) -> Tensor:
    """One SDPA call per segment on ``[B, H, S, D]`` inputs; returns ``[B, H, S, D]``. A segment longer
    than a sliding ``window`` gets its own ``[L, L]`` band mask."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    heads, kv_heads = query.shape[1], key.shape[1]
    if heads != kv_heads:
        key, value = (t.repeat_interleave(heads // kv_heads, dim=1) for t in (key, value))
    rows: list[list[Tensor]] = [[] for _ in range(segs.rows)]
    for row, start, end in segs.spans:
        q, k, v = (t[row:row + 1, :, start:end] for t in (query, key, value))
        if causal and window and end - start > window:
            idx = torch.arange(end - start, device=q.device)
            back = idx[:, None] - idx[None, :]
            band = (back >= 0) & (back < window)
            rows[row].append(sdpa(q, k, v, attn_mask=band, dropout_p=dropout, scale=scaling))
        else:
            rows[row].append(sdpa(q, k, v, dropout_p=dropout, is_causal=causal, scale=scaling))
    return torch.cat([torch.cat(parts, dim=2) for parts in rows], dim=0)


def rmforge_varlen_attention(module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling=None,
                             dropout: float = 0.0, **kwargs):
    """transformers attention function (``[B, H, S, D]`` in, ``[B, S, H, D]`` out): attention within the
    segments of a packed forward (:func:`varlen_forward`), transformers' SDPA function otherwise."""
    segs = kwargs.pop(SEGMENTS_KWARG, None)
    if segs is None:  # a plain padded forward (packing=none): SDPA as usual
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    if attention_mask is not None:
        raise ValueError(f"{VARLEN_IMPL}: a packed forward takes no attention mask (its segments are the mask)")
    batch, heads, length, dim = query.shape
    if batch * length != segs.tokens:
        raise ValueError(f"{VARLEN_IMPL}: segments of {segs.rows} x {segs.width} tokens for a {batch} x {length} "
                         "forward")
    query, key, value = _same_dtype(query, key, value)
    causal = bool(getattr(module, "is_causal", True))
    dropout = dropout if module.training else 0.0
    window = kwargs.get("sliding_window")
    window = int(window) if window and segs.max_len > window else None
    device = query.device
    if _fused_ok(device, query.dtype, dim) and str(device) not in _broken \
            and (window is None or "window_size" in _kernel_params()):
        if dropout:
            raise ValueError(f"{VARLEN_IMPL} (torch's varlen_attn kernel) has no attention dropout: set the "
                             "model's attention_dropout to 0")
        q, k, v = (t.transpose(1, 2).reshape(batch * length, t.shape[1], dim) for t in (query, key, value))
        try:
            out = _fused(q, k, v, segs, scaling, causal, window)
            return out.view(batch, length, heads, dim), None
        except (RuntimeError, ValueError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            _broken[str(device)] = str(exc)
            logger.warning("torch's varlen_attn kernel failed (%s); %s continues with one SDPA call per segment",
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__, VARLEN_IMPL)
    out = _segment_loop(query, key, value, segs, scaling, dropout, causal, window)
    return out.transpose(1, 2).contiguous(), None


def varlen_mask(*args, **kwargs):
    """Mask function of ``rmforge_varlen`` (transformers' ``AttentionMaskInterface``): None inside a
    packed forward (no mask is built), transformers' SDPA mask otherwise (plain padded forwards)."""
    if _packed.get() is not None:
        return None
    from transformers import masking_utils

    return masking_utils.sdpa_mask(*args, **kwargs)


def register() -> None:
    """Register :func:`rmforge_varlen_attention` and :func:`varlen_mask` as ``rmforge_varlen`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN_IMPL, rmforge_varlen_attention)
    AttentionMaskInterface.register(VARLEN_IMPL, varlen_mask)


def use_varlen_attention(model) -> tuple[bool, str]:
    """Switch a causal decoder (a decoder reward model or a ``*ForCausalLM``) to ``rmforge_varlen``;
    returns whether it now uses it and why not. Idempotent; never raises: on failure the model keeps
    its backend, with one logged warning."""
    from rmforge.reward_model.attention import attn_implementation, hf_model, is_causal_decoder

    if attn_implementation(model) == VARLEN_IMPL:
        return True, "ok"
    hf = hf_model(model)
    if not is_causal_decoder(model):
        return False, f"{type(hf).__name__} is not a causal decoder (a decoder reward model or a causal LM)"
    try:
        register()
        hf.set_attn_implementation(VARLEN_IMPL)
    except Exception as exc:  # noqa: BLE001 - an old transformers or an odd model class: keep the backend
        why = f"{VARLEN_IMPL} unavailable: {exc}"
        if why not in _warned:
            _warned.add(why)
            logger.warning("%s; keeping %s", why, attn_implementation(model))
        return False, why
    return True, "ok"
