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
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["system", "user", "assistant", "tool"]
KINDS = ("pair", "nway", "pointwise")


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    content: str
    reasoning: str | None = None
    """Optional reasoning/thinking text that preceded ``content`` (assistant turns)."""


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

    id: str
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
    candidate_labels: list[str] | None = None
    """Free per-candidate tags, e.g. ``chosen/concise`` for RM-Bench style variants."""
    # pointwise
    response: Conversation | None = None
    scores: dict[str, float] | None = None
    """Named attribute scores, e.g. HelpSteer2's helpfulness..verbosity."""
    scale: Scale | None = None
    # bookkeeping
    source: str | None = None
    subset: str | None = None
    category: str | None = None
    split: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

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
    return loc or "sample", err.get("msg", str(exc))


# ---------------------------------------------------------------- Arrow / Parquet layout

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning", pa.string())])
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
            row[key] = [_drop_none_reasoning(m) for m in row[key]]
    if row.get("candidates") is not None:
        row["candidates"] = [[_drop_none_reasoning(m) for m in c] for c in row["candidates"]]
    if row.get("prompt") is None:
        row["prompt"] = []
    return row


def _drop_none_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    return message if message.get("reasoning") is not None else {"role": message["role"], "content": message["content"]}
