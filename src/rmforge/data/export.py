"""Export canonical samples to the file layouts of the reward-model training approaches.

One exporter per approach, each a small generator ``fn(sample, ctx) -> dict records``
registered in :data:`EXPORTERS` (with its Arrow schema in :data:`EXPORT_SCHEMAS` and its
options model in :data:`EXPORT_OPTIONS`):

- ``bt``: Bradley-Terry / TRL conversational preference rows (``prompt``, ``chosen``,
  ``rejected`` message lists plus ``*_text`` strings, ``margin``, ``tie``, ``id``, ``subset``);
- ``sft``: ``messages`` = prompt + preferred response, and ``id``;
- ``pointwise``: generative pointwise judge rows ``id``, ``input``, ``output`` (``<score>3</score>``), ``label``;
- ``pairwise``: generative pairwise judge rows ``input``, ``output`` (``<preference>A</preference>``),
  ``metadata`` {id, chosen_position, subset, margin, source};
- ``verl``: verl RL dataset rows ``data_source``, ``prompt``, ``ability``,
  ``reward_model`` {style, ground_truth}, ``extra_info`` {split, index, id, subset, task,
  chosen_position, attribute, scale_min, scale_max}.

N-way samples become (better, worse) comparisons by rank (or by ``candidate_scores``, higher
is better, when there are no ranks); expanded rows get ids ``<id>/<i>><j>`` (candidate indices).
Pairs feed pointwise rows only when ``metadata["chosen_scores"]`` / ``metadata["rejected_scores"]``
hold attribute -> score dicts. Samples that an exporter cannot use are counted in
:attr:`ExportReport.skipped` by reason. Output is written atomically through
:func:`rmforge.data.io.write_records` (``.jsonl``, ``.jsonl.gz`` or ``.parquet``), so a failing
export leaves no file behind.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal

import pyarrow as pa
from pydantic import model_validator

from rmforge.config import ConfigModel, build_config
from rmforge.data import judge_templates as tpl
from rmforge.data.io import write_records
from rmforge.data.schema import Conversation, Sample, Scale, text
from rmforge.errors import ConfigError

# ------------------------------------------------------------------------------ options


class PairOptions(ConfigModel):
    nway: Literal["pairs", "best_vs_rest", "skip"] = "best_vs_rest"
    """N-way samples: every (better, worse) pair, best candidate(s) vs every worse one, or skip."""


class SFTOptions(ConfigModel):
    include_pointwise: bool = False
    """Also write prompt + response for pointwise samples (their quality is not checked)."""


class ScoreOptions(ConfigModel):
    attribute: str | None = None
    """Score key used as the label (default: the sample's first score key)."""
    weights: dict[str, float] | None = None
    """Label = weighted average of these score keys (stays on the declared scale); excludes ``attribute``."""
    scale: Scale | None = None
    """Scale for samples that declare none (samples without either are skipped as ``no_scale``)."""

    @model_validator(mode="after")
    def _one_label_rule(self) -> "ScoreOptions":
        if self.weights is not None:
            if self.attribute is not None:
                raise ValueError("give either 'attribute' or 'weights', not both")
            if not self.weights or sum(self.weights.values()) <= 0:
                raise ValueError("'weights' needs at least one key and a positive sum")
        return self


class PairwiseOptions(PairOptions):
    seed: int = 0
    """Seed of the hash that places the chosen response at A or B (when the sample does not say)."""
    both_orders: bool = False
    """Write every comparison twice, with the chosen response at A and at B."""


class VerlOptions(PairwiseOptions, ScoreOptions):
    task: Literal["auto", "pairwise", "pointwise"] = "auto"
    """Judge task; ``auto``: pairwise for pair/N-way samples, pointwise for pointwise samples."""
    ability: str = "reward_modeling"
    data_source: str | None = None
    """Overrides ``data_source`` (default: the sample's source, else "rmforge")."""


# ------------------------------------------------------------------------------ schemas

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_CONV = pa.list_(_MESSAGE)

BT_SCHEMA = pa.schema([
    ("id", pa.string()), ("prompt", _CONV), ("chosen", _CONV), ("rejected", _CONV),
    ("prompt_text", pa.string()), ("chosen_text", pa.string()), ("rejected_text", pa.string()),
    ("margin", pa.float64()), ("tie", pa.bool_()), ("subset", pa.string()),
])
SFT_SCHEMA = pa.schema([("id", pa.string()), ("messages", _CONV)])
POINTWISE_SCHEMA = pa.schema([("id", pa.string()), ("input", _CONV), ("output", pa.string()), ("label", pa.float64())])
PAIRWISE_SCHEMA = pa.schema([
    ("input", _CONV), ("output", pa.string()),
    ("metadata", pa.struct([("id", pa.string()), ("chosen_position", pa.string()), ("subset", pa.string()),
                            ("margin", pa.float64()), ("source", pa.string())])),
])
VERL_SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", _CONV),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct([
        ("split", pa.string()), ("index", pa.int64()), ("id", pa.string()), ("subset", pa.string()),
        ("task", pa.string()), ("chosen_position", pa.string()), ("attribute", pa.string()),
        ("scale_min", pa.float64()), ("scale_max", pa.float64()),
    ])),
])

# ------------------------------------------------------------------------------ registry


@dataclass
class ExportContext:
    """What an exporter sees besides the sample."""

    options: Any
    """The validated options model of the exporter."""
    index: int = 0
    """0-based position of the current sample in the input."""
    rows: int = 0
    """Rows emitted before the one being built (exporters are lazy generators)."""
    skipped: Counter = field(default_factory=Counter)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n


ExportFn = Callable[[Sample, ExportContext], Iterable[dict]]
EXPORTERS: dict[str, ExportFn] = {}
EXPORT_SCHEMAS: dict[str, pa.Schema] = {}
EXPORT_OPTIONS: dict[str, type[ConfigModel]] = {}


def register_exporter(name: str, schema: pa.Schema, options: type[ConfigModel]) -> Callable[[ExportFn], ExportFn]:
    """Decorator registering an exporter with its Parquet schema and options model."""

    def wrap(fn: ExportFn) -> ExportFn:
        EXPORTERS[name], EXPORT_SCHEMAS[name], EXPORT_OPTIONS[name] = fn, schema, options
        return fn

    return wrap


@dataclass
class ExportReport:
    rows_written: int
    skipped: dict[str, int]
    """Reason -> number of samples (or responses, for per-response reasons) not exported."""
    path: str
    format: str = ""


def export_samples(samples: Iterable[Sample], to: str, path: str | os.PathLike, *, overwrite: bool = False,
                   options: dict | None = None) -> ExportReport:
    """Stream ``samples`` through exporter ``to`` into ``path`` (atomic; jsonl or parquet by extension)."""
    if to not in EXPORTERS:
        close = difflib.get_close_matches(str(to), list(EXPORTERS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown export format '{to}' (known: {', '.join(sorted(EXPORTERS))}){hint}")
    ctx = ExportContext(build_config(EXPORT_OPTIONS[to], dict(options or {}), source=f"export options ({to})"))
    fn = EXPORTERS[to]

    def records() -> Iterator[dict]:
        for i, sample in enumerate(samples):
            ctx.index = i
            for rec in fn(sample, ctx):
                yield rec
                ctx.rows += 1

    n = write_records(path, records(), overwrite=overwrite, schema=EXPORT_SCHEMAS[to])
    return ExportReport(rows_written=n, skipped=dict(sorted(ctx.skipped.items())), path=str(path), format=to)


# ------------------------------------------------------------------------------ shared helpers


def _messages(conv: Conversation | None) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in conv or ()]


def _user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def _badness(s: Sample) -> list[float] | None:
    """Per-candidate rank (lower is better): ranks, else negated scores; None if a score is not finite."""
    if s.ranks is not None:
        return [float(r) for r in s.ranks]
    if not all(math.isfinite(v) for v in s.candidate_scores):
        return None
    return [-v for v in s.candidate_scores]


@dataclass
class _Comparison:
    id: str
    better: Conversation
    worse: Conversation
    margin: float | None
    tie: bool


def _comparisons(s: Sample, ctx: ExportContext, mode: str) -> list[_Comparison]:
    """The (better, worse) comparisons of a pair or N-way sample; skips (and counts) the rest."""
    if s.kind == "pair":
        return [_Comparison(s.id, s.chosen, s.rejected, s.margin, s.tie)]
    if s.kind == "pointwise":
        ctx.skip("pointwise_sample")
        return []
    if mode == "skip":
        ctx.skip("nway_sample")
        return []
    order = _badness(s)
    if order is None:
        ctx.skip("non_finite_score")
        return []
    idx = range(len(order))
    if mode == "pairs":
        pairs = [(i, j) for i in idx for j in idx if order[i] < order[j]]
    else:
        best = min(order)
        pairs = [(i, j) for i in idx if order[i] == best for j in idx if order[j] > best]
    if not pairs:
        ctx.skip("nway_all_tied")
    return [_Comparison(f"{s.id}/{i}>{j}", s.candidates[i], s.candidates[j], None, False) for i, j in pairs]


def _chosen_position(s: Sample, comparison_id: str, seed: int) -> str:
    """A pair's ``metadata["position_of_chosen"]`` (or ``"chosen_position"``, as the helpsteer2-pairwise
    converter writes it), else a seeded hash of the comparison id (about 50/50)."""
    if s.kind == "pair":
        for key in ("position_of_chosen", "chosen_position"):
            if s.metadata.get(key) in ("A", "B"):
                return s.metadata[key]
    digest = hashlib.blake2b(f"{seed}\x00{comparison_id}".encode(), digest_size=8).digest()
    return "A" if digest[0] < 128 else "B"


@dataclass
class _Judged:
    id: str
    content: str
    """The rendered judge prompt."""
    verdict: str
    """``A``/``B``/``tie`` or the formatted score."""
    position: str | None = None
    attribute: str | None = None
    label: float | None = None
    scale: Scale | None = None
    margin: float | None = None


def _pairwise_items(s: Sample, ctx: ExportContext) -> Iterator[_Judged]:
    opts = ctx.options
    for c in _comparisons(s, ctx, opts.nway):
        first = _chosen_position(s, c.id, opts.seed)
        for pos in ([first, "B" if first == "A" else "A"] if opts.both_orders else [first]):
            a, b = (c.better, c.worse) if pos == "A" else (c.worse, c.better)
            yield _Judged(c.id, tpl.pairwise_prompt(s.prompt, a, b), "tie" if c.tie else pos, position=pos,
                          margin=c.margin)


def _label(scores: dict[str, float], opts: ScoreOptions) -> tuple[float, str] | None:
    """(label, attribute description) from named scores, or None when a needed key is missing."""
    if opts.weights is not None:
        if not all(k in scores for k in opts.weights):
            return None
        total = sum(opts.weights.values())
        return sum(w * scores[k] for k, w in opts.weights.items()) / total, "overall quality"
    key = opts.attribute if opts.attribute is not None else next(iter(scores), None)
    return (scores[key], key) if key in scores else None


def _pointwise_items(s: Sample, ctx: ExportContext) -> Iterator[_Judged]:
    opts = ctx.options
    scale = s.scale or opts.scale
    graded: list[tuple[str, Conversation, tuple[float, str] | None]] = []
    if s.kind == "pointwise":
        graded.append((s.id, s.response, _label(s.scores, opts)))
    elif s.kind == "pair":
        for role, conv in (("chosen", s.chosen), ("rejected", s.rejected)):
            scores = s.metadata.get(f"{role}_scores")
            if isinstance(scores, dict):
                graded.append((f"{s.id}/{role}", conv, _label(scores, opts)))
        if not graded:
            ctx.skip("pair_without_scores")
            return
    elif s.candidate_scores is None:
        ctx.skip("nway_without_scores")
        return
    else:
        attribute = opts.attribute or "overall quality"
        graded.extend((f"{s.id}/{i}", conv, (v, attribute)) for i, (conv, v) in
                      enumerate(zip(s.candidates, s.candidate_scores)))
    if scale is None:
        ctx.skip("no_scale", len(graded))
        return
    for row_id, conv, labelled in graded:
        if labelled is None:
            ctx.skip("missing_attribute")
        elif not math.isfinite(labelled[0]):
            ctx.skip("non_finite_score")
        else:
            value, attribute = labelled
            yield _Judged(row_id, tpl.pointwise_prompt(s.prompt, conv, attribute, scale), tpl.format_number(value),
                          attribute=attribute, label=float(value), scale=scale)


# ------------------------------------------------------------------------------ exporters


@register_exporter("bt", BT_SCHEMA, PairOptions)
def export_bt(s: Sample, ctx: ExportContext) -> Iterator[dict]:
    """Bradley-Terry / TRL preference rows (one per comparison)."""
    prompt, prompt_text = _messages(s.prompt), text(s.prompt)
    for c in _comparisons(s, ctx, ctx.options.nway):
        yield {"id": c.id, "prompt": prompt, "chosen": _messages(c.better), "rejected": _messages(c.worse),
               "prompt_text": prompt_text, "chosen_text": text(c.better), "rejected_text": text(c.worse),
               "margin": c.margin, "tie": c.tie, "subset": s.subset}


@register_exporter("sft", SFT_SCHEMA, SFTOptions)
def export_sft(s: Sample, ctx: ExportContext) -> Iterator[dict]:
    """Prompt + chosen (pair), + best candidate (N-way), + response (pointwise, if enabled)."""
    if s.kind == "pair":
        response = s.chosen
    elif s.kind == "nway":
        order = _badness(s)
        if order is None:
            ctx.skip("non_finite_score")
            return
        response = s.candidates[order.index(min(order))]
    elif ctx.options.include_pointwise:
        response = s.response
    else:
        ctx.skip("pointwise_sample")
        return
    yield {"id": s.id, "messages": _messages(s.prompt) + _messages(response)}


@register_exporter("pointwise", POINTWISE_SCHEMA, ScoreOptions)
def export_pointwise(s: Sample, ctx: ExportContext) -> Iterator[dict]:
    """Generative pointwise judge rows: judge prompt -> ``<score>N</score>``."""
    for item in _pointwise_items(s, ctx):
        yield {"id": item.id, "input": _user(item.content), "output": tpl.score_target(item.label),
               "label": item.label}


@register_exporter("pairwise", PAIRWISE_SCHEMA, PairwiseOptions)
def export_pairwise(s: Sample, ctx: ExportContext) -> Iterator[dict]:
    """Generative pairwise judge rows: judge prompt -> ``<preference>A|B|tie</preference>``."""
    for item in _pairwise_items(s, ctx):
        yield {"input": _user(item.content), "output": tpl.preference_target(item.verdict),
               "metadata": {"id": item.id, "chosen_position": item.position, "subset": s.subset,
                            "margin": item.margin, "source": s.source}}


@register_exporter("verl", VERL_SCHEMA, VerlOptions)
def export_verl(s: Sample, ctx: ExportContext) -> Iterator[dict]:
    """verl RL dataset rows; ``reward_model.ground_truth`` is the verdict or the score as text."""
    opts = ctx.options
    task = opts.task if opts.task != "auto" else ("pointwise" if s.kind == "pointwise" else "pairwise")
    items = _pointwise_items(s, ctx) if task == "pointwise" else _pairwise_items(s, ctx)
    for item in items:
        yield {
            "data_source": opts.data_source or s.source or "rmforge",
            "prompt": _user(item.content),
            "ability": opts.ability,
            "reward_model": {"style": "rule", "ground_truth": item.verdict},
            "extra_info": {"split": s.split, "index": ctx.rows, "id": item.id, "subset": s.subset, "task": task,
                           "chosen_position": item.position, "attribute": item.attribute,
                           "scale_min": item.scale.min if item.scale else None,
                           "scale_max": item.scale.max if item.scale else None},
        }
