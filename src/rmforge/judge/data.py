"""Judge training / evaluation examples from the files ``rmforge data build`` and ``data export`` write.

:func:`load_judge_data` reads, by layout (detected on the first record):

- ``pointwise`` export rows (``input``, ``output``, ``label``): the scale comes from ``scale`` or, when
  unset, from the prompt of the built-in template ("on a scale from X to Y");
- ``pairwise`` export rows (``input``, ``output``, ``metadata``): the label is the ``<preference>``;
- ``verl`` export rows (``prompt``, ``reward_model``, ``extra_info``): task and scale from ``extra_info``;
- canonical samples (pairs for pairwise, pointwise samples for pointwise), rendered with the given
  template; pairs are written in both A/B orders (ties labelled ``tie``).

Each example is a :class:`JudgeExample`. Data of the wrong kind for the mode fails with the file
and row. :func:`load_sft_messages` reads ``messages`` rows (``data export --to sft``) or judge rows
(``input`` + ``output`` becomes a conversation) for ``rmforge train sft``.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

from rmforge.data.records import iter_file
from rmforge.errors import DataError
from rmforge.judge.parse import parse_preference

_SCALE_IN_PROMPT = re.compile(r"on a scale from (-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)")


@dataclass
class JudgeExample:
    """One judge prompt with its label."""

    id: str
    prompt: list[dict]
    """Chat messages of the judge prompt (usually one user message)."""
    truth: str
    """``A``/``B``/``tie`` or the score as text."""
    scale_min: float | None = None
    scale_max: float | None = None
    pair_id: str | None = None
    """Groups the two A/B orders of one comparison (position consistency)."""
    position: str | None = None
    """Where the better response sits (``A``/``B``; None for pointwise)."""
    group: str | None = None
    """The data's subset (category) of the row, for per-group figures; None when absent."""

    def to_row(self) -> dict:
        return asdict(self)


def layout(rec: dict) -> str:
    """``pointwise`` | ``pairwise`` | ``verl`` | ``sft`` | ``canonical`` for one record."""
    if "input" in rec and "output" in rec:
        return "pointwise" if "label" in rec else "pairwise"
    if "reward_model" in rec and "prompt" in rec:
        return "verl"
    if "messages" in rec:
        return "sft"
    return "canonical"


def _records(path: str):
    from rmforge.fileio import file_format

    fmt = file_format(path)
    return fmt, iter_file(path, fmt)


def load_judge_data(path: str, mode: str, *, template: str | None = None, rubric: str | None = None,
                    scale: tuple[float, float] | None = None, limit: int | None = None,
                    seed: int = 0) -> list[JudgeExample]:
    """Judge examples for ``mode`` from ``path`` (see the module docstring); ``limit`` keeps a seeded subset of whole
    comparisons (both A/B orders of a pair together)."""
    fmt, records = _records(path)
    row_kind = "row" if fmt == "parquet" else "line"
    first = next(records, None)
    if first is None:
        raise DataError("file is empty (no records)", file=path)
    kind = layout(first[0])
    if kind == "canonical":
        examples = _from_canonical(path, mode, template, rubric)
    elif kind == "sft":
        raise DataError(f"holds SFT 'messages' rows, not judge data; for mode={mode} give the "
                        f"'{mode}' or 'verl' export of rmforge data build (or canonical samples)", file=path)
    else:
        examples = []
        import itertools

        for rec, row in itertools.chain([first], records):
            try:
                ex = _from_row(rec, kind, mode, scale)
            except DataError as exc:
                raise exc.located(file=path, line=row, row_kind=row_kind) from None
            if ex is not None:
                examples.append(ex)
    if not examples:
        raise DataError(f"no {mode} judge example in the file", file=path)
    if limit and len(examples) > limit:
        examples = _subset(examples, limit, seed)
    return examples


def comparisons(examples: list[JudgeExample]) -> list[list[int]]:
    """Positions of ``examples`` grouped by comparison (``pair_id``: its A/B orders together; an
    example without one is its own group), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.pair_id if ex.pair_id is not None else f"#{i}", []).append(i)
    return list(groups.values())


def _subset(examples: list[JudgeExample], limit: int, seed: int) -> list[JudgeExample]:
    """A seeded subset of ``limit`` examples (file order kept) that takes whole comparisons: both A/B
    orders of a pair stay together (a last group may be cut to fit ``limit``)."""
    order = comparisons(examples)
    random.Random(f"rmforge-judge:{seed}").shuffle(order)
    keep: list[int] = []
    for g in order:
        keep += g[:limit - len(keep)]
        if len(keep) >= limit:
            break
    return [examples[i] for i in sorted(keep)]


def _from_row(rec: dict, kind: str, mode: str, scale) -> JudgeExample | None:
    if kind == "verl":
        extra = rec.get("extra_info") or {}
        task = extra.get("task") or mode
        if task != mode:
            raise DataError(f"verl row of task '{task}', but mode={mode}", field="extra_info.task")
        truth = str((rec.get("reward_model") or {}).get("ground_truth", ""))
        low = extra.get("scale_min") if scale is None else scale[0]
        high = extra.get("scale_max") if scale is None else scale[1]
        return _checked(JudgeExample(str(extra.get("id") or extra.get("index")), list(rec["prompt"]), truth,
                                     low, high, extra.get("id"), extra.get("chosen_position"), extra.get("subset")),
                        mode, "reward_model")
    if kind != mode:
        raise DataError(f"holds {kind} judge rows, but mode={mode} (use mode={kind} or the {mode} export)")
    prompt = list(rec["input"] or [])
    if kind == "pointwise":
        low, high = scale if scale is not None else _scale_from_prompt(prompt)
        group = rec.get("subset") or (rec.get("metadata") or {}).get("subset")
        return _checked(JudgeExample(str(rec.get("id")), prompt, str(rec["label"]), low, high, group=group), mode,
                        "label")
    meta = rec.get("metadata") or {}
    verdict = parse_preference(rec["output"])
    if not verdict.ok:
        raise DataError(f"output {rec['output']!r} is not a <preference>A|B|tie</preference> verdict", field="output")
    pos = meta.get("chosen_position")
    return JudgeExample(f"{meta.get('id')}@{pos}", prompt, verdict.value, pair_id=meta.get("id"), position=pos,
                        group=meta.get("subset"))


def _checked(ex: JudgeExample, mode: str, field: str) -> JudgeExample:
    if mode == "pointwise":
        try:
            float(ex.truth)
        except ValueError:
            raise DataError(f"label {ex.truth!r} is not a number", field=field) from None
        if ex.scale_min is None or ex.scale_max is None or ex.scale_max <= ex.scale_min:
            raise DataError("no valid scale (set scale=[MIN, MAX])", field="scale")
    elif ex.truth.strip().casefold() not in ("a", "b", "tie"):
        raise DataError(f"label {ex.truth!r} is not A, B or tie", field=field)
    return ex


def _scale_from_prompt(prompt: list[dict]) -> tuple[float, float]:
    found = _SCALE_IN_PROMPT.search(" ".join(str(m.get("content", "")) for m in prompt))
    if found is None:
        raise DataError("pointwise row without a scale: the prompt does not say 'on a scale from X to Y'; "
                        "set scale=[MIN, MAX]", field="input")
    return float(found.group(1)), float(found.group(2))


def _from_canonical(path: str, mode: str, template: str | None, rubric: str | None) -> list[JudgeExample]:
    from rmforge.data.io import read_samples
    from rmforge.judge.templates import load_template

    tpl = load_template(template, mode)
    out = []
    for i, s in enumerate(read_samples(path)):
        want = "pointwise" if mode == "pointwise" else "pair"
        if s.kind != want:
            raise DataError(f"sample '{s.id}' is a {s.kind} sample; mode={mode} needs {want} samples "
                            f"(export N-way data with rmforge data export --to {mode})", file=path, line=i + 1)
        if mode == "pointwise":
            if s.scale is None or not s.scores:
                raise DataError(f"sample '{s.id}' has no scale or scores", file=path, line=i + 1)
            attribute, value = next(iter(s.scores.items()))
            content = tpl.render_pointwise(s.prompt, s.response, s.scale, attribute, rubric)
            out.append(JudgeExample(s.id, [{"role": "user", "content": content}], repr(float(value)),
                                    s.scale.min, s.scale.max, group=s.subset or s.category))
            continue
        for pos in ("A", "B"):
            a, b = (s.chosen, s.rejected) if pos == "A" else (s.rejected, s.chosen)
            content = tpl.render_pairwise(s.prompt, a, b, rubric)
            out.append(JudgeExample(f"{s.id}@{pos}", [{"role": "user", "content": content}],
                                    "tie" if s.tie else pos, pair_id=s.id, position=pos,
                                    group=s.subset or s.category))
    return out


def load_sft_messages(path: str, limit: int | None = None, seed: int = 0) -> list[list[dict]]:
    """Conversations for SFT: ``messages`` rows, or judge rows (``input`` + assistant ``output``)."""
    fmt, records = _records(path)
    row_kind = "row" if fmt == "parquet" else "line"
    out = []
    for rec, row in records:
        kind = layout(rec)
        if kind == "sft":
            messages = rec["messages"]
        elif kind in ("pointwise", "pairwise"):
            messages = list(rec["input"] or []) + [{"role": "assistant", "content": str(rec["output"])}]
        else:
            raise DataError(f"SFT needs 'messages' rows (rmforge data export --to sft) or judge rows "
                            f"('input' + 'output'); this row looks like {kind} data", file=path, line=row,
                            row_kind=row_kind)
        messages = [{"role": m["role"], "content": m["content"]} for m in messages or []]
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError("conversation has no assistant message to learn", file=path, line=row,
                            field="messages", row_kind=row_kind)
        out.append(messages)
    if limit and len(out) > limit:
        keep = sorted(random.Random(f"rmforge-sft:{seed}").sample(range(len(out)), limit))
        out = [out[i] for i in keep]
    return out
