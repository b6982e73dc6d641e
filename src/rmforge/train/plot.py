"""Training curves as PNG files: ``plot_run(RUN_DIR)`` reads metrics.jsonl (and validation_rewards.jsonl).

Figures (written atomically into RUN_DIR/plots/ unless ``out_dir`` is given, 100 dpi):

- ``loss.png``: training loss per logged step, validation loss overlaid;
- ``accuracy.png``: training and validation pairwise accuracy (and N-way top-1 when logged);
- ``margin.png``: mean reward margin r_chosen - r_rejected, training and validation;
- ``lr.png``: learning rate (top panel) and gradient norm (bottom panel);
- ``rewards.png``: histograms of chosen vs rejected rewards on the validation set, and of the
  per-pair margin; needs RUN_DIR/validation_rewards.jsonl (see ``save_validation_rewards``).

The loss, accuracy and margin figures mark the step the saved (final) model comes from.

A figure whose series hold no finite value is skipped with a note. Matplotlib is used through its Agg
canvas directly (no pyplot, no display, no global backend switch).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from rmforge.errors import DataError, RmforgeError
from rmforge.fileio import atomic_path, atomic_text

VALIDATION_REWARDS = "validation_rewards.jsonl"
DPI = 100
_log = logging.getLogger(__name__)
_TRAIN, _EVAL = "#1f77b4", "#d62728"


def save_validation_rewards(run_dir: str | Path, chosen: Sequence[float], rejected: Sequence[float],
                            ids: Sequence[str]) -> Path:
    """Write RUN_DIR/validation_rewards.jsonl atomically: one ``{"id", "chosen", "rejected"}`` row per pair.

    Meant for the trainer, with the final model's rewards on the validation pairs (N-way samples are
    left out). Non-finite rewards are stored as null. Returns the file's path.
    """
    if not len(chosen) == len(rejected) == len(ids):
        raise ValueError(f"chosen ({len(chosen)}), rejected ({len(rejected)}) and ids ({len(ids)}) differ in length")
    path = Path(run_dir) / VALIDATION_REWARDS
    with atomic_text(path, overwrite=True) as fh:
        for i, c, r in zip(ids, chosen, rejected):
            fh.write(json.dumps({"id": str(i), "chosen": _finite_or_none(c), "rejected": _finite_or_none(r)}) + "\n")
    return path


def read_validation_rewards(path: str | Path) -> tuple[list[float], list[float]]:
    """(chosen, rejected) rewards from a validation_rewards.jsonl file (null -> NaN)."""
    chosen, rejected = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            chosen.append(_num(row["chosen"]))
            rejected.append(_num(row["rejected"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"not a validation reward row ({exc})", file=str(path), line=n) from None
    return chosen, rejected


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None,
             validation_rewards: str | Path | tuple[Sequence[float], Sequence[float]] | None = None,
             note: Callable[[str], None] | None = None) -> list[Path]:
    """Write the run's PNG curves; returns the files written.

    ``validation_rewards``: a validation_rewards.jsonl path or ``(chosen, rejected)`` lists; by default
    RUN_DIR/validation_rewards.jsonl when present. ``note`` receives one line per skipped figure
    (default: logged at INFO). Raises RmforgeError when RUN_DIR has no metrics.jsonl.
    """
    note = note or _log.info
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RmforgeError("plotting needs matplotlib: pip install matplotlib") from None
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise RmforgeError(f"{run_dir} has no metrics.jsonl: is it an rmforge run directory?")
    out = Path(out_dir) if out_dir is not None else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, build in figures(run_dir, validation_rewards, note).items():
        fig = build()
        if fig is None:
            if filename != "rewards.png":
                note(f"{filename}: no data in metrics.jsonl, skipped")
            continue
        written.append(_save(fig, out / filename))
    return written


def figures(run_dir: str | Path, validation_rewards=None, note: Callable[[str], None] | None = None) -> dict:
    """``{file name: builder}``; each builder returns a matplotlib Figure, or None when it has no data.

    The loss, accuracy and margin figures mark the step the final model comes from (the ``end`` row's
    ``saved.step``, or ``best_step`` in runs of earlier versions) with a dashed line and a star on the
    validation curve.
    """
    note = note or _log.info
    run_dir = Path(run_dir)
    train, evals, saved = _load_metrics(run_dir / "metrics.jsonl", note)
    name = run_dir.resolve().name
    return {
        "loss.png": lambda: _curves(f"Loss: {name}", "loss (lower is better)",
                                    [("train", train, "loss", _TRAIN), ("validation", evals, "eval_loss", _EVAL)],
                                    saved=saved),
        "accuracy.png": lambda: _curves(f"Pairwise accuracy: {name}", "accuracy (r_chosen > r_rejected)",
                                        [("train", train, "accuracy", _TRAIN),
                                         ("train top-1 (N-way)", train, "top1_accuracy", "#2ca02c"),
                                         ("validation", evals, "eval_accuracy", _EVAL)], hline=0.5, unit=True,
                                        saved=saved),
        "margin.png": lambda: _curves(f"Reward margin: {name}", "mean r_chosen - r_rejected",
                                      [("train", train, "margin", _TRAIN), ("validation", evals, "eval_margin", _EVAL)],
                                      hline=0.0, saved=saved),
        "lr.png": lambda: _optim(name, train),
        "rewards.png": lambda: _rewards(name, run_dir, validation_rewards, note),
    }


def saved_label(saved: dict) -> str:
    """Legend text of the saved-model marker, e.g. ``saved model: best validation step 80 of 120``."""
    kind = {"best": "best validation step ", "last": "last step "}.get(saved.get("choice"), "step ")
    return f"saved model: {kind}{saved['step']}" + (f" of {saved['of']}" if saved.get("of") else "")


def _load_metrics(path: Path, note: Callable[[str], None]) -> tuple[list[dict], list[dict], dict | None]:
    """Training rows and eval rows, one per step (the last wins: a resumed run logs some steps twice), and
    which step the final model is (from the last ``end`` row; None when the run has not finished)."""
    train, evals, saved, bad = {}, {}, None, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            event = row.get("event")
            if event == "end":
                saved = _saved(row)
                continue
            if event not in (None, "eval"):
                continue  # start, early_stop: no curve
            step = int(row["step"])
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1  # e.g. a line being written by a run still in progress
            continue
        (train if event is None else evals)[step] = row
    if bad:
        note(f"metrics.jsonl: {bad} unreadable line(s) ignored")
    return [train[s] for s in sorted(train)], [evals[s] for s in sorted(evals)], saved


def _saved(end: dict) -> dict | None:
    """The saved-model record of an ``end`` row (runs of earlier versions only logged ``best_step``)."""
    saved = end.get("saved")
    if isinstance(saved, dict) and isinstance(saved.get("step"), int):
        return saved
    if isinstance(end.get("best_step"), int):
        return {"step": end["best_step"], "of": end.get("steps")}
    return None


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [r["step"] for r in rows], [_num(r.get(key)) for r in rows]
    return (xs, ys) if any(math.isfinite(y) for y in ys) else ([], [])


def _curves(title: str, ylabel: str, specs: list, hline: float | None = None, unit: bool = False,
            saved: dict | None = None):
    """One panel of metric-vs-step lines; None when no series has a finite value. ``saved``: the step the
    final model comes from, drawn as a dashed vertical line, with a star on the validation curve there."""
    data = [(label, *_series(rows, key), color) for label, rows, key, color in specs]
    data = [d for d in data if d[1]]
    if not data:
        return None
    fig, ax = _figure(1)
    for label, xs, ys, color in data:
        ax.plot(xs, ys, label=label, color=color, lw=1.6, **_marker(xs))
    if saved is not None:
        ax.axvline(saved["step"], color="#2ca02c", lw=1.2, ls="--", label=saved_label(saved))
        for label, xs, ys, color in data:
            if label == "validation" and saved["step"] in xs and math.isfinite(ys[xs.index(saved["step"])]):
                ax.plot([saved["step"]], [ys[xs.index(saved["step"])]], marker="*", markersize=14, color="#2ca02c",
                        ls="none")
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8, ls="--", label="chance" if unit else None)
    if unit:
        ax.set_ylim(-0.02, 1.02)
    _decorate(ax, title, ylabel)
    return fig


def _optim(name: str, train: list[dict]):
    lr, gn = _series(train, "lr"), _series(train, "grad_norm")
    if not lr[0] and not gn[0]:
        return None
    fig, (top, bottom) = _figure(2)
    for ax, (xs, ys), label, title in ((top, lr, "learning rate", f"Learning rate: {name}"),
                                       (bottom, gn, "gradient norm", "Gradient norm (before clipping)")):
        if xs:
            ax.plot(xs, ys, color=_TRAIN, lw=1.6, label=label, **_marker(xs))
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
        _decorate(ax, title, label, xlabel="step" if ax is bottom else "", legend=False)
    top.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return fig


def _rewards(name: str, run_dir: Path, source, note: Callable[[str], None]):
    if source is None:
        source = run_dir / VALIDATION_REWARDS
        if not source.is_file():
            note(f"rewards.png: {source} not found (the run saved no validation rewards), skipped")
            return None
    chosen, rejected = read_validation_rewards(source) if isinstance(source, (str, Path)) else source
    pairs = [(c, r) for c, r in zip(chosen, rejected) if math.isfinite(c) and math.isfinite(r)]
    if not pairs:
        note("rewards.png: no finite validation rewards, skipped")
        return None
    import numpy as np

    c, r = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    fig, (left, right) = _figure(2, horizontal=True)
    bins = np.histogram_bin_edges(np.concatenate([c, r]), bins=min(40, max(5, len(pairs) // 2)))
    if bins[0] == bins[-1]:
        bins = np.linspace(bins[0] - 0.5, bins[0] + 0.5, 6)
    for values, label, color in ((c, "chosen", _TRAIN), (r, "rejected", _EVAL)):
        left.hist(values, bins=bins, alpha=0.55, color=color, label=f"{label} (mean {values.mean():.3g})")
        left.axvline(values.mean(), color=color, lw=1.2, ls="--")
    _decorate(left, f"Validation rewards: {name} ({len(pairs)} pairs)", "pairs", xlabel="reward")
    d = c - r
    right.hist(d, bins=min(40, max(5, len(d) // 2)), color="#7f7f7f", alpha=0.8)
    right.axvline(0.0, color="black", lw=1.0, ls="--")
    _decorate(right, f"Margin r_chosen - r_rejected (accuracy {(d > 0).mean():.3f})", "pairs",
              xlabel="margin", legend=False)
    return fig


def _figure(panels: int, horizontal: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if horizontal:
        fig = Figure(figsize=(12, 4.8), dpi=DPI, layout="constrained")
        axes = fig.subplots(1, panels)
    else:
        fig = Figure(figsize=(8, 4.8 if panels == 1 else 7.2), dpi=DPI, layout="constrained")
        axes = fig.subplots(panels, 1, sharex=True) if panels > 1 else fig.subplots()
    FigureCanvasAgg(fig)
    return fig, axes


def _decorate(ax, title: str, ylabel: str, xlabel: str = "step", legend: bool = True) -> None:
    ax.set_title(title, fontsize=12)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.grid(True, alpha=0.3)
    if xlabel in ("step", ""):
        ax.xaxis.get_major_locator().set_params(integer=True)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=10)


def _marker(xs: list) -> dict:
    return {"marker": "o", "markersize": 4} if len(xs) <= 50 else {}


def _save(fig, path: Path) -> Path:
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _num(value) -> float:
    """A metric value as a float: None, strings and other junk become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
