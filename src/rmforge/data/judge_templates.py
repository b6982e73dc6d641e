"""Built-in prompt templates for generative (LLM-as-judge) reward-model training data.

The exporters in :mod:`rmforge.data.export` render each sample into a single user message
with one of these templates; the judge is trained to answer with a tagged verdict
(``<score>3</score>`` or ``<preference>A</preference>``). Templates are plain
:meth:`str.format` strings, so values containing braces are safe.
"""

from __future__ import annotations

from rmforge.data.schema import Conversation, Scale

POINTWISE_TEMPLATE = """\
You are evaluating one response of an AI assistant.

[Conversation]
{conversation}

[Response to evaluate]
{response}

Rate the {attribute} of the response on a scale from {low} to {high}, where {high} is best.
Give your score inside <score></score> tags, for example <score>{high}</score>."""
"""Pointwise judge prompt; fields: conversation, response, attribute, low, high."""

PAIRWISE_TEMPLATE = """\
You are comparing two responses of an AI assistant to the same conversation.

[Conversation]
{conversation}

[Response A]
{response_a}

[Response B]
{response_b}

Decide which response is better. Answer with <preference>A</preference> or
<preference>B</preference>, or <preference>tie</preference> if they are equally good."""
"""Pairwise judge prompt; fields: conversation, response_a, response_b."""

NO_CONVERSATION = "(no prior conversation)"


def render_conversation(conv: Conversation) -> str:
    """``Role: content`` blocks separated by blank lines (reasoning text is left out)."""
    if not conv:
        return NO_CONVERSATION
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in conv)


def render_response(conv: Conversation) -> str:
    """A response's message contents (the judge grades the final answer, not the reasoning)."""
    return "\n\n".join(m.content for m in conv)


def format_number(value: float) -> str:
    """``3.0`` -> ``3``, ``3.25`` -> ``3.25`` (at most 4 decimals)."""
    value = round(float(value), 4)
    return str(int(value)) if value.is_integer() else f"{value:.4f}".rstrip("0")


def pointwise_prompt(prompt: Conversation, response: Conversation, attribute: str, scale: Scale) -> str:
    return POINTWISE_TEMPLATE.format(conversation=render_conversation(prompt), response=render_response(response),
                                     attribute=attribute, low=format_number(scale.min), high=format_number(scale.max))


def pairwise_prompt(prompt: Conversation, response_a: Conversation, response_b: Conversation) -> str:
    return PAIRWISE_TEMPLATE.format(conversation=render_conversation(prompt), response_a=render_response(response_a),
                                    response_b=render_response(response_b))


def score_target(value: float) -> str:
    return f"<score>{format_number(value)}</score>"


def preference_target(verdict: str) -> str:
    """``A``, ``B`` or ``tie`` wrapped in preference tags."""
    return f"<preference>{verdict}</preference>"
