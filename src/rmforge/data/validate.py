"""Dataset validation: counts, length statistics and data-quality issues in one streaming pass.

:func:`validate_samples` reads any iterable of :class:`~rmforge.data.schema.Sample` once and keeps
only 16-byte hashes (for duplicate, leak and contradiction checks) plus one small integer per
prompt/response length (for exact percentiles); sample objects are never held.

Issue codes (``count`` semantics in brackets):

=====================  ========  ==========================================================
code                   severity  meaning
=====================  ========  ==========================================================
empty_response         error     a response has no text [samples]
chosen_equals_rejected error     chosen and rejected have the same text [samples]
non_finite             error     a score, candidate score or margin is NaN/inf [samples]
score_out_of_scale     error     a score lies outside the declared ``scale`` [samples]
duplicate_id           error     an id seen before [repeat occurrences]
prompt_leak            error     one normalized prompt in two splits [distinct prompts]
contradictory_label    error     (prompt, a, b) labelled a>b and b>a, or tie and non-tie [distinct pairs]
empty_prompt           warning   the prompt has no text [samples]
missing_scale          warning   a pointwise sample without ``scale`` [samples]
duplicate_sample       warning   same prompt and responses as an earlier sample [repeat occurrences]
identical_candidates   warning   two N-way candidates with the same text [samples]
ranks_not_from_1       warning   N-way ranks whose best rank is not 1 [samples]
=====================  ========  ==========================================================
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from array import array
from collections import Counter
from itertools import combinations
from typing import Any, Iterable, Literal

from pydantic import BaseModel, Field, computed_field

from rmforge.data.schema import KINDS, Conversation, Sample, text
from rmforge.data.textnorm import prompt_key  # the same key split/dedup use, so leak checks agree
from rmforge.fileio import atomic_text

Severity = Literal["error", "warning"]

CHECKS: dict[str, tuple[Severity, str]] = {
    "empty_response": ("error", "response with empty text"),
    "chosen_equals_rejected": ("error", "chosen and rejected responses are identical"),
    "non_finite": ("error", "non-finite (NaN/inf) score or margin"),
    "score_out_of_scale": ("error", "score outside the declared scale"),
    "duplicate_id": ("error", "id already used by an earlier sample"),
    "prompt_leak": ("error", "the same normalized prompt occurs in more than one split"),
    "contradictory_label": ("error", "the same (prompt, response pair) has conflicting preference labels"),
    "empty_prompt": ("warning", "prompt with empty text"),
    "missing_scale": ("warning", "pointwise sample without a declared scale"),
    "duplicate_sample": ("warning", "same prompt and responses as an earlier sample"),
    "identical_candidates": ("warning", "N-way sample with identical candidates"),
    "ranks_not_from_1": ("warning", "N-way ranks do not start at 1"),
}
"""code -> (severity, message), in report order."""


class Issue(BaseModel):
    """One kind of problem found in the data."""

    severity: Severity
    code: str
    count: int
    message: str
    examples: list[str] = Field(default_factory=list)
    """Ids of the first offending samples (at most ``max_examples``)."""


class LengthStats(BaseModel):
    """Distribution of one length measure (None everywhere when there is nothing to measure)."""

    count: int = 0
    min: float | None = None
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None


class PairStats(BaseModel):
    """Length bias of pairwise samples (chosen minus rejected)."""

    count: int = 0
    chars_diff_mean: float | None = None
    words_diff_mean: float | None = None
    chosen_longer_share: float | None = None
    """Share of pairs whose chosen text has strictly more characters than the rejected one."""


class ValidationReport(BaseModel):
    """Result of :func:`validate_samples`; JSON round-trips through ``to_dict``/``from_dict``."""

    total: int = 0
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    """``kind``, ``split``, ``subset`` and ``source`` -> value -> number of samples ("(none)" if unset)."""
    lengths: dict[str, LengthStats] = Field(default_factory=dict)
    """``prompt_chars``, ``prompt_words``, ``response_chars``, ``response_words`` (every response)."""
    pairs: PairStats = Field(default_factory=PairStats)
    issues: list[Issue] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when no issue has severity ``error``."""
        return not any(i.severity == "error" for i in self.issues)

    def issue(self, code: str) -> Issue | None:
        return next((i for i in self.issues if i.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationReport":
        return cls.model_validate({k: v for k, v in data.items() if k != "ok"})

    def to_json(self, path: str | os.PathLike, overwrite: bool = True) -> None:
        """Write the report atomically; replaces an existing report unless ``overwrite=False``."""
        with atomic_text(path, overwrite) as fh:
            json.dump(self.to_dict(), fh, ensure_ascii=False, indent=2)
            fh.write("\n")

    def render(self, console) -> None:
        """Print counts, length statistics and issues as rich tables."""
        from rich.markup import escape
        from rich.table import Table

        counts = Table(title=f"Samples: {self.total}")
        counts.add_column("field")
        counts.add_column("value")
        counts.add_column("samples", justify="right")
        for fld, values in self.counts.items():
            for value, n in values.items():
                counts.add_row(fld, escape(value), str(n))  # subset/source names may hold [brackets]
        console.print(counts)

        lengths = Table(title="Lengths")
        for col in ("measure", "count", "min", "mean", "p50", "p95", "max"):
            lengths.add_column(col, justify="left" if col == "measure" else "right")
        for name, st in self.lengths.items():
            lengths.add_row(name, str(st.count), *(_fmt(getattr(st, f)) for f in ("min", "mean", "p50", "p95", "max")))
        console.print(lengths)
        if self.pairs.count:
            console.print(f"pairs: {self.pairs.count}, chosen - rejected: {_fmt(self.pairs.chars_diff_mean)} chars "
                          f"/ {_fmt(self.pairs.words_diff_mean)} words on average, chosen longer in "
                          f"{100 * (self.pairs.chosen_longer_share or 0):.1f}%")

        if not self.issues:
            console.print("[green]no issues found[/green]")
            return
        issues = Table(title="Issues")
        for col in ("severity", "code", "count", "message", "examples"):
            issues.add_column(col, justify="right" if col == "count" else "left")
        for i in self.issues:
            style = "red" if i.severity == "error" else "yellow"
            issues.add_row(f"[{style}]{i.severity}[/{style}]", i.code, str(i.count), escape(i.message),
                           escape(", ".join(i.examples)))
        console.print(issues)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _digest(*parts: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.digest()


def _conv_digest(conv: Conversation | None) -> bytes:
    return _digest(*(f"{m.role}\x1f{m.content}" for m in conv or ()))


def _percentile(sorted_values: list[int], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of an ascending list."""
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _length_stats(values: array) -> LengthStats:
    if not values:
        return LengthStats()
    ordered = sorted(values)
    return LengthStats(count=len(ordered), min=ordered[0], mean=sum(ordered) / len(ordered),
                       p50=_percentile(ordered, 50), p95=_percentile(ordered, 95), max=ordered[-1])


def _order(sample: Sample) -> list[float] | None:
    """Per-candidate badness (lower is better) from ranks, else negated scores; None if unusable."""
    if sample.ranks is not None:
        return [float(r) for r in sample.ranks]
    scores = sample.candidate_scores or []
    if not all(math.isfinite(s) for s in scores):
        return None
    return [-s for s in scores]


class _Validator:
    def __init__(self, max_examples: int):
        self.max_examples = max_examples
        self.counts: dict[str, Counter] = {k: Counter() for k in ("kind", "split", "subset", "source")}
        self.lengths = {k: array("q") for k in ("prompt_chars", "prompt_words", "response_chars", "response_words")}
        self.found: dict[str, list] = {}  # code -> [count, examples]
        self.ids: set[bytes] = set()
        self.samples: set[bytes] = set()
        self.prompt_split: dict[bytes, str | None] = {}  # None once the leak was reported
        self.labels: dict[bytes, str] = {}  # pair key -> "<", ">", "=" or "!" (reported)
        self.pair_n = self.pair_longer = self.pair_chars = self.pair_words = 0

    def flag(self, code: str, sample_id: str, n: int = 1) -> None:
        entry = self.found.setdefault(code, [0, []])
        entry[0] += n
        if len(entry[1]) < self.max_examples and sample_id not in entry[1]:
            entry[1].append(sample_id)

    def add(self, s: Sample) -> None:
        kind = s.kind
        for fld, value in (("kind", kind), ("split", s.split), ("subset", s.subset), ("source", s.source)):
            self.counts[fld][value if value is not None else "(none)"] += 1
        prompt_text = text(s.prompt)
        self.lengths["prompt_chars"].append(len(prompt_text))
        self.lengths["prompt_words"].append(len(prompt_text.split()))
        if not prompt_text.strip():
            self.flag("empty_prompt", s.id)
        responses = s.responses()
        texts = [text(r) for r in responses]
        for t in texts:
            self.lengths["response_chars"].append(len(t))
            self.lengths["response_words"].append(len(t.split()))
        if any(not t.strip() for t in texts):
            self.flag("empty_response", s.id)
        self._numbers(s)
        self._duplicates(s, responses)
        self._leak(s)
        if kind == "pair":
            self._pair(s, texts)
        elif kind == "nway":
            self._nway(s, responses, texts)

    def _numbers(self, s: Sample) -> None:
        values = list((s.scores or {}).values()) + list(s.candidate_scores or [])
        if s.margin is not None:
            values.append(s.margin)
        if not all(math.isfinite(v) for v in values):
            self.flag("non_finite", s.id)
        if s.kind == "pointwise" and s.scale is None:
            self.flag("missing_scale", s.id)
        if s.scale is not None:
            scored = list((s.scores or {}).values()) + list(s.candidate_scores or [])
            if any(math.isfinite(v) and not s.scale.min <= v <= s.scale.max for v in scored):
                self.flag("score_out_of_scale", s.id)

    def _duplicates(self, s: Sample, responses: list[Conversation]) -> None:
        id_key = _digest(s.id)
        if id_key in self.ids:
            self.flag("duplicate_id", s.id)
        self.ids.add(id_key)
        content = _digest(s.kind, _conv_digest(s.prompt).hex(), *(_conv_digest(r).hex() for r in responses))
        if content in self.samples:
            self.flag("duplicate_sample", s.id)
        self.samples.add(content)

    def _leak(self, s: Sample) -> None:
        if s.split is None:
            return
        key = prompt_key(s)
        if not key:
            return  # prompt-less samples cannot leak
        digest = _digest(key)
        if digest not in self.prompt_split:
            self.prompt_split[digest] = s.split
        elif self.prompt_split[digest] not in (None, s.split):
            self.prompt_split[digest] = None
            self.flag("prompt_leak", s.id)

    def _label(self, s: Sample, prompt: bytes, a: bytes, b: bytes, verdict: str) -> None:
        """Record that response ``a`` is ``verdict`` (``>``, ``<`` or ``=``) response ``b``."""
        if a == b:
            return
        if a > b:
            a, b, verdict = b, a, {">": "<", "<": ">", "=": "="}[verdict]
        key = _digest(prompt.hex(), a.hex(), b.hex())
        seen = self.labels.setdefault(key, verdict)
        if seen not in (verdict, "!"):
            self.labels[key] = "!"
            self.flag("contradictory_label", s.id)

    def _pair(self, s: Sample, texts: list[str]) -> None:
        chosen, rejected = texts
        if chosen == rejected:
            self.flag("chosen_equals_rejected", s.id)
        self.pair_n += 1
        self.pair_chars += len(chosen) - len(rejected)
        self.pair_words += len(chosen.split()) - len(rejected.split())
        self.pair_longer += len(chosen) > len(rejected)
        self._label(s, _conv_digest(s.prompt), _conv_digest(s.chosen), _conv_digest(s.rejected),
                    "=" if s.tie else ">")

    def _nway(self, s: Sample, responses: list[Conversation], texts: list[str]) -> None:
        if len(set(texts)) < len(texts):
            self.flag("identical_candidates", s.id)
        if s.ranks is not None and min(s.ranks) != 1:
            self.flag("ranks_not_from_1", s.id)
        order = _order(s)
        if order is None:
            return
        prompt = _conv_digest(s.prompt)
        digests = [_conv_digest(r) for r in responses]
        for i, j in combinations(range(len(responses)), 2):
            verdict = "=" if order[i] == order[j] else (">" if order[i] < order[j] else "<")
            self._label(s, prompt, digests[i], digests[j], verdict)

    def report(self) -> ValidationReport:
        counts = {fld: dict(sorted(c.items())) for fld, c in self.counts.items()}
        counts["kind"] = {k: self.counts["kind"].get(k, 0) for k in KINDS}
        pairs = PairStats(count=self.pair_n)
        if self.pair_n:
            pairs = PairStats(count=self.pair_n, chars_diff_mean=self.pair_chars / self.pair_n,
                              words_diff_mean=self.pair_words / self.pair_n,
                              chosen_longer_share=self.pair_longer / self.pair_n)
        ordered = sorted(CHECKS, key=lambda c: CHECKS[c][0] != "error")  # stable: errors first, table order
        issues = [Issue(severity=CHECKS[c][0], code=c, count=self.found[c][0], message=CHECKS[c][1],
                        examples=self.found[c][1]) for c in ordered if c in self.found]
        return ValidationReport(total=sum(self.counts["kind"].values()), counts=counts,
                                lengths={k: _length_stats(v) for k, v in self.lengths.items()},
                                pairs=pairs, issues=issues)


def validate_samples(samples: Iterable[Sample], *, max_examples: int = 5) -> ValidationReport:
    """Check ``samples`` in one pass and return counts, length statistics and issues."""
    v = _Validator(max_examples)
    for sample in samples:
        v.add(sample)
    return v.report()
