"""Turning several annotators' labels into one: majority vote and Dawid-Skene.

- :func:`majority_vote`: the most frequent label; a shared top count follows ``tie_policy``
  (``tie``: the item is a tie, ``drop``: the item is left out and counted by the caller).
- :func:`dawid_skene`: EM over per-annotator confusion matrices (Dawid & Skene, 1979),
  initialised from vote shares; returns per-item class posteriors, so an annotator who is
  consistently wrong (or inverted) counts for less than one who is right.
- :func:`median_score` / :func:`mean_ranks`: the ordinal counterparts for ratings and rankings.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

import numpy as np

from rmforge.errors import ConfigError

TIE_POLICIES = ("tie", "drop")
METHODS = ("majority", "dawid-skene")


def majority_vote(labels: Sequence[Hashable], tie_policy: str = "tie", tie_label: Hashable = "tie") -> Hashable | None:
    """Most frequent label; ``tie_label`` or ``None`` (``drop``) when the top count is shared."""
    if tie_policy not in TIE_POLICIES:
        raise ConfigError(f"unknown tie policy '{tie_policy}' (expected one of {', '.join(TIE_POLICIES)})")
    if not labels:
        return None
    counts = Counter(labels).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return tie_label if tie_policy == "tie" else None
    return counts[0][0]


def dawid_skene(items: Sequence[dict[str, Hashable]], classes: Sequence[Hashable], max_iter: int = 100,
                tol: float = 1e-6, smoothing: float = 0.01) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Posterior over ``classes`` per item (rows sum to 1) and each annotator's confusion matrix.

    ``items[i]`` maps annotator -> label. ``confusion[a][j, l]`` estimates P(a says l | truth j)."""
    index = {c: k for k, c in enumerate(classes)}
    annotators = sorted({a for item in items for a in item})
    n, k = len(items), len(classes)
    # votes[a]: (items, classes) one-hot of annotator a's labels (all-zero rows where a is silent)
    votes = {a: np.zeros((n, k)) for a in annotators}
    for i, item in enumerate(items):
        for a, label in item.items():
            if label not in index:
                raise ValueError(f"label {label!r} is not one of {list(classes)}")
            votes[a][i, index[label]] = 1.0
    total = sum(votes.values()) if votes else np.zeros((n, k))
    posterior = np.where(total.sum(1, keepdims=True) > 0, total / np.maximum(total.sum(1, keepdims=True), 1), 1.0 / k)
    confusion: dict[str, np.ndarray] = {}
    for _ in range(max_iter):
        prior = (posterior.sum(0) + smoothing) / (n + k * smoothing)
        for a in annotators:
            counts = posterior.T @ votes[a] + smoothing
            confusion[a] = counts / counts.sum(1, keepdims=True)
        log_post = np.tile(np.log(prior), (n, 1))
        for a in annotators:
            log_post += votes[a] @ np.log(confusion[a]).T
        log_post -= log_post.max(1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(1, keepdims=True)
        delta = float(np.abs(new - posterior).max()) if n else 0.0
        posterior = new
        if delta < tol:
            break
    return posterior, confusion


def median_score(values: Sequence[float]) -> float:
    """Median rating (the ordinal analogue of a majority vote)."""
    return float(np.median(np.asarray(values, dtype=float)))


def mean_ranks(rankings: Sequence[Sequence[int]]) -> list[int]:
    """Consensus ranks (1 = best) from several rankings by mean rank; equal means share a rank."""
    means = np.asarray(rankings, dtype=float).mean(0).round(9)
    distinct = sorted(set(means.tolist()))
    return [distinct.index(m) + 1 for m in means.tolist()]
