"""Robust parsing of judge answers: ``<think>...</think>`` (optional), ``<score>N</score>``, ``<preference>X</preference>``.

A parse never raises: it returns a :class:`Verdict` whose ``status`` is ``"ok"`` or one of
:data:`FAILURES`, so a malformed answer is a defined outcome with its own reward (0) and metric.

Rules (documented in docs/judges.md):

- the text is NFKC-normalised first (full-width digits and brackets become ASCII); other Unicode
  decimal digits (Arabic-Indic, Devanagari, ...) are read as numbers too;
- reasoning: the answer is the text after the last ``</think>``; a ``<think>`` that is never closed
  is ``unclosed_think`` (the model ran out of tokens while thinking). A completion that starts inside
  the thinking section (Qwen3 templates open ``<think>`` in the prompt) has only the closing tag: fine;
- several answer tags: the last one counts (models often restate the format before answering);
- tags are case-insensitive and may contain spaces (``< Score >``); the content may carry markdown
  emphasis or trailing punctuation (``**3**``, ``3.``, ``Response A``);
- a score outside the declared scale is ``out_of_range`` (its value is kept for diagnostics).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

FAILURES = ("empty", "unclosed_think", "missing_tag", "not_a_number", "out_of_range", "invalid_verdict")
"""Every failure status a parse can return."""
VERDICTS = ("A", "B", "tie")
_NOISE = " \t\r\n*_`'\"“”‘’.,:;!()[]{}"
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_WORD_PREFIX = re.compile(r"^(?:response|answer|assistant|output|option)\s+", re.I)
_TIE_WORDS = {"tie", "draw", "equal", "tied"}


@dataclass(frozen=True)
class Verdict:
    """A parsed judge answer: ``value`` is a float (pointwise) or ``A``/``B``/``tie`` (pairwise)."""

    status: str
    value: float | str | None = None
    think: str | None = None
    """The reasoning text (between ``<think>`` and ``</think>``), when there is one."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@lru_cache(maxsize=None)
def _tag(name: str) -> re.Pattern:
    return re.compile(rf"<\s*{name}\s*>(.*?)<\s*/\s*{name}\s*>", re.IGNORECASE | re.DOTALL)


_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)


def split_think(text: str) -> tuple[str | None, str, str]:
    """``(think, answer, status)``: status is ``ok`` or ``unclosed_think``."""
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        last = closes[-1]
        head = text[:last.start()]
        opened = _THINK_OPEN.search(head)
        think = head[opened.end():] if opened else head
        return think.strip(), text[last.end():], "ok"
    if _THINK_OPEN.search(text):
        return None, "", "unclosed_think"
    return None, text, "ok"


def _answer(text: str | None, tag: str) -> tuple[str | None, str | None, str]:
    """(think, last tag content, status) shared by both parsers."""
    if text is None or not str(text).strip():
        return None, None, "empty"
    text = unicodedata.normalize("NFKC", str(text))
    think, answer, status = split_think(text)
    if status != "ok":
        return think, None, status
    found = _tag(tag).findall(answer)
    if not found:
        return think, None, "missing_tag"
    return think, found[-1].strip(_NOISE), "ok"


def parse_score(text: str | None, low: float, high: float) -> Verdict:
    """Parse a pointwise answer on the scale ``[low, high]``."""
    think, inner, status = _answer(text, "score")
    if status != "ok":
        return Verdict(status, think=think)
    match = _NUMBER.fullmatch(inner)
    if match is None:
        return Verdict("not_a_number", think=think)
    value = float(match.group(0))
    if not low - 1e-9 <= value <= high + 1e-9:
        return Verdict("out_of_range", value, think)
    return Verdict("ok", value, think)


def parse_preference(text: str | None) -> Verdict:
    """Parse a pairwise answer: ``A``, ``B`` or ``tie`` (case-insensitive, ``Response A`` accepted)."""
    think, inner, status = _answer(text, "preference")
    if status != "ok":
        return Verdict(status, think=think)
    word = _WORD_PREFIX.sub("", inner).strip(_NOISE).casefold()
    if word in ("a", "b"):
        return Verdict("ok", word.upper(), think)
    if word in _TIE_WORDS:
        return Verdict("ok", "tie", think)
    return Verdict("invalid_verdict", think=think)


def parse_verdict(text: str | None, mode: str, low: float | None = None, high: float | None = None) -> Verdict:
    """:func:`parse_score` (mode ``pointwise``, needs the scale) or :func:`parse_preference`."""
    if mode == "pointwise":
        if low is None or high is None:
            raise ValueError("pointwise parsing needs the scale (low, high)")
        return parse_score(text, low, high)
    if mode == "pairwise":
        return parse_preference(text)
    raise ValueError(f"mode must be 'pointwise' or 'pairwise', not {mode!r}")
