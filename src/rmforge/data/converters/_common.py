"""Helpers shared by the built-in converters: typed field access, message coercion, prompt splitting.

Every helper raises :class:`~rmforge.errors.FieldError` naming the *source* column (after the
``ctx.fields`` mapping), so ``convert_records`` can report file, line and field.

Conventions used by all built-in converters:

- sample id: ``f"{source}-{upstream_id}"`` when the upstream row has an id, else ``f"{source}-{row}"``;
- ``Sample.source`` is ``ctx.source`` (``convert_records`` defaults it to the converter name);
- pairs whose two conversations differ before the final answer are kept, with the chosen side's
  context as the prompt and ``metadata["prefix_mismatch"] = True`` (count them with
  :func:`count_prefix_mismatches`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from rmforge.data.registry import ConvertContext
from rmforge.data.schema import Message, Sample
from rmforge.errors import FieldError

_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}
_ROLES = ("system", "user", "assistant", "tool")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def column(ctx: ConvertContext, name: str) -> str:
    """Source column that holds canonical field ``name``."""
    return ctx.fields.get(name, name)


def source_name(ctx: ConvertContext, default: str) -> str:
    return ctx.source or default


def sample_id(ctx: ConvertContext, default_source: str, *upstream: Any) -> str:
    """``source-<upstream id parts>`` or, when no part is given/known, ``source-<row>``."""
    parts = [str(p) for p in upstream if p is not None and str(p) != ""]
    return "-".join([source_name(ctx, default_source), *(parts or [str(ctx.row)])])


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# ------------------------------------------------------------------------------ scalars

def as_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got {type_name(value)}")
    return value


def get_str(record: dict, ctx: ConvertContext, name: str, required: bool = True) -> str | None:
    value = ctx.get(record, name, required=required)
    return None if value is None else as_str(value, column(ctx, name))


def as_number(value: Any, field: str) -> float:
    """A finite number; numeric strings (CSV cells) are accepted."""
    if isinstance(value, bool):
        raise FieldError(field, "expected a number, got bool")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise FieldError(field, f"expected a number, got str {value[:40]!r}") from None
    if not isinstance(value, (int, float)):
        raise FieldError(field, f"expected a number, got {type_name(value)}")
    if not math.isfinite(value):
        raise FieldError(field, f"expected a finite number, got {value}")
    return float(value)


def get_number(record: dict, ctx: ConvertContext, name: str, required: bool = True,
               lo: float | None = None, hi: float | None = None) -> float | None:
    value = ctx.get(record, name, required=required)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        return None
    x = as_number(value, column(ctx, name))
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        bounds = f"[{lo:g}, {hi:g}]" if lo is not None and hi is not None else (
            f">= {lo:g}" if lo is not None else f"<= {hi:g}")
        raise FieldError(column(ctx, name), f"expected a number {bounds.replace('[', 'in [')}, got {x:g}")
    return x


def as_bool(value: Any, field: str) -> bool:
    """A boolean; 0/1 and true/false strings (CSV cells) are accepted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise FieldError(field, f"expected a boolean, got {type_name(value)} {value!r}"[:120])


def as_str_list(value: Any, field: str, length: int | None = None) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of strings, got {type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise FieldError(field, f"expected a list of strings, item {i} is {type_name(item)}")
    if length is not None and len(value) != length:
        raise FieldError(field, f"expected {length} strings, got {len(value)}")
    return value


def opt_id(value: Any) -> str | None:
    """Upstream id as text (ints and strings), None when absent/empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


# ------------------------------------------------------------------------------ messages

def as_message(value: Any, field: str) -> Message:
    """A message from ``{"role", "content"}`` (also ShareGPT ``{"from", "value"}``, optional reasoning)."""
    if not isinstance(value, dict):
        raise FieldError(field, f"expected a message object, got {type_name(value)}")
    role = value.get("role", value.get("from"))
    if not isinstance(role, str):
        raise FieldError(field, f"message needs a string 'role', got {type_name(role)}")
    role = _ROLE_ALIASES.get(role.strip().lower(), role.strip().lower())
    if role not in _ROLES:
        raise FieldError(field, f"unknown message role {role!r} (expected one of {', '.join(_ROLES)})")
    content = value.get("content", value.get("value"))
    if not isinstance(content, str):
        raise FieldError(field, f"message 'content' must be a string, got {type_name(content)}")
    reasoning = value.get("reasoning", value.get("reasoning_content"))
    if reasoning is not None and not isinstance(reasoning, str):
        raise FieldError(field, f"message 'reasoning' must be a string, got {type_name(reasoning)}")
    return Message(role=role, content=content, reasoning=reasoning or None)


def as_messages(value: Any, field: str, text_role: str = "assistant") -> list[Message]:
    """Plain text (one ``text_role`` message) or a list of messages."""
    if isinstance(value, str):
        return [Message(role=text_role, content=value)]
    if isinstance(value, dict):
        return [as_message(value, field)]
    if not isinstance(value, list):
        raise FieldError(field, f"expected a string or a list of messages, got {type_name(value)}")
    return [as_message(m, field) for m in value]


def reply(text: str) -> list[Message]:
    return [Message(role="assistant", content=text)]


def ask(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


# ------------------------------------------------------------------------------ prompt splitting

def _same(a: Message, b: Message) -> bool:
    return a.role == b.role and a.content.strip() == b.content.strip() and a.reasoning == b.reasoning


def _starts_with(conv: list[Message], prefix: list[Message]) -> bool:
    return len(conv) > len(prefix) and all(_same(a, b) for a, b in zip(conv, prefix))


def _last_user(conv: list[Message]) -> int:
    return max((i for i, m in enumerate(conv) if m.role == "user"), default=-1)


def split_pair(chosen: list[Message], rejected: list[Message], prompt: list[Message] | None = None,
               fields: tuple[str, str] = ("chosen", "rejected")):
    """Split two conversations into ``(prompt, chosen, rejected, prefix_mismatch)``.

    The shared leading messages become the prompt (TRL's implicit-prompt format), backed off so
    the prompt ends on a non-assistant turn. An explicit ``prompt`` repeated at the start of both
    is stripped; otherwise the shared messages replace ``prompt``, which is used only when the
    conversations share nothing. When they differ before their final answers, the chosen side's
    context up to its last user turn is the prompt and ``prefix_mismatch`` is True. Each response
    must end with an assistant turn.
    """
    prompt = list(prompt or [])
    stripped = bool(prompt) and _starts_with(chosen, prompt) and _starts_with(rejected, prompt)
    if stripped:
        chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]
    limit = min(len(chosen), len(rejected)) - 1
    k = 0
    while k < limit and _same(chosen[k], rejected[k]):
        k += 1
    while k > 0 and chosen[k - 1].role == "assistant":
        k -= 1
    shared, c, r = chosen[:k], chosen[k:], rejected[k:]
    if shared:  # the conversations carry their own context: a non-repeated prompt column is redundant
        prompt = prompt + shared if stripped else shared
    mismatch = any(m.role == "user" for m in c + r)
    if mismatch:
        cut_c, cut_r = _last_user(c), _last_user(r)
        prompt, c, r = prompt + c[:cut_c + 1], c[cut_c + 1:], r[cut_r + 1:]
    for name, resp in zip(fields, (c, r)):
        if not resp or resp[-1].role != "assistant":
            raise FieldError(name, "conversation does not end with an assistant turn")
    return prompt, c, r, mismatch


def count_prefix_mismatches(samples: Iterable[Sample]) -> int:
    """How many samples carry ``metadata["prefix_mismatch"]`` (the caller reports it)."""
    return sum(1 for s in samples if s.metadata.get("prefix_mismatch"))


def extras(record: dict, ctx: ConvertContext, used: Iterable[str], drop: Iterable[str] = ()) -> dict[str, Any]:
    """Upstream columns not consumed by the converter (kept in ``metadata``)."""
    skip = {column(ctx, n) for n in used} | set(drop)
    return {k: v for k, v in record.items() if k not in skip and v is not None}
