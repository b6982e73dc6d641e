"""Request bodies of the HTTP API (pydantic: a bad body is a 422 naming the field).

A conversation is either a list of messages (``{role, content, reasoning?, tool_calls?, name?}``;
``reasoning_content``/``thinking`` are read as ``reasoning``) or a plain string: a string prompt is one
user message (``""``: no prompt), a string response one assistant message. A response must not be
empty (no content, reasoning or tool calls in any message): 422 (the grader answers None for an
empty completion without asking the server). Text with a lone UTF-16 surrogate (JSON ``"\\ud800"``)
is a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from rmforge.data.schema import REASONING_KEYS, Message, Text


def _prompt(value):
    if isinstance(value, str):
        return [{"role": "user", "content": value}] if value else []
    return value


def _response(value):
    if isinstance(value, str):
        value = [{"role": "assistant", "content": value}]
    if isinstance(value, list):
        if not value:
            raise ValueError("a response needs at least one message")
        if all(isinstance(m, (dict, Message)) for m in value) and is_empty(value):
            raise ValueError("the response is empty")
    return value


def is_empty(conv: Any) -> bool:
    """An empty response: blank text, no messages, or messages without content, reasoning or tool calls."""
    if isinstance(conv, str):
        return not conv.strip()
    for m in conv:
        if isinstance(m, Message):
            if not m.is_empty:
                return False
            continue
        if not isinstance(m, dict):
            return False
        reasoning = next((m[k] for k in ("reasoning", *REASONING_KEYS) if m.get(k)), "")
        if str(m.get("content") or "").strip() or str(reasoning).strip() or m.get("tool_calls"):
            return False
    return True


Prompt = Annotated[list[Message], BeforeValidator(_prompt)]
Response = Annotated[list[Message], BeforeValidator(_response)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreItem(_Body):
    prompt: Prompt = Field(default_factory=list)
    response: Response


class ScoreRequest(_Body):
    """``POST /score``: rewards of (prompt, response) items."""

    items: list[ScoreItem] = Field(min_length=1)


class CompareItem(_Body):
    prompt: Prompt = Field(default_factory=list)
    a: Response
    b: Response


class CompareRequest(_Body):
    """``POST /compare``: rewards of two responses to one prompt and P(A > B)."""

    pairs: list[CompareItem] = Field(min_length=1)


class RankRequest(_Body):
    """``POST /rank``: rewards of N candidates to one prompt and their order."""

    prompt: Prompt = Field(default_factory=list)
    candidates: list[Response] = Field(min_length=2)


class GetRewardRequest(BaseModel):
    """OpenRLHF ``POST /get_reward``: full rendered texts; ``prompts`` (the prompt texts) optional;
    other fields OpenRLHF sends (``labels``) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    query: list[Text] = Field(min_length=1)
    prompts: list[Text] | None = None

    @model_validator(mode="after")
    def _check(self) -> "GetRewardRequest":
        blank = [i for i, q in enumerate(self.query) if not q.strip()]
        if blank:
            raise ValueError(f"query[{blank[0]}] is empty")

        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ValueError(f"'prompts' has {len(self.prompts)} entries for {len(self.query)} queries")
        return self
