"""Processing steps for a data recipe's ``process:`` list.

Each step is a config section with a ``step:`` tag (see :data:`ProcessStep`) backed by a plain
function that takes the samples plus keyword options and returns ``(samples, StepReport)``::

    process:
      - {step: length_filter, tokenizer: minilm, max_length: 512, policy: truncate_prompt}
      - {step: dedup, mode: normalized}
      - {step: filter, where: {subset: [a, b]}, min_chars: 1}
      - {step: sample, n: 1000, seed: 3}
      - {step: swap, probability: 0.5}

:func:`apply_steps` runs them in order. Steps never mutate their input samples (changed samples
are copies), keep the input order, and are deterministic for a given seed.

Position tags (``swap``): every pair that went through ``swap`` carries
``metadata["position_of_chosen"]`` (``"A"`` or ``"B"``) and ``metadata["order"]``
(``"original"`` or ``"swapped"``). Exporters that show a pair side by side (the pairwise judge
exporter) put ``chosen`` at that position and ``rejected`` at the other; an untagged pair shows
``chosen`` as A. The sample's meaning (``chosen`` is the better response) never changes.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from rmforge.config import ConfigModel
from rmforge.data.schema import Conversation, Sample, text
from rmforge.data.textnorm import TokenCounter, compile_expr, conv_key, eval_expr, shrink_prompt
from rmforge.errors import ConfigError, RmforgeError

WHERE_FIELDS = ("id", "source", "subset", "category", "split", "kind", "tie")


@dataclass
class StepReport:
    """What one step did: row counts, ``counts`` (kept/dropped/truncated and per reason), a message."""

    step: str
    rows_in: int
    rows_out: int
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _report(step: str, rows_in: int, out: list, reasons: dict[str, int], message: str,
            **extra: int) -> StepReport:
    counts = {"kept": len(out), "dropped": rows_in - len(out), **extra, **reasons}
    return StepReport(step, rows_in, len(out), counts, message)


def _reasons_text(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in reasons.items() if v) or "none"


def _with_metadata(sample: Sample, **values: Any) -> Sample:
    return sample.model_copy(update={"metadata": {**sample.metadata, **values}})


# ---------------------------------------------------------------- length_filter


def length_filter(samples: list[Sample], *, tokenizer: Any, max_length: int, policy: str = "drop",
                  reserve: int | None = None, chat_template: bool = False,
                  batch_size: int = 1000) -> tuple[list[Sample], StepReport]:
    """Drop (or fit, with ``policy="truncate_prompt"``) samples longer than ``max_length`` tokens.

    Length = prompt tokens (contents joined by newlines; role markers are ignored unless
    ``chat_template`` renders them) + tokens of the longest response's contents (reasoning text
    and per-turn markup are not counted) + ``reserve`` (default:
    :meth:`~rmforge.data.textnorm.TokenCounter.default_reserve`). Truncated samples get
    ``metadata["truncated_prompt"] = True``; ``counts["kept"]`` includes the truncated ones.
    """
    try:
        ctr = TokenCounter(tokenizer, chat_template, batch_size)
    except (ValueError, OSError) as exc:  # transformers: a folder without tokenizer files, a broken file
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise RmforgeError(f"length_filter: cannot load tokenizer '{tokenizer}': {first}") from None
    tok = ctr.tok
    reserve = ctr.default_reserve() if reserve is None else reserve
    resp = [[text(r) for r in s.responses()] for s in samples]
    flat = ctr.count([t for rs in resp for t in rs])
    longest, pos = [], 0
    for rs in resp:
        longest.append(max(flat[pos:pos + len(rs)]))
        pos += len(rs)
    prompt_len = ctr.count([ctr.render(s.prompt) for s in samples])
    fits = [p + r + reserve <= max_length for p, r in zip(prompt_len, longest)]
    new_prompts: dict[int, Conversation] = {}
    if policy == "drop":
        reasons = {"too long": fits.count(False)}
    else:
        reasons = {"responses too long": 0, "prompt too long after truncation": 0}
        if policy != "truncate_prompt":
            raise ConfigError(f"length_filter: unknown policy '{policy}' (drop or truncate_prompt)")
        if not getattr(tok, "is_fast", False):
            raise RmforgeError("length_filter: policy truncate_prompt needs a fast (Rust) tokenizer")
        budget: dict[int, int] = {}
        for i, ok in enumerate(fits):
            if not ok:
                if longest[i] + reserve > max_length:
                    reasons["responses too long"] += 1
                else:
                    budget[i] = max_length - reserve - longest[i]
        pending = {i: list(samples[i].prompt) for i in budget}
        lens = {i: prompt_len[i] for i in budget}
        for attempt in range(4):  # re-measure after each plan: joins and templates add a few tokens
            for i in [i for i in pending if lens[i] <= budget[i]]:
                new_prompts[i] = pending.pop(i)
            over = list(pending)
            if not over or attempt == 3:
                break
            msgs = [m.content for i in over for m in pending[i]]
            offs = ctr.encode(msgs, offsets=True)
            pos = 0
            for i in over:
                n = len(pending[i])
                counts = [len(o) for o in offs[pos:pos + n]]
                shrunk = None
                if n:
                    overhead = max(0, lens[i] - sum(counts))
                    shrunk = shrink_prompt(pending[i], counts, offs[pos:pos + n], budget[i] - overhead)
                pos += n
                if shrunk is None or shrunk == pending[i]:
                    del pending[i]
                    reasons["prompt too long after truncation"] += 1
                else:
                    pending[i] = shrunk
            lens = dict(zip(pending, ctr.count([ctr.render(p) for p in pending.values()])))
        reasons["prompt too long after truncation"] += len(pending)
    out: list[Sample] = []
    for i, s in enumerate(samples):
        if fits[i]:
            out.append(s)
        elif i in new_prompts:
            out.append(s.model_copy(update={"prompt": new_prompts[i],
                                            "metadata": {**s.metadata, "truncated_prompt": True}}))
    note = "" if ctr.template or not chat_template else " (tokenizer has no chat template: plain counts)"
    msg = (f"max_length {max_length} (reserve {reserve}), policy {policy}: kept {len(out)}/{len(samples)}, "
           f"truncated {len(new_prompts)}, dropped {len(samples) - len(out)} ({_reasons_text(reasons)}){note}")
    return out, _report("length_filter", len(samples), out, reasons, msg, truncated=len(new_prompts))


# ---------------------------------------------------------------- dedup


def dedup(samples: list[Sample], *, mode: str = "normalized",
          by: str = "sample") -> tuple[list[Sample], StepReport]:
    """Keep the first of each duplicate group.

    ``by="sample"``: the key is (kind, prompt, responses in order). Pairs with the same prompt
    and the same two responses are duplicates when their labels agree (same order, or both
    ties in either order) and *contradictory* when they do not (``(a, b)`` then ``(b, a)``, or a
    tie against a preference); either way the later one is dropped and counted.
    ``by="prompt"``: one sample per prompt (samples without a prompt are all kept).
    """
    norm = mode == "normalized"
    seen: dict[Any, Any] = {}
    out: list[Sample] = []
    reasons = {"duplicate": 0, "contradictory": 0}
    for s in samples:
        prompt = conv_key(s.prompt, norm)
        if by == "prompt":
            if prompt and prompt in seen:
                reasons["duplicate"] += 1
                continue
            seen[prompt] = True
        elif s.kind == "pair":
            a, b = conv_key(s.chosen, norm), conv_key(s.rejected, norm)
            label = "tie" if s.tie else (a, b)
            key = ("pair", prompt) + tuple(sorted((a, b)))
            if key in seen:
                reasons["duplicate" if seen[key] == label else "contradictory"] += 1
                continue
            seen[key] = label
        else:
            key = (s.kind, prompt) + tuple(conv_key(r, norm) for r in s.responses())
            if key in seen:
                reasons["duplicate"] += 1
                continue
            seen[key] = True
        out.append(s)
    msg = f"dedup {mode} by {by}: kept {len(out)}/{len(samples)} ({_reasons_text(reasons)})"
    return out, _report("dedup", len(samples), out, reasons, msg)


# ---------------------------------------------------------------- filter


def filter_samples(samples: list[Sample], *, where: dict[str, Any] | None = None,
                   min_chars: int | None = None, max_chars: int | None = None, drop_empty: bool = True,
                   drop_identical: bool = True, drop_ties: bool = False,
                   expr: str | None = None) -> tuple[list[Sample], StepReport]:
    """Keep samples passing every predicate; each dropped sample counts under its first failing reason.

    ``where`` matches fields (one value or a list of allowed values); character limits apply
    to every response; ``drop_empty`` drops samples with a whitespace-only response;
    ``drop_identical`` pairs whose chosen and rejected texts are equal; ``drop_ties`` tie pairs;
    ``expr`` is a restricted Python expression (see :func:`rmforge.data.textnorm.compile_expr`).
    """
    where = where or {}
    for key in where:
        if key not in WHERE_FIELDS:
            raise ConfigError(f"filter: where key '{key}' is not one of {', '.join(WHERE_FIELDS)}")
    allowed = {k: v if isinstance(v, list) else [v] for k, v in where.items()}
    code = compile_expr(expr) if expr else None
    reasons: dict[str, int] = {f"where.{k}": 0 for k in allowed}
    reasons |= {"min_chars": 0, "max_chars": 0, "empty response": 0, "identical responses": 0, "tie": 0, "expr": 0}
    out: list[Sample] = []
    for s in samples:
        reason = _filter_reason(s, allowed, min_chars, max_chars, drop_empty, drop_identical, drop_ties)
        if reason is None and code is not None and not eval_expr(code, expr, s):
            reason = "expr"
        if reason is None:
            out.append(s)
        else:
            reasons[reason] += 1
    msg = f"filter: kept {len(out)}/{len(samples)} (dropped: {_reasons_text(reasons)})"
    return out, _report("filter", len(samples), out, {k: v for k, v in reasons.items() if v}, msg)


def _filter_reason(s: Sample, allowed: dict[str, list], min_chars: int | None, max_chars: int | None,
                   drop_empty: bool, drop_identical: bool, drop_ties: bool) -> str | None:
    for key, values in allowed.items():
        if getattr(s, key) not in values:
            return f"where.{key}"
    texts = [text(r) for r in s.responses()]
    if min_chars is not None and any(len(t) < min_chars for t in texts):
        return "min_chars"
    if max_chars is not None and any(len(t) > max_chars for t in texts):
        return "max_chars"
    if drop_empty and any(not t.strip() for t in texts):
        return "empty response"
    if drop_identical and s.kind == "pair" and texts[0].strip() == texts[1].strip():
        return "identical responses"
    if drop_ties and s.tie:
        return "tie"
    return None


# ---------------------------------------------------------------- sample / swap


def sample_subset(samples: list[Sample], *, n: int | None = None, fraction: float | None = None,
                  seed: int = 0) -> tuple[list[Sample], StepReport]:
    """Seeded random subset of ``n`` samples (or ``round(fraction * len)``), in the original order."""
    if (n is None) == (fraction is None):
        raise ConfigError("sample: give exactly one of 'n' or 'fraction'")
    k = min(len(samples), n if n is not None else round(fraction * len(samples)))
    picked = sorted(random.Random(seed).sample(range(len(samples)), k))
    out = [samples[i] for i in picked]
    msg = f"sample (seed {seed}): kept {len(out)}/{len(samples)}"
    return out, _report("sample", len(samples), out, {}, msg)


def swap_positions(samples: list[Sample], *, probability: float = 0.5, mode: str = "replace",
                   seed: int = 0) -> tuple[list[Sample], StepReport]:
    """A/B position augmentation for pairs (see the module docstring for the tags).

    Exactly ``round(probability * pairs)`` pairs, chosen with ``seed``, are affected. ``replace``
    flips their ``position_of_chosen`` (others are tagged ``A`` if untagged); ``add`` keeps every
    pair as ``A`` and inserts a ``B`` copy (id ``<id>#swapped``) right after each chosen one.
    Non-pair samples pass through untouched.
    """
    pairs = [i for i, s in enumerate(samples) if s.kind == "pair"]
    chosen = set(random.Random(seed).sample(pairs, round(probability * len(pairs))))
    out: list[Sample] = []
    for i, s in enumerate(samples):
        if s.kind != "pair":
            out.append(s)
            continue
        pos = s.metadata.get("position_of_chosen", "A")
        if mode == "add":
            out.append(_with_metadata(s, position_of_chosen="A", order="original"))
            if i in chosen:
                twin = _with_metadata(s, position_of_chosen="B", order="swapped")
                out.append(twin.model_copy(update={"id": f"{s.id}#swapped"}))
        else:
            if i in chosen:
                pos = "B" if pos == "A" else "A"
            out.append(_with_metadata(s, position_of_chosen=pos, order="swapped" if pos == "B" else "original"))
    tags = [s.metadata.get("position_of_chosen") for s in out if s.kind == "pair"]
    counts = {"swapped": len(chosen), "position_A": tags.count("A"), "position_B": tags.count("B"),
              "not a pair": len(samples) - len(pairs)}
    msg = f"swap {mode} p={probability}: {len(chosen)} of {len(pairs)} pairs swapped, {len(out)} rows out"
    report = StepReport("swap", len(samples), len(out), {"kept": len(samples), "dropped": 0, **counts}, msg)
    return out, report


# ---------------------------------------------------------------- configs and dispatch


class LengthFilterStep(ConfigModel):
    """Token-length limit (drop or fit the prompt)."""

    step: Literal["length_filter"] = "length_filter"
    tokenizer: str
    """Tokenizer alias (e.g. minilm), local folder or hub id; use the one of the model you train."""
    max_length: int = Field(512, gt=0)
    """Maximum tokens of prompt + longest response + reserve."""
    policy: Literal["drop", "truncate_prompt"] = "drop"
    """drop: remove long samples; truncate_prompt: remove leading turns, then cut the last user turn from the left."""
    reserve: int | None = Field(None, ge=0)
    """Extra tokens to budget; default: the special tokens of a (prompt, response) pair, or the closing turn markup."""
    chat_template: bool = False
    """Count the prompt rendered with the tokenizer's chat template (when it has one)."""
    batch_size: int = Field(1000, gt=0)
    """Texts per tokenizer call."""

    def apply(self, samples: list[Sample], seed: int) -> tuple[list[Sample], StepReport]:
        return length_filter(samples, **self.model_dump(exclude={"step"}))


class DedupStep(ConfigModel):
    """Drop duplicates, keeping the first occurrence."""

    step: Literal["dedup"] = "dedup"
    mode: Literal["exact", "normalized"] = "normalized"
    """exact: identical text; normalized: NFKC, casefold, collapsed whitespace, edge punctuation stripped."""
    by: Literal["sample", "prompt"] = "sample"
    """sample: prompt + responses; prompt: keep one sample per prompt."""

    def apply(self, samples: list[Sample], seed: int) -> tuple[list[Sample], StepReport]:
        return dedup(samples, mode=self.mode, by=self.by)


class FilterStep(ConfigModel):
    """Predicate filters; a sample must pass all of them."""

    step: Literal["filter"] = "filter"
    where: dict[str, Any] = Field(default_factory=dict)
    """Field -> allowed value or list of values; fields: id, source, subset, category, split, kind, tie."""
    min_chars: int | None = Field(None, ge=0)
    """Minimum characters of every response."""
    max_chars: int | None = Field(None, ge=0)
    """Maximum characters of every response."""
    drop_empty: bool = True
    """Drop samples with an empty (whitespace-only) response."""
    drop_identical: bool = True
    """Drop pairs whose chosen and rejected texts are identical."""
    drop_ties: bool = False
    """Drop pairs marked as ties."""
    expr: str | None = None
    """Restricted Python expression over the sample's fields (conversations as text), e.g. "len(chosen) < 4000"."""

    @field_validator("where")
    @classmethod
    def _where_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if k not in WHERE_FIELDS]
        if bad:
            raise ValueError(f"where key '{bad[0]}' is not one of {', '.join(WHERE_FIELDS)}")
        return value

    @field_validator("expr")
    @classmethod
    def _expr_ok(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_expr(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    def apply(self, samples: list[Sample], seed: int) -> tuple[list[Sample], StepReport]:
        return filter_samples(samples, **self.model_dump(exclude={"step"}))


class SampleStep(ConfigModel):
    """Seeded random subset (original order kept)."""

    step: Literal["sample"] = "sample"
    n: int | None = Field(None, ge=0)
    """Number of samples to keep (all when there are fewer)."""
    fraction: float | None = Field(None, gt=0, le=1)
    """Fraction of samples to keep (instead of n)."""
    seed: int | None = None
    """Random seed; default: the recipe seed."""

    @model_validator(mode="after")
    def _one_of(self) -> "SampleStep":
        if (self.n is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'n' or 'fraction'")
        return self

    def apply(self, samples: list[Sample], seed: int) -> tuple[list[Sample], StepReport]:
        return sample_subset(samples, n=self.n, fraction=self.fraction, seed=seed if self.seed is None else self.seed)


class SwapStep(ConfigModel):
    """A/B position augmentation for pairwise judges (tags metadata.position_of_chosen)."""

    step: Literal["swap"] = "swap"
    probability: float = Field(0.5, ge=0, le=1)
    """Share of pairs shown with chosen as B (exactly round(probability * pairs))."""
    mode: Literal["add", "replace"] = "replace"
    """replace: flip the position of the selected pairs; add: also emit a swapped copy of each."""
    seed: int | None = None
    """Random seed; default: the recipe seed."""

    def apply(self, samples: list[Sample], seed: int) -> tuple[list[Sample], StepReport]:
        return swap_positions(samples, probability=self.probability, mode=self.mode,
                              seed=seed if self.seed is None else self.seed)


ProcessStep = Annotated[Union[LengthFilterStep, DedupStep, FilterStep, SampleStep, SwapStep],
                        Field(discriminator="step")]
_STEPS_ADAPTER: TypeAdapter[list[ProcessStep]] = TypeAdapter(list[ProcessStep])


def parse_steps(raw: list[dict[str, Any]]) -> list[ProcessStep]:
    """Validate a raw ``process:`` list (ConfigError naming the step index on problems)."""
    try:
        return _STEPS_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"process.{loc}: {err['msg'].removeprefix('Value error, ')}")
        more = f" (and {len(lines) - 1} more: {'; '.join(lines[1:])})" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more) from None


def apply_steps(samples: list[Sample], steps: list[ProcessStep],
                seed: int) -> tuple[list[Sample], list[StepReport]]:
    """Run ``steps`` in order; ``seed`` is used by steps without their own ``seed``."""
    if any(isinstance(s, dict) for s in steps):
        steps = parse_steps([s.model_dump() if not isinstance(s, dict) else s for s in steps])
    reports = []
    for step in steps:
        samples, report = step.apply(samples, seed)
        reports.append(report)
    return samples, reports
