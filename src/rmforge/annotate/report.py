"""Console rendering of an agreement report (see :mod:`rmforge.annotate.agreement`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def render(report: dict, console: Console, show: int = 20) -> None:
    """Tables: one row per measure, Cohen's kappa per pair, position bias, low-agreement items."""
    console.print(f"kind: {report['kind']}; samples without annotations: {report['samples_without_annotations']}")
    table = Table("measure", "units", "units >= 2 labels", "percent agreement", "Fleiss kappa", "Krippendorff alpha",
                  title="agreement")
    for name, m in report["measures"].items():
        alpha = (f"{_fmt(m['krippendorff_alpha_nominal'])} (nominal)" if "krippendorff_alpha_nominal" in m else
                 f"{_fmt(m['krippendorff_alpha_ordinal'])} (ordinal), {_fmt(m['krippendorff_alpha_interval'])} (interval)")
        table.add_row(name, str(m["units"]), str(m["units_with_2_plus"]), _fmt(m["percent_agreement"]),
                      _fmt(m["fleiss_kappa"]), alpha)
    console.print(table)
    pairs = Table("measure", "annotator 1", "annotator 2", "shared units", "Cohen kappa", "percent agreement",
                  title="Cohen's kappa per pair (quadratic weights for ordinal measures)")
    for name, m in report["measures"].items():
        for p in m["cohen"]:
            pairs.add_row(name, *p["annotators"], str(p["n"]), _fmt(p["kappa"]), _fmt(p["percent_agreement"]))
    console.print(pairs)
    if report.get("position_bias"):
        bias = Table("annotator", "A", "B", "tie", "A share", "p (binomial, 0.5)", title="position bias")
        for who, b in report["position_bias"].items():
            bias.add_row(who, str(b["a"]), str(b["b"]), str(b["tie"]), _fmt(b["a_share"]), _fmt(b["p_value"]))
        console.print(bias)
    low = report["low_agreement"]
    console.print(f"{len(low)} items below agreement {report['low_agreement_threshold']}"
                  + (f" (first {show}):" if len(low) > show else ":" if low else ""))
    for item in low[:show]:
        console.print(f"  {item['id']}: {item['agreement']:.3f}")
