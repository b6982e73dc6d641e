"""Anthropic hh-rlhf: ``{"chosen": transcript, "rejected": transcript}`` -> pair samples.

A transcript is ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. Only the ``"\\n\\nHuman:"`` and
``"\\n\\nAssistant:"`` markers start a turn, so "Human:" inside a reply (which the real data has,
e.g. ``"Assistant: Human: ..."``) stays text. The final assistant turn of each transcript is the
response; the turns before it are the prompt. When the two contexts differ, the chosen one is
used and ``metadata["prefix_mismatch"]`` is set.
"""

from __future__ import annotations

import re

from rmforge.data.converters._common import column, count_prefix_mismatches, get_str, sample_id, source_name
from rmforge.data.registry import ConvertContext, register_converter
from rmforge.data.schema import Message, Sample
from rmforge.errors import FieldError

NAME = "hh-rlhf"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def parse_transcript(transcript: str, field: str = "transcript") -> list[Message]:
    """Messages of an hh-rlhf transcript; FieldError if it has no Human turn or does not end with Assistant."""
    parts = _TURN.split("\n\n" + transcript.lstrip())
    if len(parts) == 1:
        raise FieldError(field, "transcript has no '\\n\\nHuman:' turn")
    if parts[0].strip():
        raise FieldError(field, "transcript has text before the first '\\n\\nHuman:' marker")
    messages = [Message(role=_ROLE[marker], content=text.strip())
                for marker, text in zip(parts[1::2], parts[2::2])]
    if not any(m.role == "user" for m in messages):
        raise FieldError(field, "transcript has no '\\n\\nHuman:' turn")
    if messages[-1].role != "assistant":
        raise FieldError(field, "transcript does not end with an '\\n\\nAssistant:' turn")
    return messages


@register_converter(NAME, "Anthropic hh-rlhf transcripts (chosen/rejected '\\n\\nHuman: ... \\n\\nAssistant: ...')",
                    kind="pair")
def convert_hh_rlhf(record: dict, ctx: ConvertContext) -> Sample:
    chosen = parse_transcript(get_str(record, ctx, "chosen"), column(ctx, "chosen"))
    rejected = parse_transcript(get_str(record, ctx, "rejected"), column(ctx, "rejected"))
    prompt = chosen[:-1]
    mismatch = prompt != rejected[:-1]
    return Sample(
        id=sample_id(ctx, NAME),
        prompt=prompt,
        chosen=chosen[-1:],
        rejected=rejected[-1:],
        source=source_name(ctx, NAME),
        metadata={"prefix_mismatch": True} if mismatch else {},
    )


def hh_rlhf_mismatch_count(samples) -> int:
    """Number of converted hh-rlhf samples whose two transcripts differed before the last turn."""
    return count_prefix_mismatches(samples)
