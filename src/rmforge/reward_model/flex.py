"""FlexAttention for packed reward-model forwards on the GPU (issue 17).

transformers' own ``flex_attention`` backend compiles its kernel in a process-wide singleton that is
rebuilt whenever the model switches between training and evaluation, and lets the compiler go
dynamic after the second row width. Packed rows here come in a few fixed widths
(:mod:`rmforge.reward_model.shapes`), so rmforge registers its own attention function,
``rmforge_flex`` (transformers' ``AttentionInterface``): one ``torch.compile(flex_attention,
dynamic=False)`` kernel for the process, specialised once per row shape (:func:`run_kernel`: validation
without autograd reuses the training specialisation), and a block
mask built on the device from per-block document/branch summaries (:func:`block_layout`: nothing
compiled, no ``[W, W]`` mask, no host sync). :func:`compiles` counts the kernel's specialisations:
the ``compiles`` count of the trainer's start/end events.

Where FlexAttention cannot run (:func:`flex_attention_usable`: no CUDA, a model class without
support, torch < 2.5, head dimension < 16 as in the tiny test models, an unsupported dtype) the model
keeps its backend, with one logged reason, and packing falls back (:func:`choose_packing`).
On CPU the same function runs eagerly (tests: it equals the dense SDPA rule).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

logger = logging.getLogger("rmforge.reward_model")

FLEX_IMPL = "rmforge_flex"
"""Name of rmforge's FlexAttention function in transformers' ``AttentionInterface``."""
FLEX_MIN_HEAD_DIM = 16
"""FlexAttention's Triton kernels cannot lower head dimensions under 16 (the tiny test models)."""
FLEX_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BLOCK = 128
"""FlexAttention's block size: row widths are multiples of it."""

_kernel: dict[str, object] = {}
_seen: dict[str, set] = {"attention": set()}


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


def _compiled(device_type: str) -> bool:
    return device_type == "cuda"


def kernel(device_type: str):
    """The process's FlexAttention kernel for a device type: compiled once (``dynamic=False``) for CUDA,
    eager elsewhere (CPU tests)."""
    if device_type not in _kernel:
        from torch.nn.attention.flex_attention import flex_attention

        _kernel[device_type] = torch.compile(flex_attention, dynamic=False) if _compiled(device_type) \
            else flex_attention
    return _kernel[device_type]


def _note(kind: str, key: tuple, device_type: str) -> None:
    if _compiled(device_type):
        _seen[kind].add(key)


def compiles() -> int:
    """Kernel specialisations so far in this process (one per distinct row shape and dtype, any grad mode;
    the block masks are built without compiling); 0 where nothing is compiled (CPU)."""
    return len(_seen["attention"])


def reset_compiles() -> None:
    """Forget the shapes seen (tests; a new run in the same process keeps the compiled kernel)."""
    for seen in _seen.values():
        seen.clear()


def rmforge_flex_attention(module, query: Tensor, key: Tensor, value: Tensor, attention_mask, scaling=None,
                           dropout: float = 0.0, **kwargs):
    """transformers attention function (``[B, H, S, D]`` in, ``[B, S, H, D]`` out): FlexAttention over a
    packed forward's ``BlockMask``, transformers' SDPA function for any other mask (plain padded rows)."""
    from torch.nn.attention.flex_attention import BlockMask

    if not isinstance(attention_mask, BlockMask):  # a plain padded forward (packing=none): SDPA as usual
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    if dropout and module.training:
        raise ValueError(f"{FLEX_IMPL} has no attention dropout: set the model's attention_dropout to 0")
    query, key, value = _same_dtype(query, key, value)
    heads, kv_heads = query.shape[1], key.shape[1]
    gqa = heads != kv_heads
    if gqa and heads & (heads - 1):  # grouped heads need a power-of-two head count (SmolLM2-135M: 9 and 3)
        key, value = (t.repeat_interleave(heads // kv_heads, dim=1) for t in (key, value))
        gqa = False
    device = query.device.type
    _note("attention", (tuple(query.shape), tuple(key.shape), query.dtype), device)
    if torch.is_grad_enabled():
        module._rmforge_trained = True  # this layer trains: its validation passes reuse the training kernel
    out = run_kernel(device, query, key, value, getattr(module, "_rmforge_trained", False), block_mask=attention_mask,
                     scale=scaling, enable_gqa=gqa)
    return out.transpose(1, 2).contiguous(), None


def run_kernel(device_type: str, query: Tensor, key: Tensor, value: Tensor, trainable: bool = True,
               **options) -> Tensor:
    """Call the process's kernel so that each row shape specialises it once, whatever the grad mode.

    Dynamo guards a compiled function on the grad mode and on each input's ``requires_grad``: a
    validation pass under ``no_grad`` (or a frozen base under LoRA, where q or k need no gradient) would
    compile a second kernel per width. The compiled kernel therefore always runs with autograd on and
    inputs that require grad; without autograd the output is detached at once (the small autograd
    record of one attention call is freed with it). ``trainable=False`` (a layer that has not run with autograd
    in this process: the scorer of ``evaluate`` and ``serve``) without autograd calls the kernel as it
    is, as do eager kernels (CPU)."""
    fn = kernel(device_type)
    if not _compiled(device_type) or not (trainable or torch.is_grad_enabled()):
        return fn(query, key, value, **options)
    grad = torch.is_grad_enabled()
    with torch.enable_grad():
        inputs = [t if grad and t.requires_grad else t.detach().requires_grad_() for t in (query, key, value)]
        out = fn(*inputs, **options)
    return out if grad else out.detach()


def _same_dtype(*tensors: Tensor) -> tuple[Tensor, ...]:
    """FlexAttention needs one dtype: under autocast, RoPE leaves q/k in fp32 next to a bf16 v."""
    device = tensors[0].device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    elif len({t.dtype for t in tensors}) > 1:
        dtype = tensors[-1].dtype
    else:
        return tensors
    return tuple(t.to(dtype) for t in tensors)


def register() -> None:
    """Register :func:`rmforge_flex_attention` as ``rmforge_flex`` with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(FLEX_IMPL, rmforge_flex_attention)
    # plain forwards get SDPA's masks; packed forwards pass their BlockMask, which transformers keeps as is
    AttentionMaskInterface.register(FLEX_IMPL, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


def block_mask(doc: Tensor, branch: Tensor):
    """FlexAttention ``BlockMask`` of the packed rule (same document, causal, prefix or own branch),
    built where ``doc`` lives without compiling anything and without a ``[W, W]`` mask: the block
    sparsity follows from per-block document and branch ranges (:func:`block_layout`), the rule itself
    runs inside the partial blocks as the ``mask_mod``."""
    from torch.nn.attention.flex_attention import BlockMask

    def mask_mod(b, h, q, kv):
        return (q >= kv) & (doc[b, q] == doc[b, kv]) & ((branch[b, kv] == 0) | (branch[b, q] == branch[b, kv]))

    width = doc.shape[1]
    partial, full = block_layout(doc, branch)
    kv_num, kv_idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=BLOCK, mask_mod=mask_mod,
                                    seq_lengths=(width, width))


def block_layout(doc: Tensor, branch: Tensor, block: int = BLOCK) -> tuple[Tensor, Tensor]:
    """``(partial, full)`` boolean ``[R, n, n]`` block maps (query block, key block) of the packed rule for
    rows whose documents are contiguous runs with non-decreasing branches (what
    :func:`rmforge.reward_model.packing.pack` builds); exactly the blocks the dense rule needs.

    A key block before the query block can only share a document with it when the document runs from
    one into the other: the key block's last document is the query block's first. Within that document
    the key block's branches ``[a, b]`` come before the query block's ``[c, d]`` (``b <= c``): some token
    attends when ``a == 0`` (a prefix key) or ``b == c`` (a shared branch), every token when both blocks
    lie in the document and ``b == 0``, or ``c == d == b`` with keys only in ``b`` and the prefix. The diagonal is partial (causal). Tensor
    ops on ``[R, n]`` summaries only: no ``[W, W]`` mask, nothing compiled, no host sync.
    """
    rows, width = doc.shape
    n = -(-width // block)
    extra = n * block - width
    if extra:  # the last block's missing tokens repeat the row's last one: the summaries stay the same
        doc = torch.cat([doc, doc[:, -1:].expand(rows, extra)], 1)
        branch = torch.cat([branch, branch[:, -1:].expand(rows, extra)], 1)
    d, b = doc.view(rows, n, block), branch.view(rows, n, block)
    first, last = d[..., 0], d[..., -1]
    big = torch.iinfo(b.dtype).max
    in_first, in_last = d == first[..., None], d == last[..., None]
    q_lo = torch.where(in_first, b, big).amin(-1)[:, :, None]  # the query block's first document's branches
    q_hi = torch.where(in_first, b, -1).amax(-1)[:, :, None]
    kv_lo = torch.where(in_last, b, big).amin(-1)[:, None, :]  # the key block's last document's branches
    kv_hi = torch.where(in_last, b, -1).amax(-1)[:, None, :]
    one_doc = first == last
    earlier = torch.ones(n, n, dtype=torch.bool, device=doc.device).tril(-1)
    shared = earlier & (last[:, None, :] == first[:, :, None])
    attends = shared & ((kv_lo == 0) | (kv_hi >= q_lo))
    # the queries' one branch c = the keys' last one, and the keys hold only c and the prefix (branches 0..b)
    single = (q_lo == q_hi) & (kv_hi == q_lo) & ((kv_lo == kv_hi) | ((kv_lo == 0) & (kv_hi == 1)))
    full = attends & one_doc[:, :, None] & one_doc[:, None, :] & ((kv_hi == 0) | single)
    partial = (attends & ~full) | torch.eye(n, dtype=torch.bool, device=doc.device)
    return partial, full


def _ordered(blocks: Tensor) -> tuple[Tensor, Tensor]:
    """BlockMask's ``(num_blocks [R, 1, n], indices [R, 1, n, n])`` of a boolean ``[R, n, n]`` map: the
    selected key blocks first, in ascending order."""
    num = blocks.sum(-1, dtype=torch.int32)
    idx = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return num[:, None].contiguous(), idx[:, None].contiguous()


def use_flex_attention(model) -> tuple[bool, str]:
    """On CUDA, switch a decoder that supports it to ``rmforge_flex``; returns whether it now uses it
    and why not. Where :func:`flex_attention_usable` says no (CPU, head dim < 16, old torch...), the
    model is left as it is, with one logged warning on CUDA, never a crash."""
    from rmforge.reward_model.attention import attn_implementation, hf_model

    hf = hf_model(model)
    if attn_implementation(model) in (FLEX_IMPL, "flex_attention"):
        return True, "ok"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dtype = next(hf.parameters()).dtype
    except StopIteration:
        dtype = torch.float32
    ok, why = flex_attention_usable(device, head_dim(hf.config), dtype, bool(getattr(hf, "_supports_flex_attn", False)))
    if not ok:
        if device == "cuda":
            logger.warning("FlexAttention not used (%s); keeping %s", why, attn_implementation(model))
        return False, why
    try:
        register()
        hf.set_attn_implementation(FLEX_IMPL)
    except Exception as exc:  # noqa: BLE001 - an old transformers or an odd model class: keep the backend
        logger.warning("FlexAttention unavailable (%s); keeping %s", exc, attn_implementation(model))
        return False, f"FlexAttention unavailable: {exc}"
    return True, "ok"
