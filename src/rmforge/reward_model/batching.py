"""Padding and batch builders for encoded reward data (issue 3).

* :func:`collate`: right-padded ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``).
* :func:`pair_batch`: rows ``[chosen_0 .. chosen_{B-1}, rejected_0 .. rejected_{B-1}]``, so the
  rewards split as ``r[:B], r[B:]`` (``torch.chunk(r, 2)``, TRL's layout); meta ``margin`` (0 when
  the pair has none), ``tie``.
* :func:`nway_batch`: all candidates flattened sample by sample; meta ``index``/``slot`` (sample
  position and candidate position of each row), ``ranks`` ``[B, N]`` and ``mask`` ``[B, N]``
  (:func:`unflatten` puts row rewards into ``[B, N]``).
* :func:`pointwise_batch`: one row per sample; meta ``targets`` ``[B, A]`` with NaN for missing.

* :func:`plain_rows` / :func:`length_buckets`: the rows of the builders above (same order) and a cut of
  them into groups of similar length, each padded on its own (fewer padding slots, one forward each).

* :func:`packed_batch`: the same meta with a :class:`~rmforge.reward_model.packing.PackedBatch` (decoders,
  ``prefix_shared`` / ``padding_free``); :func:`batch_order` puts its per-response outputs (sample
  order) into the row order of the builders above, so the losses read them the same way.

Every meta also has ``sample_index`` (dataset indices). Ordering by length is the sampler's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rmforge.reward_model.packing import MODES, PackedBatch, pack
from rmforge.reward_model.tokenize import Encoded, EncodedSample

__all__ = ["batch_order", "collate", "length_buckets", "nway_batch", "packed_batch", "pair_batch", "plain_rows",
           "pointwise_batch", "unflatten"]


def collate(encodings: Sequence[Encoded], pad_id: int, pad_to_multiple_of: int | None = None) -> dict[str, Tensor]:
    """Right-padded long tensors ``[N, L]``: ``input_ids``, ``attention_mask`` and, when the
    encodings carry them, ``token_type_ids`` (padded with 0)."""
    if not encodings:
        raise ValueError("collate needs at least one encoding")
    lens = [len(e.input_ids) for e in encodings]
    width = max(lens)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.tensor([e.input_ids + [pad_id] * (width - n) for e, n in zip(encodings, lens)], dtype=torch.long)
    mask = (torch.arange(width)[None, :] < torch.tensor(lens)[:, None]).long()
    out = {"input_ids": ids, "attention_mask": mask}
    has_types = [e.token_type_ids is not None for e in encodings]
    if any(has_types):
        if not all(has_types):
            raise ValueError("some encodings have token_type_ids and others not")
        out["token_type_ids"] = torch.tensor([e.token_type_ids + [0] * (width - n)
                                              for e, n in zip(encodings, lens)], dtype=torch.long)
    return out


def _check(samples: Sequence[EncodedSample], kind: str) -> None:
    if not samples:
        raise ValueError(f"{kind}_batch needs at least one sample")
    bad = [s.kind for s in samples if s.kind != kind]
    if bad:
        raise ValueError(f"{kind}_batch got a {bad[0]} sample")


def pair_batch(samples: Sequence[EncodedSample], pad_id: int, pad_to_multiple_of: int | None = None
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Batch ``[all chosen..., all rejected...]`` and meta ``margin`` [B] float, ``tie`` [B] bool."""
    _check(samples, "pair")
    rows = [s.encodings[0] for s in samples] + [s.encodings[1] for s in samples]
    return collate(rows, pad_id, pad_to_multiple_of), _pair_meta(samples)


def _pair_meta(samples: Sequence[EncodedSample]) -> dict[str, Tensor]:
    return {"margin": torch.tensor([s.margin or 0.0 for s in samples], dtype=torch.float32),
            "tie": torch.tensor([s.tie for s in samples], dtype=torch.bool),
            "sample_index": torch.tensor([s.index for s in samples], dtype=torch.long)}


def nway_batch(samples: Sequence[EncodedSample], pad_id: int, pad_to_multiple_of: int | None = None
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Flattened candidates; meta ``index``/``slot`` [R], ``ranks`` [B, N] (0 = padding), ``mask`` [B, N]."""
    _check(samples, "nway")
    rows = [e for s in samples for e in s.encodings]
    return collate(rows, pad_id, pad_to_multiple_of), _nway_meta(samples)


def _nway_meta(samples: Sequence[EncodedSample]) -> dict[str, Tensor]:
    n = max(len(s.encodings) for s in samples)
    index, slot = [], []
    ranks = torch.zeros(len(samples), n, dtype=torch.long)
    mask = torch.zeros(len(samples), n, dtype=torch.bool)
    for b, s in enumerate(samples):
        k = len(s.encodings)
        index += [b] * k
        slot += range(k)
        ranks[b, :k] = torch.tensor(s.ranks, dtype=torch.long)
        mask[b, :k] = True
    return {"index": torch.tensor(index, dtype=torch.long), "slot": torch.tensor(slot, dtype=torch.long),
            "ranks": ranks, "mask": mask, "sample_index": torch.tensor([s.index for s in samples], dtype=torch.long)}


def unflatten(rewards: Tensor, meta: dict[str, Tensor]) -> Tensor:
    """Row rewards ``[R]`` (or ``[R, 1]``) of :func:`nway_batch` as ``[B, N]`` (0 at padding; keeps autograd)."""
    r = rewards.reshape(-1)
    out = r.new_zeros(meta["mask"].shape)
    return out.index_put((meta["index"].to(r.device), meta["slot"].to(r.device)), r)


def pointwise_batch(samples: Sequence[EncodedSample], pad_id: int, pad_to_multiple_of: int | None = None
                    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One row per sample; meta ``targets`` [B, A] float32 (NaN = missing attribute)."""
    _check(samples, "pointwise")
    return collate([s.encodings[0] for s in samples], pad_id, pad_to_multiple_of), _pointwise_meta(samples)


def _pointwise_meta(samples: Sequence[EncodedSample]) -> dict[str, Tensor]:
    return {"targets": torch.tensor([s.scores for s in samples], dtype=torch.float32),
            "sample_index": torch.tensor([s.index for s in samples], dtype=torch.long)}


_META = {"pair": _pair_meta, "nway": _nway_meta, "pointwise": _pointwise_meta}


def plain_rows(samples: Sequence[EncodedSample]) -> tuple[list[Encoded], dict[str, Tensor]]:
    """The rows of one homogeneous micro-batch in the order of its builder (pairs: all chosen, then
    all rejected) and the builder's meta, without padding them."""
    if not samples:
        raise ValueError("plain_rows needs at least one sample")
    kind = samples[0].kind
    _check(samples, kind)
    if kind == "pair":
        rows = [s.encodings[0] for s in samples] + [s.encodings[1] for s in samples]
    elif kind == "nway":
        rows = [e for s in samples for e in s.encodings]
    else:
        rows = [s.encodings[0] for s in samples]
    return rows, _META[kind](samples)


BUCKET_OVERHEAD_TOKENS = 64
"""Cost of one extra forward pass, in padded token slots, when cutting rows into length buckets."""


def length_buckets(lengths: Sequence[int], overhead: int = BUCKET_OVERHEAD_TOKENS) -> list[list[int]]:
    """Cut rows into groups of similar length, each to be padded to its own longest row.

    Rows are sorted by length (longest first) and cut into consecutive groups minimising
    ``sum(rows_in_group * longest_in_group) + overhead * groups`` (exact dynamic programme, O(n^2)).
    Returns row positions per group, longest group first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    if n == 0:
        return []
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):  # last group = sorted rows i..j-1, padded to the length of row i
            c = best[i] + (j - i) * lengths[order[i]] + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], n
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def packed_batch(samples: Sequence[EncodedSample], pad_id: int, packing: str = "prefix_shared",
                 row_tokens: int | None = None) -> tuple[PackedBatch, dict[str, Tensor]]:
    """One homogeneous micro-batch packed (``prefix_shared`` or ``padding_free``) and its usual meta."""
    if packing not in MODES:
        raise ValueError(f"packed_batch: packing must be one of {', '.join(MODES)}, not {packing!r}")
    kind = samples[0].kind if samples else "pair"
    _check(samples, kind)
    return pack([s.encodings for s in samples], pad_id, packing == "prefix_shared", row_tokens), _META[kind](samples)


def batch_order(outputs: Tensor, kind: str, n: int) -> Tensor:
    """Per-response outputs in sample order -> the builders' row order (pairs: all chosen, then all
    rejected; N-way and pointwise already agree)."""
    if kind != "pair":
        return outputs
    return outputs.reshape(n, 2, -1).transpose(0, 1).reshape(2 * n, -1)
