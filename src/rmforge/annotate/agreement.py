"""Inter-annotator agreement over pulled annotations.

A *measure* is one thing annotators label: the preference (pairwise, nominal), each rated
attribute (pointwise, ordinal) or the rank of each response (ranking, ordinal; a unit is one
(task, response)). For every measure: Cohen's kappa per annotator pair (quadratic weights
for ordinal measures), Fleiss' kappa (units with >= 2 labels; variable numbers of raters
allowed), Krippendorff's alpha (the ``krippendorff`` package: nominal, or ordinal and
interval) and percent agreement (agreeing label pairs / all label pairs). Pairwise data
adds each annotator's position bias (share of ``A`` among A/B choices, two-sided binomial
test against 0.5) and every report lists the items whose agreement is below a threshold.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Hashable, Sequence

import numpy as np

Units = dict[Hashable, dict[str, Hashable]]
"""unit id (sample id, or (sample id, response) for ranks) -> annotator -> label"""


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable], weights: str | None = None) -> float:
    """Cohen's kappa of two aligned label lists (``weights``: None, linear or quadratic)."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b) or len(a) < 2:
        return float("nan")
    if len(set(a) | set(b)) < 2:
        return 1.0 if list(a) == list(b) else float("nan")
    return float(cohen_kappa_score(list(a), list(b), weights=weights))


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an (items, categories) count table; rows may have different totals >= 2."""
    counts = np.asarray(counts, dtype=float)
    n_i = counts.sum(1)
    counts = counts[n_i >= 2]
    n_i = n_i[n_i >= 2]
    if len(counts) == 0:
        return float("nan")
    p_item = ((counts ** 2).sum(1) - n_i) / (n_i * (n_i - 1))
    p_cat = counts.sum(0) / n_i.sum()
    p_e = float((p_cat ** 2).sum())
    if p_e >= 1.0:
        return float("nan")
    return float((p_item.mean() - p_e) / (1 - p_e))


def krippendorff_alpha(units: Units, level: str, codes: dict[Hashable, float] | None = None) -> float:
    """Krippendorff's alpha over units (missing labels allowed); nominal labels are coded as ints."""
    import krippendorff

    annotators = sorted({a for labels in units.values() for a in labels})
    if len(annotators) < 2:
        return float("nan")
    data = np.full((len(annotators), len(units)), np.nan)
    for j, labels in enumerate(units.values()):
        for a, value in labels.items():
            data[annotators.index(a), j] = codes[value] if codes is not None else float(value)
    pairable = (~np.isnan(data)).sum(0) >= 2
    if pairable.sum() < 1 or len(np.unique(data[:, pairable][~np.isnan(data[:, pairable])])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def unit_agreement(labels: Sequence[Hashable]) -> float:
    """Share of agreeing pairs among one unit's labels (1.0 = unanimous; NaN below 2 labels)."""
    n = len(labels)
    if n < 2:
        return float("nan")
    return sum(c * (c - 1) for c in Counter(labels).values()) / (n * (n - 1))


def percent_agreement(units: Units) -> float:
    """Agreeing label pairs over all label pairs, pooled across units with >= 2 labels."""
    agree = total = 0
    for labels in units.values():
        n = len(labels)
        if n >= 2:
            agree += sum(c * (c - 1) for c in Counter(labels.values()).values())
            total += n * (n - 1)
    return agree / total if total else float("nan")


def measure_stats(units: Units, ordinal: bool) -> dict:
    """All agreement statistics for one measure."""
    categories = sorted({v for labels in units.values() for v in labels.values()}, key=str)
    codes = {c: float(i) for i, c in enumerate(categories)}
    annotators = sorted({a for labels in units.values() for a in labels})
    pairs = []
    for x, y in itertools.combinations(annotators, 2):
        common = [u for u, labels in units.items() if x in labels and y in labels]
        la = [units[u][x] for u in common]
        lb = [units[u][y] for u in common]
        pairs.append({"annotators": [x, y], "n": len(common),
                      "kappa": _clean(cohen_kappa(la, lb, "quadratic" if ordinal else None)),
                      "percent_agreement": _clean(sum(p == q for p, q in zip(la, lb)) / len(common)) if common else None})
    table = np.array([[Counter(labels.values())[c] for c in categories] for labels in units.values()]) \
        if units and categories else np.zeros((0, 0))
    out = {"level": "ordinal" if ordinal else "nominal", "units": len(units),
           "units_with_2_plus": sum(len(labels) >= 2 for labels in units.values()),
           "annotators": annotators, "percent_agreement": _clean(percent_agreement(units)),
           "fleiss_kappa": _clean(fleiss_kappa(table)) if table.size else None, "cohen": pairs}
    if ordinal:
        out["krippendorff_alpha_ordinal"] = _clean(krippendorff_alpha(units, "ordinal"))
        out["krippendorff_alpha_interval"] = _clean(krippendorff_alpha(units, "interval"))
    else:
        out["krippendorff_alpha_nominal"] = _clean(krippendorff_alpha(units, "nominal", codes))
    return out


def position_bias(choices: dict[str, list[str]]) -> dict[str, dict]:
    """Per annotator: share of ``A`` among their A/B choices (ties left out) and a binomial p-value."""
    from scipy.stats import binomtest

    out = {}
    for annotator, positions in sorted(choices.items()):
        n_a, n_b = positions.count("A"), positions.count("B")
        n = n_a + n_b
        out[annotator] = {"a": n_a, "b": n_b, "tie": len(positions) - n,
                          "a_share": _clean(n_a / n) if n else None,
                          "p_value": _clean(binomtest(n_a, n, 0.5).pvalue) if n else None}
    return out


def collect_units(samples) -> tuple[str | None, dict[str, Units], dict[str, list[str]], int]:
    """(kind, measure -> units, annotator -> shown positions chosen, samples without annotations)."""
    kind, measures, positions, missing = None, defaultdict(dict), defaultdict(list), 0
    for s in samples:
        anns = s.metadata.get("annotations") or []
        if not anns:
            missing += 1
            continue
        for ann in anns:
            who = str(ann["annotator"])
            if "label" in ann:
                kind = "pairwise"
                measures["preference"].setdefault(s.id, {})[who] = ann["label"]
                positions[who].append(ann.get("position"))
            elif "scores" in ann:
                kind = "pointwise"
                for attr, value in ann["scores"].items():
                    measures[attr].setdefault(s.id, {})[who] = value
            elif "ranks" in ann:
                kind = "ranking"
                for c, rank in enumerate(ann["ranks"]):
                    measures["rank"].setdefault((s.id, c), {})[who] = rank
    return kind, dict(measures), dict(positions), missing


def agreement_report(samples, threshold: float = 0.75) -> dict:
    """Agreement statistics of pulled samples (see the module docstring) as a JSON-ready dict."""
    kind, measures, positions, missing = collect_units(samples)
    report = {"kind": kind, "samples_without_annotations": missing,
              "measures": {name: measure_stats(units, ordinal=kind != "pairwise") for name, units in measures.items()}}
    if kind == "pairwise":
        report["position_bias"] = position_bias(positions)
    per_item: dict[str, list[float]] = defaultdict(list)
    for units in measures.values():
        for unit, labels in units.items():
            value = unit_agreement(list(labels.values()))
            if not math.isnan(value):
                per_item[unit[0] if isinstance(unit, tuple) else unit].append(value)
    low = [{"id": item, "agreement": round(float(np.mean(v)), 6)} for item, v in per_item.items()
           if np.mean(v) < threshold]
    report["low_agreement"] = sorted(low, key=lambda r: (r["agreement"], r["id"]))
    report["low_agreement_threshold"] = threshold
    return report
