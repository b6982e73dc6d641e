"""Benchmark evaluation (RewardBench 1/2, RM-Bench): score, apply the official rules, add CIs and diagnostics.

:func:`evaluate_benchmark` scores every response of every sample once (length-sorted batches,
input order, through the :class:`~rmforge.reward_model.scorer.Scorer`), then computes:

* every reported figure (subsets, sections/domains, difficulties, the score) with a seeded
  stratified bootstrap interval (:func:`rmforge.evaluate.rules.bootstrap_statistic`), except a
  subset whose items all score 0 or 1 (a plain accuracy), which gets the Wilson interval
  (:func:`rmforge.evaluate.stats.wilson_ci`); weighted sections, domains, the score and
  fractional credits (RewardBench 2 ties 1/k, the Ties formula) keep the bootstrap;
* the same figures for a "length-only" reward model (reward = characters of the response), so
  each row shows what "longer wins" earns under the benchmark's own rule;
* pairwise diagnostics (calibration, length baselines, length-matched accuracy, reward-length
  correlation) and, for RM-Bench, the style probe (:mod:`rmforge.evaluate.diagnostics`).

Samples the length policy drops are excluded from every figure and counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rmforge.data.converters.benchmarks import RM_BENCH_STYLES
from rmforge.data.schema import Sample, text
from rmforge.errors import RmforgeError
from rmforge.evaluate import diagnostics as dg
from rmforge.evaluate import rules
from rmforge.evaluate import stats as st
from rmforge.evaluate.benchmarks import (BenchmarkSpec, build_strata, check_samples, comparisons, figure_sizes,
                                         get_spec, n_chosen_of)
from rmforge.evaluate.preference import RunResult, _clean, _fmt, dropped_note


@dataclass
class Figure:
    """One reported number with its interval, item count and the length-only baseline."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    longer_wins: float = math.nan

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "longer_wins": self.longer_wins}


@dataclass(kw_only=True)
class BenchmarkResult(RunResult):
    """Outcome of :func:`evaluate_benchmark`; ``accuracy``/``ci_low``/``ci_high``/``n`` give the score."""

    benchmark: str
    model: str
    figures: dict[str, Figure]
    diagnostics: dict[str, Any]

    @property
    def spec(self) -> BenchmarkSpec:
        return get_spec(self.benchmark)

    @property
    def score(self) -> Figure:
        return self.figures["score"]

    accuracy = property(lambda self: self.score.value)
    ci_low = property(lambda self: self.score.ci_low)
    ci_high = property(lambda self: self.score.ci_high)
    n = property(lambda self: self.score.n)

    def rows(self) -> list[tuple[str, Figure]]:
        """(label, figure) in display order: the score first, then sections/domains with their parts."""
        label = self.spec.figure_label
        keys = [k for k in self.figures if label(k) is not None]
        head = [k for k in keys if k.startswith("score")]
        rest = [k for k in keys if not k.startswith("score")]
        if self.benchmark == "rewardbench":
            from rmforge.data.converters.benchmarks import REWARDBENCH_SECTION

            ordered = []
            for sec in (*rules.REWARDBENCH_SECTIONS, "Prior Sets"):
                if sec in self.figures:
                    ordered.append(sec)
                ordered += [k for k in rest if k.startswith("subset:") and
                            REWARDBENCH_SECTION.get(k[7:], "Prior Sets" if k[7:] in rules.PRIOR_SUBSETS else None)
                            == sec]
            ordered += [k for k in rest if k not in ordered]
            rest = ordered
        elif self.benchmark == "rm-bench":
            domains = [k[7:] for k in rest if k.startswith("domain:")]
            rest = [k for k in rest if k in rules.DIFFICULTIES] + [
                k for d in domains for k in (f"domain:{d}", *(f"{d}:{x}" for x in rules.DIFFICULTIES))]
        return [(label(k), self.figures[k]) for k in head + rest]

    def notes(self) -> list[str]:
        c, d = self.counts, self.diagnostics
        why = ", ".join(f"{k}: {v}" for k, v in c["dropped_by_reason"].items())
        cal, corr = d["calibration"], d["length_correlation"]
        lines = [f"samples {c['samples']}: scored {c['scored']}, dropped {c['dropped']}" + (f" ({why})" if why else "")
                 + f", truncated {c['truncated']}; reward ties {c['reward_ties']}",
                 f"pairwise ({d['comparisons']} chosen-vs-rejected comparisons): accuracy "
                 f"{_fmt(d['accuracy']['accuracy'])}, longer wins {_fmt(d['longer_wins']['accuracy'])}, "
                 f"length-matched {_fmt(d['length_matched']['accuracy'])} (n={d['length_matched']['n']}), "
                 f"ECE {_fmt(cal['ece'])}, reward-length spearman {_fmt(corr['spearman'])}"]
        if d.get("style"):
            s = d["style"]
            lines.append(f"style probe: detailed-minus-concise reward {_fmt(s['detail_gap'])}, "
                         f"markdown-minus-plain {_fmt(s['markdown_gap'])}")
        if c.get("missing"):
            lines.append(f"partial benchmark: no data for {', '.join(c['missing'])}")
        lines.append(f"{self.pairs_per_s:.1f} samples/s ({c['responses']} responses, {self.seconds:.2f} s)")
        return lines

    def table(self, title: str | None = None):
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(title or f"{self.spec.title}: {self.model}"), caption=escape("\n".join(self.notes())),
                      caption_justify="left")
        for col, just in (("", "left"), ("score", "right"), (f"{100 * (1 - self.alpha):g}% CI", "right"),
                          ("n", "right"), ("longer wins", "right")):
            table.add_column(col, justify=just)
        for label, f in self.rows():
            table.add_row(escape(label), _fmt(f.value), f"[{_fmt(f.ci_low)}, {_fmt(f.ci_high)}]", str(f.n),
                          _fmt(f.longer_wins), style="bold" if label.endswith("score") else None)
        return table

    def markdown(self) -> str:
        lines = [f"| {self.model} | score | {100 * (1 - self.alpha):g}% CI | n | longer wins |",
                 "|---|---:|---:|---:|---:|"]
        for label, f in self.rows():
            label = label.strip().replace("|", "\\|")
            lines.append(f"| {label} | {_fmt(f.value)} | [{_fmt(f.ci_low)}, {_fmt(f.ci_high)}] | {f.n} | "
                         f"{_fmt(f.longer_wins)} |")
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes()]) + "\n"

    def summary(self) -> str:
        return (f"{self.spec.title} score: {_fmt(self.accuracy)} [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}] "
                f"(n={self.n}{dropped_note(self.counts, self.scorer)})")

    def to_dict(self, per_sample: bool = True) -> dict[str, Any]:
        out = {"benchmark": self.benchmark, "model": self.model, "data": self.data, "accuracy": self.accuracy,
               "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n, "confidence": 1 - self.alpha,
               "figures": {k: v.to_dict() for k, v in self.figures.items()}, "diagnostics": self.diagnostics,
               "counts": self.counts, "seconds": self.seconds, "pairs_per_s": self.pairs_per_s,
               "n_boot": self.n_boot, "seed": self.seed, "scorer": self.scorer}
        if per_sample:
            out["samples"] = self.per_sample
        return _clean(out)


def sample_record(s: Sample, rewards: list[float] | None) -> dict[str, Any]:
    """The per-sample record kept in results (enough to recompute every figure)."""
    lengths = [len(text(r)) for r in s.responses()]
    rec = {"id": s.id, "subset": s.subset, "rewards": rewards, "lengths": lengths}
    if s.kind == "nway":
        rec["n_chosen"] = n_chosen_of(s)
    return rec


def compute_figures(spec: BenchmarkSpec, records: Sequence[dict], n_boot: int, alpha: float,
                    seed: int) -> dict[str, Figure]:
    """Every figure of the benchmark with its interval, count and length-only baseline."""
    strata = build_strata(spec, records)
    if not strata:
        return {}
    stats = rules.bootstrap_statistic(strata, spec.statistic, n_boot, alpha, seed)
    length_strata = build_strata(spec, [r for r in records if r["rewards"] is not None], key="lengths")
    longer = rules.bootstrap_statistic(length_strata, spec.statistic, 1, alpha, seed)
    sizes = figure_sizes(spec, strata, list(stats))
    stats.update({k: v for k, v in wilson_subsets(strata, alpha).items() if k in stats})
    return {k: Figure(v, lo, hi, sizes[k], longer.get(k, (math.nan,))[0]) for k, (v, lo, hi) in stats.items()}


def wilson_subsets(strata: rules.Strata, alpha: float) -> dict[str, tuple[float, float, float]]:
    """``{"subset:<name>": (accuracy, low, high)}`` with the Wilson interval for each one-column stratum
    whose items all score 0 or 1; other strata (fractional or composite) keep their bootstrap interval."""
    out = {}
    for name, (_, rows) in strata.items():
        if rows.shape[1] == 1 and st.is_binary(rows[:, 0]):
            k, n = int(rows[:, 0].sum()), int(rows.shape[0])
            out[f"subset:{name}"] = (k / n, *st.wilson_ci(k, n, alpha))
    return out


def evaluate_benchmark(scorer, benchmark: str, samples: Sequence[Sample], *, n_boot: int = 1000, seed: int = 0,
                       alpha: float = 0.05, data: str | None = None) -> BenchmarkResult:
    """Score ``samples`` of ``benchmark`` with ``scorer`` (see the module docstring)."""
    spec = get_spec(benchmark)
    samples = list(samples)
    check_samples(spec, samples, data)
    start = time.perf_counter()
    rewards, enc = scorer.score_samples(samples)
    seconds = time.perf_counter() - start
    records = [sample_record(s, r) for s, r in zip(samples, rewards)]
    scored = [r for r in records if r["rewards"] is not None]
    if not scored:
        raise RmforgeError(f"every sample was dropped by the length policy ({enc}); raise --max-length")
    figures = compute_figures(spec, records, n_boot, alpha, seed)
    rc, rr, lc, lr, all_r, all_l, ties = [], [], [], [], [], [], 0
    for rec in scored:
        r, ln = rec["rewards"], rec["lengths"]
        all_r += r
        all_l += ln
        ties += len(r) - len(set(r))
        for i, j in comparisons(spec, rec):
            rc.append(r[i])
            rr.append(r[j])
            lc.append(ln[i])
            lr.append(ln[j])
    diag = dg.pairwise_diagnostics(rc, rr, lc, lr, all_r, all_l, n_boot, alpha, seed)
    diag["rewards_chosen"], diag["rewards_rejected"] = _sides(spec, scored)
    if spec.name == "rm-bench":
        diag["style"] = dg.style_probe([r["rewards"] for r in scored], RM_BENCH_STYLES)
    present = {r["subset"] for r in scored}
    expected = rules.REWARDBENCH2_SUBSETS if spec.name == "rewardbench2" else (
        rules.RM_BENCH_FILES if spec.name == "rm-bench" else tuple(rules.REWARDBENCH_COUNTS))
    counts = {"samples": len(samples), "scored": enc.kept, "truncated": enc.truncated,
              "response_truncated": enc.response_truncated, "dropped": enc.num_dropped,
              "dropped_by_reason": dict(enc.dropped), "reward_ties": int(ties), "responses": len(all_r),
              "missing": [s for s in expected if s not in present]}
    return BenchmarkResult(benchmark=spec.name, model=getattr(scorer, "name", str(scorer)), figures=figures,
                           diagnostics=diag, counts=counts, seconds=seconds,
                           pairs_per_s=len(scored) / seconds if seconds > 0 else math.nan, n_boot=n_boot,
                           alpha=alpha, seed=seed, data=data, scorer=dict(getattr(scorer, "info", {}) or {}),
                           per_sample=records)


def _sides(spec: BenchmarkSpec, records: Sequence[dict]) -> tuple[list[float], list[float]]:
    """All chosen rewards and all rejected rewards (for the distribution plot)."""
    chosen, rejected = [], []
    for rec in records:
        k = 1 if spec.name == "rewardbench" else rec.get("n_chosen", 3)
        chosen += rec["rewards"][:k]
        rejected += rec["rewards"][k:]
    return chosen, rejected
