"""Batched scoring of encoded samples, shared by validation, evaluation and serving.

Rows are sorted by length before batching (less padding, higher throughput) and the
rewards are returned in the original order, so scores never depend on batch composition.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from rmforge.train.batching import collate
from rmforge.train.tokenize import Encoded, EncodedSample


@torch.no_grad()
def score_encodings(model, encodings: Sequence[Encoded], pad_id: int, batch_size: int = 32,
                    device=None, autocast=None) -> list[float]:
    """Reward of every encoded row, in input order."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].input_ids))
    out = [math.nan] * len(encodings)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([encodings[i] for i in idx], pad_id).items()}
            with autocast() if autocast is not None else _null():
                logits = model(**batch).logits
            for i, r in zip(idx, logits[:, 0].float().tolist()):
                out[i] = r
    finally:
        model.train(was_training)
    return out


def score_samples(model, samples: Sequence[EncodedSample], pad_id: int, batch_size: int = 32,
                  device=None, autocast=None) -> list[list[float]]:
    """Rewards per sample (one per response: chosen/rejected, candidates, or the single response)."""
    flat = [e for s in samples for e in s.encodings]
    rewards = score_encodings(model, flat, pad_id, batch_size, device, autocast)
    out, pos = [], 0
    for s in samples:
        out.append(rewards[pos:pos + len(s.encodings)])
        pos += len(s.encodings)
    return out


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


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
