"""Judge prompt templates (data, overridable by a file) and their rendering through a model's chat template.

A template is a :meth:`str.format` text. Placeholders:

- pointwise: ``{conversation}``, ``{response}``, ``{low}``, ``{high}`` (required), ``{attribute}``, ``{rubric}``;
- pairwise: ``{conversation}``, ``{response_a}``, ``{response_b}`` (required), ``{rubric}``.

Built-in names: ``pointwise`` / ``pairwise`` (the prompts ``rmforge data export`` writes, so data
exported earlier and data rendered here agree), ``*-think`` (ask for a ``<think>`` section first)
and ``*-rubric`` (add a ``[Rubric]`` section filled from ``rubric``). Anything else is read as a file.

``enable_thinking`` (Qwen3-style chat templates) is passed to the chat template only when the template
uses that variable; for other templates it is ignored (``None`` keeps the template's own default).
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path

from rmforge.data import judge_templates as base
from rmforge.data.schema import Conversation, Scale
from rmforge.errors import ConfigError

logger = logging.getLogger("rmforge.judge")

REQUIRED = {"pointwise": {"conversation", "response", "low", "high"},
            "pairwise": {"conversation", "response_a", "response_b"}}
OPTIONAL = {"pointwise": {"attribute", "rubric"}, "pairwise": {"rubric"}}
_THINK = "\nFirst reason step by step inside <think></think> tags, then give your answer."
_RUBRIC = "\n\n[Rubric]\n{rubric}"
_POINT_HEAD, _POINT_TAIL = base.POINTWISE_TEMPLATE.split("\n\nRate the ")
_PAIR_HEAD, _PAIR_TAIL = base.PAIRWISE_TEMPLATE.split("\n\nDecide which")

BUILTIN = {
    "pointwise": base.POINTWISE_TEMPLATE,
    "pairwise": base.PAIRWISE_TEMPLATE,
    "pointwise-think": base.POINTWISE_TEMPLATE + _THINK,
    "pairwise-think": base.PAIRWISE_TEMPLATE + _THINK,
    "pointwise-rubric": _POINT_HEAD + _RUBRIC + "\n\nRate the " + _POINT_TAIL,
    "pairwise-rubric": _PAIR_HEAD + _RUBRIC + "\n\nDecide which" + _PAIR_TAIL,
}
"""Built-in templates by name."""


@dataclass(frozen=True)
class JudgeTemplate:
    """A validated template for one mode; ``source`` names where it came from (for error messages)."""

    mode: str
    text: str
    source: str = "builtin"

    @property
    def fields(self) -> set[str]:
        return placeholders(self.text, self.source)

    def render_pointwise(self, prompt: Conversation, response: Conversation, scale: Scale,
                         attribute: str = "overall quality", rubric: str | None = None) -> str:
        return self._format(conversation=base.render_conversation(prompt), response=base.render_response(response),
                            attribute=attribute, low=base.format_number(scale.min), high=base.format_number(scale.max),
                            rubric=rubric)

    def render_pairwise(self, prompt: Conversation, response_a: Conversation, response_b: Conversation,
                        rubric: str | None = None) -> str:
        return self._format(conversation=base.render_conversation(prompt), response_a=base.render_response(response_a),
                            response_b=base.render_response(response_b), rubric=rubric)

    def _format(self, **values) -> str:
        if "rubric" in self.fields and not values.get("rubric"):
            raise ConfigError(f"judge template {self.source} has a {{rubric}} placeholder: set rubric=TEXT")
        return self.text.format(**{k: v for k, v in values.items() if k in self.fields})


def placeholders(text: str, source: str = "template") -> set[str]:
    """Names of the ``{placeholders}`` of a format string; ConfigError on a malformed one."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"judge template {source}: {exc} (write literal braces as {{{{ and }}}})") from None
    if "" in names or any(not n.isidentifier() for n in names):
        raise ConfigError(f"judge template {source}: placeholders must be names like {{response}}, found "
                          f"{sorted(n or '{}' for n in names if not n.isidentifier())}")
    return names


def load_template(name_or_path: str | None, mode: str) -> JudgeTemplate:
    """A built-in template by name, or a template file; checks placeholders against the mode."""
    if mode not in REQUIRED:
        raise ConfigError(f"judge mode must be 'pointwise' or 'pairwise', not {mode!r}")
    name = name_or_path or mode
    if name in BUILTIN:
        if not name.startswith(mode):
            raise ConfigError(f"template '{name}' is for {name.split('-')[0]} judging, not {mode}")
        text, source = BUILTIN[name], f"'{name}'"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"judge template '{name}' is neither a built-in ({', '.join(BUILTIN)}) nor a file")
        text, source = path.read_text(encoding="utf-8"), str(path)
    found = placeholders(text, source)
    missing, unknown = REQUIRED[mode] - found, found - REQUIRED[mode] - OPTIONAL[mode]
    if missing:
        raise ConfigError(f"judge template {source} lacks the required placeholder(s) "
                          f"{', '.join('{' + m + '}' for m in sorted(missing))} for {mode} judging")
    if unknown:
        raise ConfigError(f"judge template {source} has unknown placeholder(s) "
                          f"{', '.join('{' + m + '}' for m in sorted(unknown))}; allowed: "
                          f"{', '.join('{' + m + '}' for m in sorted(REQUIRED[mode] | OPTIONAL[mode]))}")
    return JudgeTemplate(mode, text, source)


def supports_thinking(tokenizer) -> bool:
    """True when the tokenizer's chat template reads an ``enable_thinking`` variable (Qwen3 style)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(template.values())
    return "enable_thinking" in template


def chat_template_kwargs(tokenizer, enable_thinking: bool | None) -> dict:
    """Extra chat-template arguments: ``{"enable_thinking": x}`` when set and supported, else ``{}``."""
    if enable_thinking is None:
        return {}
    if not supports_thinking(tokenizer):
        logger.info("enable_thinking=%s ignored: the chat template has no enable_thinking switch", enable_thinking)
        return {}
    return {"enable_thinking": bool(enable_thinking)}


def render_chat(tokenizer, messages: list[dict], enable_thinking: bool | None = None) -> str:
    """The generation prompt (text) of ``messages`` under the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the model's tokenizer has no chat template; judges need one (set the tokenizer's "
                          "chat_template or use an instruct model)")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **chat_template_kwargs(tokenizer, enable_thinking))
