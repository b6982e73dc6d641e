"""Which model a training run keeps, and what its manifest says about it.

- the best evaluation: higher validation accuracy (lower loss for ``eval.metric=loss``); equal accuracies go
  to the lower validation loss, a full tie to the later step (:func:`compare_to_best`);
- the ``saved`` record (step, of how many, why) for the manifest, the ``end`` row and the CLI line;
- the manifest's reward ``normalization`` (none without validation rewards);
- the stop on a non-finite training loss.
"""

from __future__ import annotations

import math
from pathlib import Path

from rmforge.train import checkpoint as ckpt_io


def best_metric(cfg) -> str:
    """The metric that picks the best evaluation (``eval.metric``; auto = accuracy for pairs, loss for pointwise)."""
    if cfg.eval.metric != "auto":
        return cfg.eval.metric
    return "loss" if cfg.kind == "train-pointwise" else "accuracy"


def compare_to_best(metric: str, metrics: dict, state: dict) -> str | None:
    """``better``, ``tie`` or ``worse`` than the best evaluation so far (None: the metric is missing or NaN).

    Higher accuracy wins (lower loss for ``metric=loss``); equal accuracies are decided by the lower
    validation loss, and a full tie by the later step (the caller's choice)."""
    value = metrics.get(metric)
    if value is None or math.isnan(value):
        return None
    if state.get("best") is None:
        return "better"

    def key(v, loss):
        primary = v if metric == "accuracy" else -v
        tiebreak = -loss if loss is not None and math.isfinite(loss) else -math.inf
        return (primary, tiebreak if metric == "accuracy" else 0.0)

    new, old = key(value, metrics.get("loss")), key(state["best"], state.get("best_loss"))
    return "better" if new > old else "tie" if new == old else "worse"


def saved_model(cfg, state: dict, use_best: bool, has_validation: bool, metrics: dict) -> dict:
    """Which step the final model is (``summary.saved`` in the manifest and the ``end`` row of metrics.jsonl)."""
    steps, best = state["step"], state.get("best_step")
    metric = best_metric(cfg)
    if use_best or (best == steps and cfg.checkpoint.save_best):
        choice, why = "best", (f"best validation {metric}" + (", ties by lower loss, then later step"
                                                                if metric == "accuracy" else ", ties by later step"))
    elif not has_validation:
        choice, why = "last", "no validation data"
    elif not cfg.checkpoint.save_best:
        choice, why = "last", "checkpoint.save_best=false"
    elif best is not None:  # resumed from another folder's checkpoint: its best weights are not in this one
        choice, why = "last", f"the best validation step {best} has no checkpoints/best in this run folder"
    else:
        choice, why = "last", f"no finite validation {metric}"
    return {"step": state["best_step"] if use_best else steps, "of": steps, "choice": choice, "why": why,
            "validation": {k: metrics[k] for k in (("mse", "mae") if "mse" in metrics else ("accuracy", "loss"))
                           if k in metrics}}


def describe_saved(saved: dict) -> str:
    """One line for the console: ``saved model: best validation step 80 of 120 (accuracy 0.7100, loss 0.5800)``."""
    head = "best validation step" if saved["choice"] == "best" else "last step"
    figures = ", ".join(f"{k} {v:.4f}" for k, v in saved.get("validation", {}).items())
    return f"saved model: {head} {saved['step']} of {saved['of']} ({figures or saved['why']})"


def reward_normalization(rewards: list[float]) -> dict:
    """The manifest's ``normalization``: mean and std of the final model's validation rewards, or, without
    validation rewards, ``{"source": "none"}`` and no mean/std (a reader then has nothing to normalise by)."""
    finite = [r for r in rewards if math.isfinite(r)]
    if not finite:
        return {"source": "none", "reason": "no validation data: mean and std of the rewards are unknown"}
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((r - mean) ** 2 for r in finite) / len(finite))
    return {"mean": mean, "std": std or 1.0, "source": "validation rewards", "count": len(finite)}


def check_finite_loss(engine, cfg, bad_loss: float | None, step: int, total: int, out: Path, log) -> None:
    """Stop training before the optimizer applies a NaN/inf loss's gradients (every process stops at the
    same step: the flags are summed across processes). Nothing is saved from the broken state."""
    flags = [float(bad_loss is not None), float(bad_loss is not None and math.isnan(bad_loss))]  # bad, NaN
    if engine.world > 1:
        flags = engine.sum(flags)
    if not flags[0] > 0:
        return
    from rmforge.errors import NonFiniteLossError

    opt = cfg.train
    hints = [f"lower train.lr (now {opt.lr:g})"]
    if opt.max_grad_norm is None:
        hints.append("set train.max_grad_norm (now off, e.g. 1.0)")
    if engine.precision != "fp32":
        hints.append(f"use train.precision=fp32 (now {engine.precision})")
    last = ckpt_io.latest_checkpoint(out)
    saved = f" (the checkpoints up to {last.name} are from before it)" if last is not None else ""
    value = f"{bad_loss}" if bad_loss is not None else "nan" if flags[1] > 0 else "inf"  # another process saw it
    log.write({"event": "non_finite_loss", "step": step, "loss": value})
    log.close()
    raise NonFiniteLossError(f"training stopped at step {step} of {total}: the loss is {value} (not finite), so no "
                             f"model was saved from this state{saved}. Try: {'; '.join(hints)}")
