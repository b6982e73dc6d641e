"""Preference-file evaluation: accuracy with bootstrap intervals, per group, against length baselines.

Rules (``evaluate_preference``):

* pairs: correct when ``r_chosen > r_rejected`` strictly (equal rewards count as wrong and are
  counted in ``reward_ties``); pairs labelled ``tie`` in the data are excluded from every accuracy
  and counted in ``data_ties``;
* N-way samples: correct when the strictly highest reward belongs to a best-ranked candidate
  (lowest rank; ranks derived from ``candidate_scores`` when absent); a shared maximum is wrong;
* pointwise samples are not preferences: skipped and counted;
* samples the length policy drops are counted (``dropped``, by reason), never silently ignored.

Length baselines, the length-matched accuracy and the mean margin ``r_c - r_r`` use the evaluated
pairs; the reward-length correlation uses every scored response. Lengths are characters of the
response text. ``pairs_per_s`` is scored samples per second of encoding + forward passes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmforge.data.schema import Sample, text
from rmforge.errors import ConfigError, RmforgeError
from rmforge.evaluate import stats as st
from rmforge.evaluate.stats import Accuracy

GROUP_KEYS = ("subset", "category")
NO_GROUP = "(none)"


@dataclass(kw_only=True)
class RunResult:
    """Fields and JSON output shared by every evaluation result (counts, speed, bootstrap settings)."""

    counts: dict[str, Any]
    seconds: float
    pairs_per_s: float
    n_boot: int
    alpha: float
    seed: int
    data: str | None = None
    scorer: dict[str, Any] = field(default_factory=dict)
    per_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self, per_sample: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, path: str | os.PathLike, per_sample: bool = True, overwrite: bool = True) -> None:
        """Write :meth:`to_dict` atomically (an existing file is replaced only with ``overwrite``)."""
        from rmforge.fileio import atomic_text

        with atomic_text(path, overwrite=overwrite) as fh:
            json.dump(self.to_dict(per_sample), fh, indent=2, ensure_ascii=False)
            fh.write("\n")


@dataclass(kw_only=True)
class PreferenceResult(RunResult):
    """Outcome of :func:`evaluate_preference`; ``accuracy``/``ci_low``/``ci_high``/``n`` are the overall figures."""

    model: str
    overall: Accuracy
    group_by: str | None
    groups: dict[str, Accuracy]
    baselines: dict[str, Accuracy]
    length_matched: Accuracy
    length_correlation: dict[str, float]
    mean_margin: float

    @property
    def accuracy(self) -> float:
        return self.overall.accuracy

    @property
    def ci_low(self) -> float:
        return self.overall.ci_low

    @property
    def ci_high(self) -> float:
        return self.overall.ci_high

    @property
    def n(self) -> int:
        return self.overall.n

    def to_dict(self, per_sample: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN written as null); ``per_sample`` adds one record per sample."""
        out = {"benchmark": "preference", "model": self.model, "data": self.data, **self.overall.to_dict(),
               "confidence": 1 - self.alpha, "group_by": self.group_by,
               "groups": {k: v.to_dict() for k, v in self.groups.items()},
               "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
               "length_matched": self.length_matched.to_dict(), "length_correlation": dict(self.length_correlation),
               "mean_margin": self.mean_margin, "counts": self.counts, "seconds": self.seconds,
               "pairs_per_s": self.pairs_per_s, "n_boot": self.n_boot, "seed": self.seed, "scorer": self.scorer}
        if per_sample:
            out["samples"] = self.per_sample
        return _clean(out)

    def rows(self) -> list[tuple[str, Accuracy]]:
        """(label, figure) rows shared by :meth:`table` and :meth:`markdown`."""
        rows = [("overall", self.overall)]
        rows += [(f"  {self.group_by}: {k}", v) for k, v in self.groups.items()]
        rows += [("baseline: longer wins", self.baselines["longer_wins"]),
                 ("baseline: shorter wins", self.baselines["shorter_wins"]),
                 ("length-matched pairs", self.length_matched)]
        return rows

    def notes(self) -> list[str]:
        """One-line facts printed under the table (drops, ties, correlation, speed)."""
        c, corr = self.counts, self.length_correlation
        why = ", ".join(f"{k}: {v}" for k, v in c["dropped_by_reason"].items())
        return [f"samples {c['samples']}: evaluated {self.n}, dropped {c['dropped']}" + (f" ({why})" if why else "")
                + f", truncated {c['truncated']}, data ties {c['data_ties']}, pointwise skipped {c['pointwise']}",
                (f"reward ties {c['reward_ties']}, mean margin {_fmt(self.mean_margin)}, reward-length correlation "
                f"pearson {_fmt(corr['pearson'])} / spearman {_fmt(corr['spearman'])}"),
                f"{self.pairs_per_s:.1f} pairs/s ({self.seconds:.2f} s)"]

    def table(self, title: str | None = None):
        """A rich Table of :meth:`rows` with :meth:`notes` as caption."""
        from rich.markup import escape
        from rich.table import Table

        ci = f"{100 * (1 - self.alpha):g}% CI"
        table = Table(title=escape(title or f"preference accuracy: {self.model}"),
                      caption=escape("\n".join(self.notes())), caption_justify="left")
        table.add_column("")
        table.add_column("accuracy", justify="right")
        table.add_column(ci, justify="right")
        table.add_column("n", justify="right")
        for label, acc in self.rows():
            table.add_row(escape(label), _fmt(acc.accuracy), f"[{_fmt(acc.ci_low)}, {_fmt(acc.ci_high)}]", str(acc.n),
                          style="bold" if label == "overall" else None)
        return table

    def markdown(self) -> str:
        """The same table as Markdown, followed by the notes."""
        ci = f"{100 * (1 - self.alpha):g}% CI"
        lines = [f"| {self.model} | accuracy | {ci} | n |", "|---|---:|---:|---:|"]
        for label, acc in self.rows():
            label = label.strip().replace("|", "\\|")
            lines.append(f"| {label} | {_fmt(acc.accuracy)} | [{_fmt(acc.ci_low)}, {_fmt(acc.ci_high)}] | {acc.n} |")
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes()]) + "\n"

    def summary(self) -> str:
        """``accuracy: X [lo, hi] (n=N)``, with the samples the length policy dropped when there are any:
        ``(n=510; 2 dropped: response too long, max_length 512)``."""
        return (f"accuracy: {_fmt(self.accuracy)} [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}] "
                f"(n={self.n}{dropped_note(self.counts, self.scorer)})")


def dropped_note(counts: dict[str, Any], scorer: dict[str, Any] | None) -> str:
    """``"; 2 dropped: response too long, max_length 512"`` (empty when nothing was dropped)."""
    n = counts.get("dropped") or 0
    if not n:
        return ""
    why = ", ".join(f"{k}" + (f" {v}" if len(counts.get("dropped_by_reason") or {}) > 1 else "")
                    for k, v in (counts.get("dropped_by_reason") or {}).items())
    limit = ((scorer or {}).get("encoding") or {}).get("max_length")
    return f"; {n} dropped: {why or 'by the length policy'}" + (f", max_length {limit}" if limit else "")


def evaluate_preference(scorer, samples: Sequence[Sample], *, group_by: str | None = "subset", n_boot: int = 1000,
                        seed: int = 0, alpha: float = 0.05, data: str | None = None) -> PreferenceResult:
    """Score pair and N-way ``samples`` with ``scorer`` (a :class:`~rmforge.reward_model.scorer.Scorer`) and
    compute the accuracies described in the module docstring (``group_by``: subset, category or None)."""
    if group_by is not None and group_by not in GROUP_KEYS:
        raise ConfigError(f"group_by must be one of {', '.join(GROUP_KEYS)}, not '{group_by}'")
    samples = list(samples)
    pointwise = sum(s.kind == "pointwise" for s in samples)
    ties = [s for s in samples if s.kind == "pair" and s.tie]
    todo = [s for s in samples if s.kind == "nway" or s.kind == "pair" and not s.tie]
    if not todo:
        raise RmforgeError(f"no preference to evaluate among {len(samples)} samples (pointwise: {pointwise}, "
                           f"pairs labelled tie: {len(ties)}); give pairs or N-way rankings")
    start = time.perf_counter()
    rewards, enc_stats = scorer.score_samples(todo)
    seconds = time.perf_counter() - start

    def group(s: Sample) -> str:
        return (getattr(s, group_by) or NO_GROUP) if group_by else NO_GROUP

    correct, groups, records = [], {}, []
    len_c, len_r, margins, pair_correct, all_rewards, all_lengths = [], [], [], [], [], []
    reward_ties = 0
    for s, r in zip(todo, rewards):
        rec = {"id": s.id, "group": group(s) if group_by else None, "kind": s.kind, "rewards": r, "correct": None}
        records.append(rec)
        if r is None:
            continue
        lengths = [len(text(resp)) for resp in s.responses()]
        rec["lengths"] = lengths
        all_rewards += r
        all_lengths += lengths
        if s.kind == "pair":
            ok = r[0] > r[1]
            reward_ties += r[0] == r[1]
            len_c.append(lengths[0])
            len_r.append(lengths[1])
            margins.append(r[0] - r[1])
            pair_correct.append(float(ok))
        else:
            ok, tied = _nway_correct(s, r)
            reward_ties += tied
        rec["correct"] = bool(ok)
        correct.append(float(ok))
        groups.setdefault(rec["group"], []).append(float(ok))
    records += [{"id": s.id, "group": group(s) if group_by else None, "kind": "pair", "rewards": None,
                 "correct": None, "tie": True} for s in ties]
    if not correct:
        raise RmforgeError(f"every sample was dropped by the length policy ({enc_stats}); raise --max-length "
                           f"(now {scorer.encoder.max_length})")

    def acc(values) -> Accuracy:
        return st.accuracy_with_ci(values, n_boot, alpha, seed)

    counts = {"samples": len(samples), "pairs": sum(s.kind == "pair" for s in samples),
              "nway": sum(s.kind == "nway" for s in samples), "pointwise": pointwise, "data_ties": len(ties),
              "scored": enc_stats.kept, "truncated": enc_stats.truncated,
              "response_truncated": enc_stats.response_truncated, "dropped": enc_stats.num_dropped,
              "dropped_by_reason": dict(enc_stats.dropped), "reward_ties": int(reward_ties)}
    return PreferenceResult(
        model=getattr(scorer, "name", str(scorer)), overall=acc(correct), group_by=group_by,
        groups={k: acc(v) for k, v in sorted(groups.items())} if group_by else {},
        baselines=st.length_baselines(len_c, len_r, n_boot, alpha, seed),
        length_matched=st.length_matched_accuracy(pair_correct, len_c, len_r, n_boot, alpha, seed),
        length_correlation=st.length_correlation(all_rewards, all_lengths),
        mean_margin=float(np.mean(margins)) if margins else math.nan, counts=counts, seconds=seconds,
        pairs_per_s=len(correct) / seconds if seconds > 0 else math.nan, n_boot=n_boot, alpha=alpha, seed=seed,
        data=data, scorer=dict(getattr(scorer, "info", {}) or {}), per_sample=records)


def nway_ranks(s: Sample) -> list[int]:
    """Ranks of an N-way sample (1 = best); from ``candidate_scores`` by competition ranking when absent."""
    if s.ranks is not None:
        return list(s.ranks)
    sc = s.candidate_scores
    return [1 + sum(o > v for o in sc) for v in sc]


def _nway_correct(s: Sample, rewards: list[float]) -> tuple[bool, bool]:
    """(a best-ranked candidate has the strictly highest reward, the maximum is shared)."""
    ranks = nway_ranks(s)
    top = max(rewards)
    at_top = [i for i, v in enumerate(rewards) if v == top]
    return len(at_top) == 1 and ranks[at_top[0]] == min(ranks), len(at_top) > 1


def _fmt(x: float) -> str:
    return "n/a" if x is None or isinstance(x, float) and math.isnan(x) else f"{x:.4f}"


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
