"""Evaluation reports: ``report.md``, ``report.html`` and PNG plots in one folder, written atomically.

Plots (matplotlib, Agg): ``figures.png`` (each figure with its bootstrap interval and the
length-only baseline), ``rewards.png`` (reward distributions of chosen vs rejected responses),
``calibration.png`` (reliability curve of ``sigmoid(r_c - r_r)``) and ``length.png`` (reward
against response length). Works for :class:`~rmforge.evaluate.suite.BenchmarkResult` and
:class:`~rmforge.evaluate.preference.PreferenceResult`.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from rmforge.evaluate.diagnostics import calibration


def report_data(result) -> dict[str, Any]:
    """What the report needs, from either result type."""
    from rmforge.evaluate.suite import BenchmarkResult

    if isinstance(result, BenchmarkResult):
        d = result.diagnostics
        rows = [(label.strip(), f.value, f.ci_low, f.ci_high, f.n, f.longer_wins) for label, f in result.rows()]
        rewards, lengths = [], []
        for rec in result.per_sample:
            if rec["rewards"] is not None:
                rewards += rec["rewards"]
                lengths += rec["lengths"]
        return {"title": f"{result.spec.title}: {result.model}", "rows": rows, "chosen": d["rewards_chosen"],
                "rejected": d["rewards_rejected"], "calibration": d["calibration"], "rewards": rewards,
                "lengths": lengths, "markdown": result.markdown(), "summary": result.summary()}
    longer = preference_longer_wins(result)
    rows = [(label.strip(), a.accuracy, a.ci_low, a.ci_high, a.n, longer.get(label, math.nan))
            for label, a in result.rows()]
    chosen, rejected = [], []
    for rec in result.per_sample:
        if rec.get("kind") == "pair" and rec.get("rewards") is not None:
            chosen.append(rec["rewards"][0])
            rejected.append(rec["rewards"][1])
    scored = [rec for rec in result.per_sample if rec.get("rewards") is not None and rec.get("lengths")]
    return {"title": f"preference: {result.model}", "rows": rows, "chosen": chosen, "rejected": rejected,
            "calibration": calibration([c - r for c, r in zip(chosen, rejected)]),
            "rewards": [v for rec in scored for v in rec["rewards"]],
            "lengths": [v for rec in scored for v in rec["lengths"]], "markdown": result.markdown(),
            "summary": result.summary()}


def preference_longer_wins(result) -> dict[str, float]:
    """"Longer wins" credit (1, 0, 0.5 for equal lengths) on the scored pairs behind each row of a
    :class:`~rmforge.evaluate.preference.PreferenceResult`: overall, per group and on the length-matched
    pairs (NaN for a row without pairs; the baseline rows are baselines themselves)."""
    from rmforge.evaluate.stats import length_matched, longer_wins

    pairs = [rec for rec in result.per_sample
             if rec.get("kind") == "pair" and rec.get("rewards") is not None and rec.get("lengths")]

    def credit(recs) -> float:
        if not recs:
            return math.nan
        return float(longer_wins([r["lengths"][0] for r in recs], [r["lengths"][1] for r in recs]).mean())

    out = {"overall": credit(pairs)}
    for key in result.groups:
        out[f"  {result.group_by}: {key}"] = credit([r for r in pairs if r.get("group") == key])
    matched = length_matched([r["lengths"][0] for r in pairs], [r["lengths"][1] for r in pairs]) if pairs else []
    out["length-matched pairs"] = credit([r for r, m in zip(pairs, matched) if m])
    return out


def write_report(result, out_dir: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write the report folder; returns its path. An existing non-empty folder is replaced only with
    ``overwrite`` and only when rmforge created it (:func:`rmforge.fileio.check_replaceable`)."""
    from rmforge.fileio import atomic_dir

    data = report_data(result)
    with atomic_dir(out_dir, overwrite=overwrite, what="report folder") as tmp:
        plots = _plots(data, Path(tmp))
        md = [f"# {data['title']}", "", data["summary"], "", data["markdown"]]
        md += [f"![{name}]({name}.png)" for name in plots]
        (Path(tmp) / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
        (Path(tmp) / "report.html").write_text(_html(data, plots), encoding="utf-8")
        (Path(tmp) / "result.json").write_text(json.dumps(result.to_dict(per_sample=False), indent=2) + "\n",
                                               encoding="utf-8")
    return Path(out_dir)


def _plots(data: dict[str, Any], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    rows = [r for r in data["rows"] if r[1] is not None and math.isfinite(r[1])]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
        y = np.arange(len(rows))[::-1]
        vals = np.array([r[1] for r in rows])
        err = np.array([[max(v - r[2], 0) if math.isfinite(r[2]) else 0 for v, r in zip(vals, rows)],
                        [max(r[3] - v, 0) if math.isfinite(r[3]) else 0 for v, r in zip(vals, rows)]])
        ax.barh(y, vals, xerr=err, color="#4c72b0", capsize=3, label="model")
        base = [r[5] for r in rows]
        if any(math.isfinite(b) for b in base):
            ax.scatter(base, y, marker="|", s=200, color="#dd8452", label="longer wins", zorder=3)
        ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
        ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("score (95% bootstrap CI)")
        ax.legend(fontsize=8, loc="lower right")
        made.append(_save(fig, folder, "figures"))
    if data["chosen"] and data["rejected"]:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = np.histogram_bin_edges(np.concatenate([data["chosen"], data["rejected"]]), bins=30)
        ax.hist(data["chosen"], bins=bins, alpha=0.6, label="chosen", density=True)
        ax.hist(data["rejected"], bins=bins, alpha=0.6, label="rejected", density=True)
        ax.set_xlabel("reward")
        ax.legend()
        made.append(_save(fig, folder, "rewards"))
    cal = data["calibration"]
    if cal["bins"]:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0.5, 1], [0.5, 1], color="grey", ls=":", label="perfect")
        ax.plot([b["confidence"] for b in cal["bins"]], [b["accuracy"] for b in cal["bins"]], "o-",
                label=f"model (ECE {cal['ece']:.3f})")
        ax.set_xlabel("confidence sigmoid(|r_c - r_r|)")
        ax.set_ylabel("fraction of picks right")
        ax.legend(fontsize=8)
        made.append(_save(fig, folder, "calibration"))
    if data["lengths"] and len(data["lengths"]) == len(data["rewards"]):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.scatter(data["lengths"], data["rewards"], s=4, alpha=0.4)
        ax.set_xscale("symlog")
        ax.set_xlabel("response length (characters)")
        ax.set_ylabel("reward")
        made.append(_save(fig, folder, "length"))
    return made


def _save(fig, folder: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=110)
    plt.close(fig)
    return name


def _html(data: dict[str, Any], plots: list[str]) -> str:
    def cell(x):
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else (
            f"{x:.4f}" if isinstance(x, float) else html.escape(str(x)))

    head = "<tr><th></th><th>score</th><th>95% CI</th><th>n</th><th>longer wins</th></tr>"
    body = "".join(f"<tr><td>{html.escape(r[0])}</td><td>{cell(r[1])}</td><td>[{cell(r[2])}, {cell(r[3])}]</td>"
                   f"<td>{r[4]}</td><td>{cell(r[5])}</td></tr>" for r in data["rows"])
    imgs = "".join(f'<p><img src="{p}.png" alt="{p}"></p>' for p in plots)
    notes = "".join(f"<li>{html.escape(line[2:])}</li>" for line in data["markdown"].splitlines()
                    if line.startswith("- "))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(data['title'])}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px;"
            "text-align:right}td:first-child{text-align:left}table{border-collapse:collapse}"
            "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
            f"<h1>{html.escape(data['title'])}</h1><p>{html.escape(data['summary'])}</p>"
            f"<table>{head}{body}</table><ul>{notes}</ul>{imgs}</body></html>\n")
