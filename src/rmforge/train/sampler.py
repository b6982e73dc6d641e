"""Deterministic batch order: seeded shuffles with optional length grouping.

The order of epoch ``e`` depends only on (seed, e, lengths, batch size), so a resumed run
replays exactly the batches an uninterrupted run would have seen. Optimizer batches always hold
``batch_size`` samples; forward passes take ``micro`` samples (:func:`split_micro`) or, with packing,
a token budget (:func:`split_by_tokens`), which never changes the step's result.

:func:`sample_lengths` gives the sort key of length grouping, per packing mode: without packing,
the padded cost of a sample's rows (``longest row * rows``); ``padding_free``, its tokens; and
``prefix_shared``, its tokens with the prefix counted once when it is worth sharing, else the padded
cost (such samples end up in plain batches), so packed rows and plain batches both come out tight.
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


def sample_lengths(samples: Sequence, packing: str = "none") -> list[int]:
    """Length-grouping key of each encoded sample (``EncodedSample``) for ``packing``: the padded cost
    of its rows (``longest row * rows``) for plain batches; its tokens once laid out for
    ``padding_free``; for ``prefix_shared``, the laid-out tokens (prefix once) of samples worth sharing
    and the plain-batch cost of the others (a micro-batch with nothing to share runs as a plain batch,
    so those samples are grouped exactly as ``none`` groups them)."""
    from rmforge.reward_model.packing import doc_tokens

    def plain(s) -> int:
        return max(len(e.input_ids) for e in s.encodings) * len(s.encodings)

    if packing == "none":
        return [plain(s) for s in samples]
    if packing == "padding_free":
        return [doc_tokens(s.encodings, False) for s in samples]
    if packing != "prefix_shared":
        raise ValueError(f"sample_lengths: unknown packing {packing!r}")
    out = []
    for s in samples:  # doc_tokens counts the prefix once only where sharing is worth it (then < all rows)
        laid = doc_tokens(s.encodings, True)
        out.append(laid if laid < sum(len(e.input_ids) for e in s.encodings) else plain(s))
    return out
