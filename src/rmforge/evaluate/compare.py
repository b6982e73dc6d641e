"""``rmforge eval compare``: two result files side by side with the paired bootstrap difference.

Both files must come from the same benchmark and carry their per-sample records (the default
``--json`` output); ``rmforge eval judge --json`` results compare as benchmark ``judge-<mode>``
(accuracy, per-group accuracy and, pointwise, the mean reward; pairwise items are comparisons,
both A/B orders averaged). Items are matched by sample id; only shared items enter the difference. The
interval resamples the shared items once for both models (paired), within each stratum, so it is
much narrower than two independent intervals when the models agree on most items.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from rmforge.errors import DataError
from rmforge.evaluate import rules


@dataclass
class Comparison:
    benchmark: str
    names: tuple[str, str]
    rows: list[tuple[str, float, float, float, float, float, int]]
    """(figure, A, B, B - A, ci_low, ci_high, shared items)."""
    n_boot: int
    alpha: float

    def table(self):
        from rich.markup import escape
        from rich.table import Table

        from rmforge.evaluate.preference import _fmt

        t = Table(title=escape(f"{self.benchmark}: A = {self.names[0]}, B = {self.names[1]}"),
                  caption=f"paired bootstrap ({self.n_boot} resamples) over shared items", caption_justify="left")
        for col in ("", "A", "B", "B - A", f"{100 * (1 - self.alpha):g}% CI", "n"):
            t.add_column(col, justify="left" if not col else "right")
        for label, a, b, d, lo, hi, n in self.rows:
            t.add_row(escape(label), _fmt(a), _fmt(b), _fmt(d), f"[{_fmt(lo)}, {_fmt(hi)}]", str(n))
        return t

    def to_dict(self) -> dict[str, Any]:
        from rmforge.evaluate.preference import _clean

        keys = ("figure", "a", "b", "difference", "ci_low", "ci_high", "n")
        return _clean({"benchmark": self.benchmark, "a": self.names[0], "b": self.names[1], "n_boot": self.n_boot,
                       "rows": [dict(zip(keys, r)) for r in self.rows]})


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except OSError as exc:
        raise DataError(f"cannot read result: {exc.strerror}", file=str(path)) from None
    except ValueError as exc:
        raise DataError(f"not a JSON result file: {exc}", file=str(path)) from None
    if isinstance(data, dict) and "benchmark" not in data and "mode" in (data.get("metrics") or {}):
        data = _judge_result(data)
    if not isinstance(data, dict) or "benchmark" not in data:
        raise DataError("not an rmforge eval result (no 'benchmark' field)", file=str(path))
    if not data.get("samples"):
        raise DataError("the result has no per-sample records ('samples'); write it with rmforge eval ... --json",
                        file=str(path))
    return data


def compare_results(path_a: str, path_b: str, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> Comparison:
    """Side-by-side figures of two result files with paired bootstrap intervals of B - A."""
    a, b = load_result(path_a), load_result(path_b)
    if a["benchmark"] != b["benchmark"]:
        raise DataError(f"results are from different benchmarks: {a['benchmark']} vs {b['benchmark']}",
                        file=str(path_b), field="benchmark")
    columns = JUDGE_COLUMNS.get(a["benchmark"], ("correct",))
    grouped = a["benchmark"] == "preference" or a["benchmark"] in JUDGE_COLUMNS
    if grouped:
        strata_a, strata_b = _preference_strata(a, columns), _preference_strata(b, columns)
        label = _pref_label
    else:
        from rmforge.evaluate.benchmarks import build_strata, get_spec

        spec = get_spec(a["benchmark"])
        strata_a, strata_b = build_strata(spec, a["samples"]), build_strata(spec, b["samples"])
        statistic, label = spec.statistic, spec.figure_label
    paired, width = rules.paired_strata(strata_a, strata_b)
    if not paired:
        raise DataError("the two results share no sample ids", file=str(path_b))
    if grouped:
        statistic = _preference_statistic({k: len(keys) for k, (keys, _) in paired.items()},
                                          ("overall", "mean reward score")[:len(columns)])
    diff = rules.bootstrap_statistic(paired, rules.difference_statistic(statistic, width), n_boot, alpha, seed)
    means = {k: rules.column_means(rows) for k, (_, rows) in paired.items()}
    va = statistic({k: v[:width] for k, v in means.items()})
    vb = statistic({k: v[width:] for k, v in means.items()})
    n_total = sum(len(k) for k, _ in paired.values())
    rows = []
    for key, (d, lo, hi) in diff.items():
        shown = label(key)
        if shown is None:
            continue
        stratum = key.split(":", 1)[1] if key.startswith(("subset:", "domain:", "group:")) else key.split(":")[0]
        n = len(paired[stratum][0]) if stratum in paired else n_total
        rows.append((shown.strip(), float(va[key]), float(vb[key]), d, lo, hi, n))
    rows.sort(key=lambda r: not r[0].endswith(("score", "overall")))
    return Comparison(a["benchmark"], (a.get("model") or str(path_a), b.get("model") or str(path_b)), rows,
                      n_boot, alpha)


JUDGE_COLUMNS = {"judge-pairwise": ("correct",), "judge-pointwise": ("correct", "reward")}
"""Per-example columns of judge results that enter the comparison (accuracy first)."""


def _judge_result(data: dict[str, Any]) -> dict[str, Any]:
    """An ``rmforge eval judge --json`` result in the shape of the other results."""
    m = data["metrics"]
    samples = data.get("examples") or []
    if samples and "correct" not in samples[0]:
        raise DataError("judge result without per-example 'correct' fields (written by an older rmforge); "
                        "re-run rmforge eval judge --json")
    if m["mode"] == "pairwise":
        samples = _comparisons(samples)
    return {"benchmark": f"judge-{m['mode']}", "model": m.get("model"), "samples": samples}


def _comparisons(rows: list[dict]) -> list[dict]:
    """Pairwise rows merged per comparison (ids ``<pair>@A`` / ``<pair>@B``; columns averaged), so
    the bootstrap resamples comparisons: the two orders of one pair are not independent items."""
    merged: dict[str, dict] = {}
    for r in rows:
        key = str(r["id"]).rsplit("@", 1)[0]
        m = merged.setdefault(key, {"id": key, "group": r.get("group"), "n": 0, "correct": 0.0, "reward": 0.0})
        m["n"] += 1
        m["correct"] += float(r["correct"])
        m["reward"] += float(r["reward"])
    for m in merged.values():
        m["correct"] /= m["n"]
        m["reward"] /= m["n"]
    return list(merged.values())


def _preference_strata(result: dict[str, Any], columns: tuple[str, ...] = ("correct",)) -> rules.Strata:
    groups: dict[str, tuple[list[str], list[list[float]]]] = {}
    for rec in result["samples"]:
        if rec.get("correct") is None:
            continue
        keys, vals = groups.setdefault(str(rec.get("group") or "(none)"), ([], []))
        keys.append(rec["id"])
        vals.append([float(rec[c]) for c in columns])
    return {k: (keys, np.asarray(vals, dtype=np.float64)) for k, (keys, vals) in groups.items()}


def _preference_statistic(sizes: dict[str, int], figures: tuple[str, ...] = ("overall",)):
    """Overall figures (column ``i`` of ``figures``; group means weighted by their fixed sizes) and
    per-group accuracy (column 0)."""
    total = sum(sizes.values())

    def stat(means):
        out = {name: sum(sizes[k] * v[..., i] for k, v in means.items()) / total for i, name in enumerate(figures)}
        if len(means) > 1:
            out.update({f"group:{k}": v[..., 0] for k, v in sorted(means.items())})
        return out

    return stat


def _pref_label(key: str) -> str | None:
    return "  " + key[6:] if key.startswith("group:") else key
