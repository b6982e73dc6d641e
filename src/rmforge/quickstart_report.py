"""report.md for ``rmforge quickstart``: accuracies with CIs, per category, baselines, timings, plots."""

from __future__ import annotations

from pathlib import Path


def _fmt(acc) -> str:
    return f"{acc.accuracy:.3f} [{acc.ci_low:.3f}, {acc.ci_high:.3f}]"


def write_report(path: Path, cfg, trained, untrained, summary: dict, times: dict, plots: list[Path]) -> None:
    """Write the Markdown report atomically."""
    from rmforge.fileio import atomic_text

    lines = [f"# rmforge quickstart: {cfg.model}", "",
             f"Data: {cfg.data or 'the rmforge demo preference set (docs/demo-dataset.md)'}; "
             f"held-out pairs: {trained.n}. Accuracy is strict r(chosen) > r(rejected), with "
             f"{int(100 * (1 - trained.alpha))}% bootstrap confidence intervals ({trained.n_boot} resamples).", "",
             "| scorer | held-out accuracy |", "|---|---|",
             f"| trained reward model | {_fmt(trained.overall)} |",
             f"| untrained model (same architecture, fresh head) | {_fmt(untrained.overall)} |"]
    for name, acc in trained.baselines.items():
        lines.append(f"| baseline: {name.replace('_', ' ')} | {_fmt(acc)} |")
    lines += ["", f"## Per {trained.group_by or 'group'}", "", "| group | n | trained | untrained |", "|---|---|---|---|"]
    for group, acc in sorted(trained.groups.items()):
        base = untrained.groups.get(group)
        lines.append(f"| {group} | {acc.n} | {_fmt(acc)} | {_fmt(base) if base else '-'} |")
    val = summary.get("validation") or {}
    lines += ["", "## Run", "",
              f"- optimizer steps: {summary.get('steps')}, validation accuracy (train-side holdout): "
              f"{val.get('accuracy', float('nan')):.3f}",
              f"- length-matched accuracy: {_fmt(trained.length_matched)}; reward/length correlation: "
              + ", ".join(f"{k} {v:.3f}" for k, v in trained.length_correlation.items() if k != "n"),
              f"- scoring throughput: {trained.pairs_per_s:.1f} pairs/s",
              "- wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
              + f" (total {sum(times.values()):.0f} s)",
              f"- dropped or truncated while scoring: {trained.counts.get('dropped', 0)} dropped, "
              f"{trained.counts.get('truncated', 0)} truncated", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    with atomic_text(path, overwrite=True) as fh:
        fh.write("\n".join(lines))
