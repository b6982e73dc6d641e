"""How every packed forward reaches attention, and which attention a packed causal model runs (issue 17).

A packed forward (Bradley-Terry rows in :func:`rmforge.reward_model.packing.packed_outputs`, SFT rows in
``rmforge.train.sft``, GRPO's prefix-shared completions in ``rmforge.train.grpo_packing``) describes its
rows by per-token document and branch ids (:mod:`rmforge.reward_model.attention`). :func:`packed_attention`
turns them into the forward's keyword arguments for the model's backend, on the device ``doc`` lives on:
a dense mask under SDPA/eager, a FlexAttention ``BlockMask`` under ``rmforge_flex``, no mask and the
documents' segments under ``rmforge_varlen``, no mask under flash attention.

Which backend a packed causal model should run is :func:`decide_packed_attention`, a pure decision: on CPU
today's dense masks (fine and fastest there); on CUDA FlexAttention, else (without prefix sharing)
``rmforge_varlen``, else packing must be off: no dense ``[R, 1, W, W]`` mask is built on a GPU.
:func:`switch_packed_attention` tries the switches in that order and returns the decision.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

from rmforge.reward_model.attention import attention_inputs, hf_model, mask_backend, model_device_type
from rmforge.reward_model.flex import use_flex_attention
from rmforge.reward_model.varlen import VARLEN_IMPL, use_varlen_attention, varlen_forward

ATTENTION_KINDS = ("dense", "flex", "varlen", "position_ids", "off")
"""What :func:`decide_packed_attention` returns: ``dense`` (SDPA/eager mask, CPU), ``flex`` (BlockMask),
``varlen`` (segments, no mask), ``position_ids`` (flash attention, no mask) or ``off`` (do not pack)."""


def _mask_dtype(model) -> torch.dtype:
    try:
        dtype = next(hf_model(model).parameters()).dtype
    except StopIteration:
        return torch.float32
    return dtype if dtype.is_floating_point else torch.float32


@contextmanager
def packed_attention(model, doc: Tensor, branch: Tensor):
    """Context of one packed forward of ``model``: yields the keyword arguments to pass to it,
    ``attention_mask`` (the mask for its backend, built where ``doc`` lives, or None) and, under
    ``rmforge_varlen``, the documents' segments (:func:`rmforge.reward_model.varlen.varlen_forward`).
    ValueError for prefix sharing (branches > 1) under a backend that takes no custom mask."""
    mask = attention_inputs(model, doc, branch, _mask_dtype(model))
    if mask_backend(model) == "varlen":
        with varlen_forward(doc) as extra:
            yield {"attention_mask": None, **extra}
    else:
        yield {"attention_mask": mask}


def decide_packed_attention(device_type: str, backend: str, prefix_sharing: bool,
                            flex: tuple[bool, str] | None = None,
                            varlen: tuple[bool, str] | None = None) -> tuple[str, str]:
    """``(kind, reason)`` for packed forwards of a causal model (one of :data:`ATTENTION_KINDS`), a pure decision.

    ``backend``: the model's :func:`~rmforge.reward_model.attention.mask_backend` before any switch;
    ``prefix_sharing``: whether the rows share prefixes (branches > 1: needs a custom mask);
    ``flex`` / ``varlen``: ``(switched, why not)`` of :func:`use_flex_attention` /
    :func:`use_varlen_attention` where they were tried (None: not tried)."""
    if backend == "flex_attention":
        return "flex", "FlexAttention: a block mask built on the device, fully masked blocks skipped"
    if backend == "varlen":
        if prefix_sharing:
            return "off", f"{VARLEN_IMPL} takes no mask, so prefixes cannot be shared"
        return "varlen", f"{VARLEN_IMPL}: each document attends within itself (no mask)"
    if backend == "position_ids":
        if prefix_sharing:
            return "off", "flash attention takes no custom mask, so prefixes cannot be shared"
        return "position_ids", "flash attention: document boundaries from position_ids (no mask)"
    if device_type != "cuda":
        return "dense", f"{device_type}: a dense [rows, 1, width, width] {backend} mask (fine and fastest here)"
    if flex is not None and flex[0]:
        return "flex", "FlexAttention on CUDA: a block mask built on the device, fully masked blocks skipped"
    flex_off = f"FlexAttention is off ({flex[1] if flex is not None else 'not tried'})"
    if prefix_sharing:
        return "off", f"{flex_off}: sharing prefixes on a GPU needs it (no dense [rows, 1, width, width] mask there)"
    if varlen is not None and varlen[0]:
        return "varlen", f"{flex_off}: each document attends within itself through {VARLEN_IMPL} (no mask)"
    why = varlen[1] if varlen is not None else "not tried"
    return "off", (f"{flex_off} and {VARLEN_IMPL} is unavailable ({why}): packing must be off "
                   "(no dense [rows, 1, width, width] mask on a GPU)")


def switch_packed_attention(model, device_type: str | None = None, prefix_sharing: bool = False) -> tuple[str, str]:
    """Switch ``model`` (a causal decoder: ``*ForCausalLM`` or a decoder reward model) to the attention its
    packed forwards need on ``device_type`` (default: where its parameters are) and return
    :func:`decide_packed_attention`'s ``(kind, reason)``. On CUDA a model on SDPA/eager tries
    :func:`use_flex_attention`, then (without prefix sharing) :func:`use_varlen_attention`; elsewhere, or
    on any other backend, the model is left as it is. Never raises; on ``off`` the model keeps its backend."""
    device_type = device_type or model_device_type(model)
    backend = mask_backend(model)
    flex = varlen = None
    if device_type == "cuda" and backend in ("sdpa", "eager"):
        flex = use_flex_attention(model)
        if not flex[0] and not prefix_sharing:
            varlen = use_varlen_attention(model)
    return decide_packed_attention(device_type, backend, prefix_sharing, flex, varlen)
