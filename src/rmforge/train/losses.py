"""Reward-model objectives as pure torch functions (issue 3).

Every loss takes plain tensors (no config objects) and returns ``(loss, metrics)``: a scalar
loss and a dict of detached scalar tensors (no host sync; call ``.item()`` when logging).
Reduction is the mean over pairs/samples; an optional ``weights`` tensor ``[B]`` turns it into
``sum(w * l) / sum(w)``.

* ``bradley_terry_loss``: ``-log sigma(r_c - r_r - s*m)`` plus ``c * mean((r_c + r_r)^2)``.
* ``pairwise_loss``: the same with pairs labelled tie, under a tie model:
  ``None`` (BT with soft label 1/2), ``"rao-kupper"`` (theta > 1) or ``"davidson"`` (nu > 0).
* ``plackett_luce_loss``: N-way rankings with ties handled by Breslow's approximation.
* ``regression_loss`` / ``combine_attributes``: pointwise (multi-attribute) heads.
* ``pair_metrics``: accuracy, margin and reward statistics as Python floats.

All tie-model probabilities are computed in log space (``logsigmoid``/``logsumexp``), so values
and gradients stay finite for reward differences of any size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_TIE_PARAMS",
    "TIE_MODELS",
    "bradley_terry_loss",
    "combine_attributes",
    "davidson_log_probs",
    "pair_metrics",
    "pairwise_loss",
    "plackett_luce_loss",
    "rao_kupper_log_probs",
    "regression_loss",
]

TIE_MODELS = (None, "none", "rao-kupper", "davidson")
# Both defaults give P(tie) = 1/3 at equal rewards: (theta-1)/(theta+1) and nu/(2+nu).
DEFAULT_TIE_PARAMS = {"rao-kupper": 2.0, "davidson": 1.0}

Metrics = dict[str, Tensor]


# ----------------------------------------------------------------------------- helpers
def _vector(x: Tensor, name: str) -> Tensor:
    """Accept ``[B]`` or ``[B, 1]`` (a classification head's logits); return ``[B]``."""
    if x.dim() == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 1:
        raise ValueError(f"{name} must have shape [B] or [B, 1], got {tuple(x.shape)}")
    return x


def _like(value: float | Tensor, ref: Tensor) -> Tensor:
    """A float or tensor as a tensor on ``ref``'s dtype/device (autograd is preserved)."""
    if isinstance(value, Tensor):
        return value.to(dtype=ref.dtype, device=ref.device)
    return torch.tensor(value, dtype=ref.dtype, device=ref.device)


def _weighted_mean(x: Tensor, weights: Tensor | None, select: Tensor | None = None) -> Tensor:
    """``sum(w*x)/sum(w)`` over entries with ``select`` true; 0 when nothing is selected."""
    w = torch.ones_like(x) if weights is None else _like(weights, x).expand_as(x)
    if select is not None:
        w = torch.where(select, w, torch.zeros_like(w))
        x = torch.where(select, x, torch.zeros_like(x))
    return (w * x).sum() / w.sum().clamp_min(torch.finfo(x.dtype).tiny)


def _check_weights(weights: Tensor | None, n: int) -> None:
    if weights is not None and tuple(weights.shape) != (n,):
        raise ValueError(f"weights must have shape [{n}], got {tuple(weights.shape)}")


def _margin(margin: float | Tensor | None, margin_scale: float, ref: Tensor) -> Tensor:
    if margin is None:
        return torch.zeros_like(ref)
    return margin_scale * _like(margin, ref).expand_as(ref)


def _center(r_c: Tensor, r_r: Tensor, center_coef: float, weights: Tensor | None) -> Tensor:
    if center_coef == 0.0:
        return r_c.new_zeros(())
    return center_coef * _weighted_mean((r_c + r_r) ** 2, weights)


# ----------------------------------------------------------------------------- Bradley-Terry
def bradley_terry_loss(
    r_chosen: Tensor,
    r_rejected: Tensor,
    margin: float | Tensor | None = None,
    margin_scale: float = 1.0,
    center_coef: float = 0.0,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """Bradley-Terry pairwise loss.

    ``loss = mean(-logsigmoid(r_c - r_r - margin_scale * margin))
    + center_coef * mean((r_c + r_r)^2)``

    ``margin`` is a float or a per-pair tensor ``[B]``; ``weights`` weights both terms.
    Metrics: ``nll`` (first term) and ``center`` (second term, coefficient included).
    """
    r_c, r_r = _vector(r_chosen, "r_chosen"), _vector(r_rejected, "r_rejected")
    if r_c.shape != r_r.shape:
        raise ValueError(f"r_chosen {tuple(r_c.shape)} and r_rejected {tuple(r_r.shape)} differ")
    _check_weights(weights, r_c.shape[0])
    d = r_c - r_r - _margin(margin, margin_scale, r_c)
    nll = _weighted_mean(-F.logsigmoid(d), weights)
    center = _center(r_c, r_r, center_coef, weights)
    return nll + center, {"nll": nll.detach(), "center": center.detach()}


# ----------------------------------------------------------------------------- tie models
def rao_kupper_log_probs(d: Tensor, theta: float | Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rao-Kupper ``(log P(i>j), log P(j>i), log P(tie))`` for ``d = r_i - r_j``, ``theta >= 1``.

    With ``a = log theta``: ``P(i>j) = sigma(d - a)``, ``P(j>i) = sigma(-d - a)`` and
    ``P(tie) = (theta^2 - 1) * sigma(d - a) * sigma(-d - a)`` (= 1 - the two others).
    ``log(theta^2 - 1) = 2a + log(-expm1(-2a))``. ``theta = 1`` is plain BT (ties impossible).
    """
    a = torch.log(_like(theta, d))
    log_win = F.logsigmoid(d - a)
    log_loss = F.logsigmoid(-d - a)
    log_tie = 2 * a + torch.log(-torch.expm1(-2 * a)) + log_win + log_loss
    return log_win, log_loss, log_tie


def davidson_log_probs(d: Tensor, nu: float | Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Davidson ``(log P(i>j), log P(j>i), log P(tie))`` for ``d = r_i - r_j``, ``nu >= 0``.

    With ``p = exp(r)``: ``P(i>j) = p_i / (p_i + p_j + nu*sqrt(p_i p_j))`` and
    ``P(tie) = nu*sqrt(p_i p_j) / (...)``. Dividing by ``sqrt(p_i p_j)`` gives
    ``Z = logsumexp(d/2, -d/2, log nu)``, ``log P(i>j) = d/2 - Z``, ``log P(tie) = log nu - Z``.
    ``nu = 0`` is plain BT (ties impossible).
    """
    half = d / 2
    log_nu = torch.log(_like(nu, d)).expand_as(d)
    z = torch.logsumexp(torch.stack([half, -half, log_nu]), dim=0)
    return half - z, -half - z, log_nu - z


def _tie_log_probs(tie_model: str, d: Tensor, param: float | Tensor):
    fn = rao_kupper_log_probs if tie_model == "rao-kupper" else davidson_log_probs
    return fn(d, param)


def pairwise_loss(
    r_chosen: Tensor,
    r_rejected: Tensor,
    tie: Tensor | None = None,
    margin: float | Tensor | None = None,
    margin_scale: float = 1.0,
    tie_model: str | None = "rao-kupper",
    tie_param: float | Tensor | None = None,
    center_coef: float = 0.0,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """Pairwise loss with pairs labelled tie (bool ``tie`` ``[B]``); ``d = r_c - r_r``.

    * ``tie_model=None``/``"none"``: non-tie ``-logsigmoid(d - m)``; tie
      ``0.5 * (-logsigmoid(d) - logsigmoid(-d))`` (BT with soft label 1/2, minimum at d=0).
    * ``"rao-kupper"`` (``tie_param`` = theta > 1, default 2) or ``"davidson"`` (nu > 0,
      default 1): non-tie ``-log P_win(d - m)``, tie ``-log P_tie(d)`` (full likelihood).

    The margin ``m = margin_scale * margin`` applies to non-tie pairs only; the centering term
    ``center_coef * mean((r_c + r_r)^2)`` covers all pairs. With no ties and ``tie_model=None``
    this equals :func:`bradley_terry_loss`. Metrics: ``nll``, ``nll_win``, ``nll_tie`` (0 when
    there are none), ``center``, ``num_ties``.
    """
    if tie_model not in TIE_MODELS:
        raise ValueError(f"tie_model must be one of {TIE_MODELS}, got {tie_model!r}")
    tie_model = None if tie_model == "none" else tie_model
    r_c, r_r = _vector(r_chosen, "r_chosen"), _vector(r_rejected, "r_rejected")
    if r_c.shape != r_r.shape:
        raise ValueError(f"r_chosen {tuple(r_c.shape)} and r_rejected {tuple(r_r.shape)} differ")
    n = r_c.shape[0]
    _check_weights(weights, n)
    if tie is None:
        tie = torch.zeros(n, dtype=torch.bool, device=r_c.device)
    tie = tie.to(device=r_c.device, dtype=torch.bool)
    if tuple(tie.shape) != (n,):
        raise ValueError(f"tie must have shape [{n}], got {tuple(tie.shape)}")

    d = r_c - r_r
    d_win = d - _margin(margin, margin_scale, d)
    if tie_model is None:
        nll_win = -F.logsigmoid(d_win)
        nll_tie = -0.5 * (F.logsigmoid(d) + F.logsigmoid(-d))
    else:
        param = DEFAULT_TIE_PARAMS[tie_model] if tie_param is None else tie_param
        low = 1.0 if tie_model == "rao-kupper" else 0.0
        with torch.no_grad():
            if bool((_like(param, d) <= low).any()):
                name = "theta" if tie_model == "rao-kupper" else "nu"
                raise ValueError(f"{tie_model}: {name} must be > {low:g}, got {param}")
        nll_win = -_tie_log_probs(tie_model, d_win, param)[0]
        nll_tie = -_tie_log_probs(tie_model, d, param)[2]
    per_pair = torch.where(tie, nll_tie, nll_win)
    nll = _weighted_mean(per_pair, weights)
    center = _center(r_c, r_r, center_coef, weights)
    metrics = {
        "nll": nll.detach(),
        "nll_win": _weighted_mean(nll_win.detach(), weights, ~tie),
        "nll_tie": _weighted_mean(nll_tie.detach(), weights, tie),
        "center": center.detach(),
        "num_ties": tie.sum().detach(),
    }
    return nll + center, metrics


# ----------------------------------------------------------------------------- Plackett-Luce
def plackett_luce_loss(
    rewards: Tensor,
    ranks: Tensor,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """Plackett-Luce negative log-likelihood of rankings, ties by Breslow's approximation.

    ``rewards`` ``[B, N]`` (padded), ``ranks`` ``[B, N]`` (1 = best, equal values = tie),
    ``mask`` ``[B, N]`` bool (True = real candidate). For each real candidate k, the set still
    in play is ``R_k = {j real : rank_j >= rank_k}`` (its own tie group and everything below):

    ``loss_b = -sum_k (r_k - logsumexp_{j in R_k} r_j)``, then the (weighted) mean over samples.

    Tied candidates share one stage and one denominator (Breslow); a strict ranking gives the
    exact PL likelihood, and N=2 equals :func:`bradley_terry_loss`. Samples with < 2 real
    candidates contribute 0. Metrics: ``nll`` and ``top1_accuracy`` (a best-ranked candidate
    has the highest reward, over samples with >= 2 real candidates).
    """
    if rewards.dim() != 2 or ranks.shape != rewards.shape:
        raise ValueError(
            "rewards and ranks must both be [B, N]; "
            f"got {tuple(rewards.shape)}, {tuple(ranks.shape)}"
        )
    b, _ = rewards.shape
    _check_weights(weights, b)
    real = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if real.shape != rewards.shape:
        raise ValueError(f"mask must have shape {tuple(rewards.shape)}, got {tuple(real.shape)}")
    s = torch.where(real, rewards, torch.zeros_like(rewards))  # padding: no value, no gradient
    ranks = ranks.to(rewards.device)
    # in_play[b, k, j]: candidate j is still in play at candidate k's stage
    in_play = real[:, None, :] & (ranks[:, None, :] >= ranks[:, :, None])
    in_play = in_play | torch.eye(s.shape[1], dtype=torch.bool, device=s.device)  # no empty rows
    scores = s[:, None, :].expand_as(in_play).masked_fill(~in_play, -math.inf)
    terms = s - torch.logsumexp(scores, dim=-1)
    per_sample = -torch.where(real, terms, torch.zeros_like(terms)).sum(dim=1)
    nll = _weighted_mean(per_sample, weights)
    with torch.no_grad():
        best_rank = torch.where(real, ranks, ranks.max() + 1).min(dim=1, keepdim=True).values
        top = s.masked_fill(~real, -math.inf).argmax(dim=1, keepdim=True)
        hit = (ranks.gather(1, top) == best_rank).squeeze(1).to(s.dtype)
        top1 = _weighted_mean(hit, weights, real.sum(dim=1) >= 2)
    return nll, {"nll": nll.detach(), "top1_accuracy": top1}


# ----------------------------------------------------------------------------- pointwise
def regression_loss(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    kind: str = "mse",
    huber_delta: float = 1.0,
    attribute_weights: Sequence[float] | Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """Pointwise regression on ``[B, A]`` attribute scores (``[B]`` is treated as A=1).

    ``l = (pred - target)^2`` (``"mse"``) or Huber with ``huber_delta``
    (``0.5 x^2`` if ``|x| <= delta`` else ``delta * (|x| - delta/2)``).
    ``loss = sum(w * l) / sum(w)`` over observed entries, with
    ``w[b, a] = mask[b, a] * attribute_weights[a] * weights[b]``. ``mask`` defaults to
    ``isfinite(target)``, so NaN marks a missing attribute. Metrics: ``per_attribute`` ``[A]``
    (unweighted mean over observed entries) and ``mae``.
    """
    if kind not in ("mse", "huber"):
        raise ValueError(f"kind must be 'mse' or 'huber', got {kind!r}")
    if pred.dim() == 1:
        pred, target = pred[:, None], target[:, None]
        mask = None if mask is None else mask[:, None]
    if pred.dim() != 2 or target.shape != pred.shape:
        raise ValueError(
            f"pred and target must both be [B, A]; got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    b, a = pred.shape
    _check_weights(weights, b)
    seen = torch.isfinite(target) if mask is None else mask.to(torch.bool) & torch.isfinite(target)
    if seen.shape != pred.shape:
        raise ValueError(f"mask must have shape {(b, a)}, got {tuple(seen.shape)}")
    tgt = torch.where(seen, target.to(pred.dtype), pred.detach())
    if kind == "mse":
        elem = (pred - tgt) ** 2
    else:
        elem = F.huber_loss(pred, tgt, reduction="none", delta=huber_delta)
    w = seen.to(pred.dtype)
    if attribute_weights is not None:
        aw = _like(torch.as_tensor(attribute_weights), pred)
        if tuple(aw.shape) != (a,):
            raise ValueError(f"attribute_weights must have shape [{a}], got {tuple(aw.shape)}")
        w = w * aw
    if weights is not None:
        w = w * _like(weights, pred)[:, None]
    loss = (w * elem).sum() / w.sum().clamp_min(torch.finfo(pred.dtype).tiny)
    with torch.no_grad():
        count = seen.sum(dim=0).clamp_min(1).to(pred.dtype)
        per_attr = torch.where(seen, elem, torch.zeros_like(elem)).sum(dim=0) / count
        mae = _weighted_mean((pred - tgt).abs(), None, seen)
    return loss, {"per_attribute": per_attr, "mae": mae}


def combine_attributes(values: Tensor, weights: Sequence[float] | Tensor) -> Tensor:
    """Single reward from attribute scores: ``values [B, A] @ weights [A] -> [B]``."""
    w = _like(torch.as_tensor(weights), values)
    if values.dim() != 2 or tuple(w.shape) != (values.shape[1],):
        raise ValueError(
            f"need values [B, A] and weights [A]; got {tuple(values.shape)}, {tuple(w.shape)}"
        )
    return values @ w


# ----------------------------------------------------------------------------- metrics
@torch.no_grad()
def pair_metrics(
    r_chosen: Tensor, r_rejected: Tensor, tie: Tensor | None = None
) -> dict[str, float]:
    """Evaluation metrics as Python floats.

    ``accuracy``: fraction of non-tie pairs with strictly ``r_c > r_r`` (NaN if none);
    ``margin``: mean ``r_c - r_r`` over non-tie pairs; ``tie_abs_diff``: mean ``|r_c - r_r|``
    over tie pairs (NaN if none); ``reward_mean/std/min/max`` over all rewards (population std);
    ``chosen_mean``, ``rejected_mean``, ``num_pairs``, ``num_ties``.
    """
    r_c = _vector(r_chosen, "r_chosen").double()
    r_r = _vector(r_rejected, "r_rejected").double()
    if r_c.shape != r_r.shape:
        raise ValueError(f"r_chosen {tuple(r_c.shape)} and r_rejected {tuple(r_r.shape)} differ")
    tie = torch.zeros_like(r_c, dtype=torch.bool) if tie is None else tie.to(r_c.device, torch.bool)
    d = r_c - r_r
    win, ties = d[~tie], d[tie]
    nan = float("nan")
    both = torch.cat([r_c, r_r])
    empty = both.numel() == 0
    return {
        "accuracy": (win > 0).double().mean().item() if win.numel() else nan,
        "margin": win.mean().item() if win.numel() else nan,
        "tie_abs_diff": ties.abs().mean().item() if ties.numel() else nan,
        "reward_mean": nan if empty else both.mean().item(),
        "reward_std": nan if empty else both.std(correction=0).item(),
        "reward_min": nan if empty else both.min().item(),
        "reward_max": nan if empty else both.max().item(),
        "chosen_mean": nan if empty else r_c.mean().item(),
        "rejected_mean": nan if empty else r_r.mean().item(),
        "num_pairs": float(r_c.numel()),
        "num_ties": float(ties.numel()),
    }
