"""Diagnostics that accompany every accuracy: calibration, length bias and style (format) probes.

* **Calibration** of ``p = sigmoid(r_c - r_r)`` read as the model's probability that the chosen
  response wins. As the chosen side is always first, the curve is taken on the model's *own*
  pick: confidence ``sigmoid(|r_c - r_r|)`` in [0.5, 1] against the fraction of picks that were
  right (equal rewards: confidence 0.5, half right). Equal-width bins; ECE = sum over bins of
  ``n_bin / N * |accuracy_bin - confidence_bin|``.
* **Length**: "longer response wins" / "shorter wins" on the same comparisons, the model's
  accuracy on length-matched comparisons, and the reward-length correlation over every scored
  response (:mod:`rmforge.evaluate.stats`).
* **Style probe** (RM-Bench): mean reward per style and the reward gaps
  detailed-plain minus concise and markdown minus plain over the same content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rmforge.evaluate import stats as st

CALIBRATION_BINS = 10


def calibration(margins: Sequence[float], bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability curve and expected calibration error of ``sigmoid(margin)`` (see module docstring)."""
    d = np.asarray(margins, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"ece": math.nan, "n": 0, "bins": []}
    conf = 1.0 / (1.0 + np.exp(-np.abs(d)))
    right = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n:
            acc, mean_conf = float(right[mask].mean()), float(conf[mask].mean())
            ece += n / d.size * abs(acc - mean_conf)
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": n, "confidence": mean_conf,
                        "accuracy": acc})
    return {"ece": float(ece), "n": int(d.size), "bins": out}


def pairwise_diagnostics(rc: Sequence[float], rr: Sequence[float], len_c: Sequence[float],
                         len_r: Sequence[float], all_rewards: Sequence[float], all_lengths: Sequence[float],
                         n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Calibration, length baselines, length-matched accuracy and reward-length correlation."""
    rc, rr = np.asarray(rc, dtype=np.float64), np.asarray(rr, dtype=np.float64)
    correct = (rc > rr).astype(np.float64)
    base = st.length_baselines(len_c, len_r, n_boot, alpha, seed)
    return {
        "comparisons": int(rc.size),
        "accuracy": st.accuracy_with_ci(correct, n_boot, alpha, seed).to_dict(),
        "mean_margin": float(np.mean(rc - rr)) if rc.size else math.nan,
        "calibration": calibration(rc - rr),
        "longer_wins": base["longer_wins"].to_dict(),
        "shorter_wins": base["shorter_wins"].to_dict(),
        "length_matched": st.length_matched_accuracy(correct, len_c, len_r, n_boot, alpha, seed).to_dict(),
        "length_correlation": st.length_correlation(all_rewards, all_lengths),
    }


def style_probe(rewards: Sequence[Sequence[float]], styles: Sequence[str]) -> dict[str, Any]:
    """Mean reward per style (chosen and rejected separately) and the detail / markdown gaps.

    ``rewards`` rows hold ``len(styles)`` chosen then ``len(styles)`` rejected rewards (RM-Bench order:
    concise, detailed plain, detailed markdown)."""
    r = np.asarray([row for row in rewards if row is not None], dtype=np.float64)
    if r.size == 0:
        return {}
    k = len(styles)
    out: dict[str, Any] = {"n": int(r.shape[0])}
    for side, block in (("chosen", r[:, :k]), ("rejected", r[:, k:])):
        out[side] = {style: float(v) for style, v in zip(styles, block.mean(0))}
    both = np.concatenate([r[:, :k], r[:, k:]])
    out["detail_gap"] = float((both[:, 1] - both[:, 0]).mean())
    out["markdown_gap"] = float((both[:, 2] - both[:, 1]).mean())
    return out
