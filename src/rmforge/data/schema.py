"""The canonical sample: one schema for pairwise, N-way and pointwise reward data.

Every loader/converter produces :class:`Sample` objects, every exporter and trainer consumes
them. A sample has exactly one *kind*:

- ``pair``: ``chosen`` and ``rejected`` responses, optional ``margin`` (strength) and ``tie``;
- ``nway``: ``candidates`` with ``ranks`` (1 = best, equal ranks are ties) and/or
  ``candidate_scores``, optional per-candidate ``candidate_labels`` (e.g. RM-Bench styles);
- ``pointwise``: one ``response`` with named ``scores`` on a declared ``scale``.

A response is a list of messages (normally one assistant message), as in TRL's
conversational format, so multi-message answers and reasoning text survive.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

Role = Literal["system", "user", "assistant", "tool"]
KINDS = ("pair", "nway", "pointwise")
_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogate_error(value: str) -> str | None:
    """Why ``value`` is not valid Unicode text (a lone UTF-16 surrogate such as JSON's ``"\\ud800"``), else None."""
    m = _SURROGATE.search(value)
    return None if m is None else (f"lone surrogate \\u{ord(m.group()):04x} at character {m.start()} "
                                   "(not valid Unicode text; send UTF-8 or a valid \\uXXXX pair)")


def _first_surrogate(value: Any) -> str | None:
    """:func:`surrogate_error` of the first string with a lone surrogate in a JSON-like value."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            why = surrogate_error(v)
            if why:
                return why
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return None


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replaced(k): _replaced(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replaced(v) for v in value]
    return value


def replace_surrogates(value: Any) -> Any:
    """``value`` (a JSON-like value) with every lone surrogate, in strings and dict keys at any depth,
    replaced by U+FFFD, so it can be written as UTF-8 (a 422 that echoes the request's input)."""
    return _replaced(value)


class _BadStr(str):
    why = ""


class _BadList(list):
    why = ""


class _BadDict(dict):
    why = ""


def _mark(value: Any) -> Any:
    """A value holding a lone surrogate becomes a marked copy with U+FFFD in its place, so the error that
    :func:`_refuse` raises next echoes text that can be written as UTF-8 (FastAPI's 422 body repeats the
    input; the original would make it a 500)."""
    why = _first_surrogate(value)
    if why is None:
        return value
    clean = _replaced(value)
    bad = _BadStr(clean) if isinstance(clean, str) else _BadDict(clean) if isinstance(clean, dict) else _BadList(clean)
    bad.why = why
    return bad


def _refuse(value: Any) -> Any:
    if isinstance(value, (_BadStr, _BadList, _BadDict)):
        raise ValueError(value.why)
    return value


# Before-validators run last-listed first: _mark, then _refuse.
Text = Annotated[str, BeforeValidator(_refuse), BeforeValidator(_mark)]
"""A string that is valid Unicode text (no lone surrogates: they cannot be tokenised or written as UTF-8)."""


REASONING_KEYS = ("reasoning_content", "thinking")
"""Other names of ``reasoning`` accepted on input (TRL's ``parse_response``, OpenAI-style APIs, some templates)."""


class Message(BaseModel):
    """One chat turn.

    ``reasoning`` may also be given as ``reasoning_content`` or ``thinking``; ``tool_calls`` (an
    assistant's calls, as in TRL's ``parse_response`` / OpenAI messages) and ``name`` (a tool
    message's tool) are passed to the chat template as they are. A message with ``tool_calls`` may
    have ``content`` null (read as "").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    content: Text
    reasoning: Text | None = None
    """Optional reasoning/thinking text that preceded ``content`` (assistant turns)."""
    tool_calls: Annotated[list[dict[str, Any]] | None, BeforeValidator(_refuse), BeforeValidator(_mark)] = None
    """Tool calls of an assistant turn (``[{"type": "function", "function": {"name", "arguments"}}]``)."""
    name: Text | None = None
    """The tool's name on a ``tool`` message."""

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not any(k in data for k in REASONING_KEYS) and data.get("content", "") is not None:
            return data
        data = dict(data)
        for key in REASONING_KEYS:
            if key in data:
                value = data.pop(key)
                if value is None:
                    continue
                if data.get("reasoning") not in (None, value):
                    raise ValueError(f"'{key}' and 'reasoning' differ (give one of them)")
                data["reasoning"] = value
        if data.get("content", "") is None and data.get("tool_calls"):
            data["content"] = ""
        return data

    @property
    def is_empty(self) -> bool:
        """No content, no reasoning and no tool calls (blank text counts as none)."""
        return not self.content.strip() and not (self.reasoning or "").strip() and not self.tool_calls


Conversation = list[Message]


class Scale(BaseModel):
    """Declared range of pointwise scores (inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> "Scale":
        if self.max <= self.min:
            raise ValueError(f"scale max ({self.max}) must be greater than min ({self.min})")
        return self


class Sample(BaseModel):
    """One unit of reward data (see the module docstring for the three kinds)."""

    model_config = ConfigDict(extra="forbid")

    id: Text
    prompt: Conversation = Field(default_factory=list)
    """The conversation so far; empty for prompt-less data."""
    # pairwise
    chosen: Conversation | None = None
    rejected: Conversation | None = None
    margin: float | None = None
    """Preference strength (>= 0); BT trainers subtract ``margin * factor`` inside the sigmoid."""
    tie: bool = False
    """Both responses judged equally good; ``chosen``/``rejected`` order is then arbitrary."""
    # N-way
    candidates: list[Conversation] | None = None
    ranks: list[int] | None = None
    """Rank per candidate, 1 = best; equal ranks mean ties."""
    candidate_scores: list[float] | None = None
    candidate_labels: list[Text] | None = None
    """Free per-candidate tags, e.g. ``chosen/concise`` for RM-Bench style variants."""
    # pointwise
    response: Conversation | None = None
    scores: dict[Text, float] | None = None
    """Named attribute scores, e.g. HelpSteer2's helpfulness..verbosity."""
    scale: Scale | None = None
    # bookkeeping
    source: Text | None = None
    subset: Text | None = None
    category: Text | None = None
    split: Text | None = None
    metadata: Annotated[dict[str, Any], BeforeValidator(_refuse), BeforeValidator(_mark)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> "Sample":
        has = {
            "pair": self.chosen is not None or self.rejected is not None,
            "nway": self.candidates is not None,
            "pointwise": self.response is not None,
        }
        kinds = [k for k, v in has.items() if v]
        if len(kinds) != 1:
            raise ValueError("a sample needs exactly one of chosen+rejected, candidates, or response"
                             + (f" (found {', '.join(kinds)})" if kinds else ""))
        if has["pair"] and (self.chosen is None or self.rejected is None):
            raise ValueError("a pair needs both 'chosen' and 'rejected'")
        if has["nway"]:
            n = len(self.candidates)
            if n < 2:
                raise ValueError("'candidates' needs at least 2 entries")
            if self.ranks is None and self.candidate_scores is None:
                raise ValueError("N-way samples need 'ranks' or 'candidate_scores'")
            for name in ("ranks", "candidate_scores", "candidate_labels"):
                value = getattr(self, name)
                if value is not None and len(value) != n:
                    raise ValueError(f"'{name}' has {len(value)} entries for {n} candidates")
        if has["pointwise"] and not self.scores:
            raise ValueError("a pointwise sample needs 'scores'")
        if self.margin is not None and self.margin < 0:
            raise ValueError("'margin' must be >= 0 (put the better response in 'chosen')")
        return self

    @property
    def kind(self) -> str:
        if self.chosen is not None:
            return "pair"
        return "nway" if self.candidates is not None else "pointwise"

    def responses(self) -> list[Conversation]:
        """All responses of the sample, in order (chosen, rejected / candidates / response)."""
        if self.kind == "pair":
            return [self.chosen, self.rejected]
        return list(self.candidates) if self.kind == "nway" else [self.response]

    def to_record(self) -> dict[str, Any]:
        """Plain dict for jsonl (fields at their default are omitted)."""
        return self.model_dump(mode="json", exclude_defaults=True) | {"id": self.id}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Sample":
        return cls.model_validate(record)


def text(conv: Conversation | None) -> str:
    """Concatenated contents of a conversation (for length stats, dedup and display)."""
    return "" if not conv else "\n".join(m.content for m in conv)


def user(content: str) -> Message:
    return Message(role="user", content=content)


def assistant(content: str, reasoning: str | None = None) -> Message:
    return Message(role="assistant", content=content, reasoning=reasoning)


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of a pydantic validation error's first problem."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return loc or "sample", str(err.get("msg", exc)).removeprefix("Value error, ")


# ---------------------------------------------------------------- Arrow / Parquet layout

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning", pa.string()),
                      ("tool_calls", pa.string()), ("name", pa.string())])  # tool_calls: JSON text
_CONV = pa.list_(_MESSAGE)

ARROW_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("prompt", _CONV),
    ("chosen", _CONV),
    ("rejected", _CONV),
    ("margin", pa.float64()),
    ("tie", pa.bool_()),
    ("candidates", pa.list_(_CONV)),
    ("ranks", pa.list_(pa.int64())),
    ("candidate_scores", pa.list_(pa.float64())),
    ("candidate_labels", pa.list_(pa.string())),
    ("response", _CONV),
    ("scores", pa.map_(pa.string(), pa.float64())),
    ("scale", pa.struct([("min", pa.float64()), ("max", pa.float64())])),
    ("source", pa.string()),
    ("subset", pa.string()),
    ("category", pa.string()),
    ("split", pa.string()),
    ("metadata", pa.string()),  # JSON text: free-form values survive any type mix
])


def samples_to_table(samples: list[Sample]) -> pa.Table:
    """Arrow table in :data:`ARROW_SCHEMA` layout."""
    rows = []
    for s in samples:
        row = s.model_dump(mode="json")
        row["scores"] = list(row["scores"].items()) if row["scores"] is not None else None
        row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False) if row["metadata"] else None
        for conv in _conversations(row):
            for m in conv:
                if m.get("tool_calls") is not None:
                    m["tool_calls"] = json.dumps(m["tool_calls"], ensure_ascii=False)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """Invert :func:`samples_to_table` for one row from ``Table.to_pylist()``."""
    row = dict(row)
    if row.get("scores") is not None:
        row["scores"] = dict(row["scores"])
    meta = row.get("metadata")
    row["metadata"] = json.loads(meta) if meta else {}
    if row.get("tie") is None:
        row["tie"] = False
    for key in ("prompt", "chosen", "rejected", "response"):
        if row.get(key) is not None:
            row[key] = [_message_record(m) for m in row[key]]
    if row.get("candidates") is not None:
        row["candidates"] = [[_message_record(m) for m in c] for c in row["candidates"]]
    if row.get("prompt") is None:
        row["prompt"] = []
    return row


def _conversations(row: dict[str, Any]) -> list[list[dict[str, Any]]]:
    convs = [row[k] for k in ("prompt", "chosen", "rejected", "response") if row.get(k) is not None]
    return convs + list(row.get("candidates") or [])


def _message_record(message: dict[str, Any]) -> dict[str, Any]:
    """A message from an Arrow row: optional fields left out when null, ``tool_calls`` parsed from JSON."""
    out = {k: v for k, v in message.items() if v is not None or k in ("role", "content")}
    if isinstance(out.get("tool_calls"), str):
        out["tool_calls"] = json.loads(out["tool_calls"])
    return out
