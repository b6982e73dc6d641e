"""The packed reward-model forward: batched scoring of encoded samples, shared by training
(validation), evaluation and serving.

Rows are sorted by length before batching (less padding, higher throughput) and the
rewards are returned in the original order, so scores never depend on batch composition.
``packing`` (decoders, see :mod:`rmforge.reward_model.packing`): ``prefix_shared`` encodes each sample's
prompt once, ``padding_free`` packs rows without padding, ``auto`` picks for the model (none for
encoders); the rewards equal the unpacked ones to float rounding. Default ``none``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from rmforge.reward_model.attention import mask_backend, resolve_packing
from rmforge.reward_model.batching import collate
from rmforge.reward_model.packing import doc_tokens, pack, packed_outputs
from rmforge.reward_model.shapes import geometric_widths, width_for
from rmforge.reward_model.tokenize import Encoded, EncodedSample


@torch.no_grad()
def model_outputs(model, encodings: Sequence[Encoded], pad_id: int, batch_size: int = 32, device=None,
                  autocast=None, packing: str = "none", progress=None, widths: Sequence[int] | None = None
                  ) -> list[list[float]]:
    """All head outputs of every encoded row (``[num_labels]`` each), in input order. Rows are
    independent here, so any packing other than ``none`` means ``padding_free``. ``progress``: called
    with the number of rows after each forward (the batches are the same with or without it)."""
    if resolve_packing(model, packing) != "none":
        return _packed_outputs(model, [[e] for e in encodings], pad_id, batch_size, device, autocast, False,
                               progress, widths)
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].input_ids))
    out: list[list[float]] = [[math.nan]] * len(encodings)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([encodings[i] for i in idx], pad_id).items()}
            with autocast() if autocast is not None else _null():
                logits = model(**batch).logits
            for i, row in zip(idx, logits.float().tolist()):
                out[i] = row
            if progress is not None:
                progress(len(idx))
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def _packed_outputs(model, groups: Sequence[Sequence[Encoded]], pad_id: int, batch_size: int, device,
                    autocast, share: bool, progress=None, widths: Sequence[int] | None = None) -> list[list[float]]:
    """Head outputs of every row of ``groups`` (flattened, input order), ``batch_size`` groups per
    packed forward, groups sorted by laid-out length. Under FlexAttention each forward is one row of a
    width from ``widths`` (default :data:`INFER_WIDTHS`; the trainer passes its run's widths, so its
    validation reuses the training shapes) of at most the largest width's tokens."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    sizes = [doc_tokens(g, share) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: sizes[i])
    starts = [0]
    for g in groups:
        starts.append(starts[-1] + len(g))
    out: list[list[float]] = [[math.nan]] * starts[-1]
    static = mask_backend(model) == "flex_attention"  # one row a forward, of a few fixed widths
    try:
        plan = list(widths) if widths else INFER_WIDTHS
        for idx in _batches(order, sizes, batch_size, plan[-1] if static else None):
            width = width_for(sum(sizes[i] for i in idx), plan) if static else None
            batch = pack([groups[i] for i in idx], pad_id, share, row_tokens=width).to(device)
            with autocast() if autocast is not None else _null():
                rows = packed_outputs(model, batch).float().tolist()
            slots = [starts[i] + k for i in idx for k in range(len(groups[i]))]
            for slot, row in zip(slots, rows):
                out[slot] = row
            if progress is not None:
                progress(len(slots))
    finally:
        model.train(was_training)
    return out


INFER_ROW_TOKENS = 16384
"""Under FlexAttention (GPU), a scoring forward is one packed row of at most this many tokens (unless one
sample is longer), with a width from :data:`INFER_WIDTHS`: evaluation and serving share a few shapes,
so the compiled kernel is specialised a bounded number of times per process."""
INFER_WIDTHS = geometric_widths(INFER_ROW_TOKENS, 1024)


def _batches(order: Sequence[int], sizes: Sequence[int], batch_size: int, max_tokens: int | None):
    """Consecutive groups of ``order``: at most ``batch_size`` each and, with ``max_tokens``, at most that
    many laid-out tokens (a longer group goes alone)."""
    batch: list[int] = []
    used = 0
    for i in order:
        if batch and (len(batch) == batch_size or (max_tokens and used + sizes[i] > max_tokens)):
            yield batch
            batch, used = [], 0
        batch.append(i)
        used += sizes[i]
    if batch:
        yield batch


def reward_weights(model) -> list[float] | None:
    """Attribute weights saved in the model config by the pointwise trainer (None = single output)."""
    return getattr(model.config, "rmforge_reward_weights", None)


def _rewards(model, rows: list[list[float]]) -> list[float]:
    weights = reward_weights(model)
    if weights:
        return [sum(w * v for w, v in zip(weights, row)) for row in rows]
    return [row[0] for row in rows]


def score_encodings(model, encodings: Sequence[Encoded], pad_id: int, batch_size: int = 32,
                    device=None, autocast=None, packing: str = "none", progress=None) -> list[float]:
    """Reward of every encoded row, in input order: output 0, or the weighted attribute sum."""
    return _rewards(model, model_outputs(model, encodings, pad_id, batch_size, device, autocast, packing, progress))


def score_samples(model, samples: Sequence[EncodedSample], pad_id: int, batch_size: int = 32,
                  device=None, autocast=None, packing: str = "none", progress=None,
                  widths: Sequence[int] | None = None) -> list[list[float]]:
    """Rewards per sample (one per response: chosen/rejected, candidates, or the single response).
    ``batch_size`` counts samples per forward pass when packed, rows otherwise; ``progress`` is called
    with the responses scored by each forward; ``widths``: the static row widths under FlexAttention."""
    mode = resolve_packing(model, packing)
    if mode == "none":
        flat = [e for s in samples for e in s.encodings]
        rewards = score_encodings(model, flat, pad_id, batch_size, device, autocast, progress=progress)
    else:
        rewards = _rewards(model, _packed_outputs(model, [s.encodings for s in samples], pad_id, batch_size,
                                                  device, autocast, mode == "prefix_shared", progress, widths))
    out, pos = [], 0
    for s in samples:
        out.append(rewards[pos:pos + len(s.encodings)])
        pos += len(s.encodings)
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
