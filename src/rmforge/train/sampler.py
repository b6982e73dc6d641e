"""Deterministic batch order: seeded shuffles with optional length grouping.

The order of epoch ``e`` depends only on (seed, e, lengths, batch size), so a resumed run
replays exactly the batches an uninterrupted run would have seen. Optimizer batches always hold
``batch_size`` samples; forward passes take ``micro`` samples (:func:`split_micro`) or, with packing,
a token budget (:func:`split_by_tokens`), which never changes the step's result.

:func:`sample_lengths` gives the sort key of length grouping: with packing, the length of the sample
laid out with its shared prefix counted once (``prompt + all responses``; the same key for
``prefix_shared`` and ``padding_free``, so both see the same batches and packed rows come out tight);
without packing, the padded cost of its rows (``longest row * rows``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True,
                  keys: list[str] | None = None, megabatch: int = 32) -> list[list[int]]:
    """Indices of each batch of one epoch.

    With ``group_by_length``, the shuffled indices are cut into mega-batches of
    ``megabatch * batch_size`` items, each sorted by length and cut into batches, and the
    batches are shuffled again: padding drops while the order stays random. ``keys`` (e.g.
    the sample kind) keeps batches homogeneous: items with different keys never share a batch.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(keys[i] if keys else "", []).append(i)
    batches: list[list[int]] = []
    for key in sorted(groups):
        idx = groups[key]
        if group_by_length:
            span = max(batch_size * megabatch, batch_size)
            for start in range(0, len(idx), span):
                chunk = sorted(idx[start:start + span], key=lambda i: -lengths[i])
                batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
        else:
            batches.extend(idx[j:j + batch_size] for j in range(0, len(idx), batch_size))
    rng.shuffle(batches)
    return batches


def split_micro(batch: list[int], micro: int) -> list[list[int]]:
    """Cut one optimizer batch into forward-pass micro-batches."""
    return [batch[i:i + micro] for i in range(0, len(batch), micro)]


def split_by_tokens(lengths: list[int], budget: int) -> list[list[int]]:
    """Cut one optimizer batch (``lengths`` = tokens of each item once laid out) into consecutive
    micro-batches of at most ``budget`` tokens; an item longer than the budget goes alone.
    Returns positions into ``lengths``."""
    parts: list[list[int]] = []
    used = 0
    for i, n in enumerate(lengths):
        if not parts or used + n > budget:
            parts.append([])
            used = 0
        parts[-1].append(i)
        used += n
    return parts


def sample_lengths(samples: Sequence, shared_prefix: bool) -> list[int]:
    """Length-grouping key of each encoded sample (``EncodedSample``): its tokens with the shared
    prefix counted once (``shared_prefix``: packed modes), or ``longest row * rows`` (plain batches)."""
    if shared_prefix:
        from rmforge.train.packing import doc_tokens

        return [doc_tokens(s.encodings, True) for s in samples]
    return [max(len(e.input_ids) for e in s.encodings) * len(s.encodings) for s in samples]
