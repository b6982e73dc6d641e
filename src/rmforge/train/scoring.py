"""Validation metrics of the reward-model trainer over rewards from :mod:`rmforge.reward_model.forward`."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from rmforge.reward_model.tokenize import EncodedSample


def pair_eval_metrics(samples: Sequence[EncodedSample], rewards: list[list[float]], tie_model: str = "none",
                      tie_param: float | None = None) -> dict[str, float]:
    """Validation metrics: loss, accuracy (strict r_c > r_r on non-tie pairs), margin, reward stats."""
    from rmforge.train.losses import pair_metrics, pairwise_loss

    pairs = [(s, r) for s, r in zip(samples, rewards) if s.kind == "pair"]
    if not pairs:
        return {}
    rc = torch.tensor([r[0] for _, r in pairs], dtype=torch.float64)
    rr = torch.tensor([r[1] for _, r in pairs], dtype=torch.float64)
    tie = torch.tensor([s.tie for s, _ in pairs])
    loss, _ = pairwise_loss(rc, rr, tie=tie, tie_model=None if tie_model == "none" else tie_model,
                            tie_param=tie_param)
    metrics = {"loss": float(loss)}
    metrics.update(pair_metrics(rc, rr, tie=tie))
    return metrics


def pointwise_eval_metrics(samples: Sequence[EncodedSample], outputs: list[list[float]],
                           attributes: list[str]) -> dict[str, float]:
    """MSE and MAE over present attributes, plus MAE per attribute."""
    err_sq, err_abs, n = 0.0, 0.0, 0
    per = {a: [0.0, 0] for a in attributes}
    for s, row in zip(samples, outputs):
        for a, target, pred in zip(attributes, s.scores or [], row):
            if not math.isnan(target):
                d = pred - target
                err_sq, err_abs, n = err_sq + d * d, err_abs + abs(d), n + 1
                per[a][0] += abs(d)
                per[a][1] += 1
    if not n:
        return {}
    return {"loss": err_sq / n, "mse": err_sq / n, "mae": err_abs / n,
            **{f"mae_{a}": v / c for a, (v, c) in per.items() if c}}
