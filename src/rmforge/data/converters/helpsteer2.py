"""NVIDIA HelpSteer2: attribute ratings (pointwise) and the HelpSteer2-Preference pairs.

- ``helpsteer2-pointwise``: ``{prompt, response, helpfulness, correctness, coherence, complexity,
  verbosity}`` with integer ratings 0..4 -> pointwise samples on scale 0..4.
- ``helpsteer2-pairwise``: ``{prompt, response_1, response_2, preference_strength, split}`` with
  strength -3..3. Sign convention (HelpSteer2 dataset card): negative means response_1 is
  better, positive means response_2 is better, 0 means about the same (a tie).

Multi-turn prompts hold earlier turns inline as ``"...\\n<extra_id_1>Assistant\\n...\\n<extra_id_1>User\\n..."``
(the first user turn has no marker); :func:`split_prompt` turns them into messages.
"""

from __future__ import annotations

import re

from rmforge.data.converters._common import as_bool, column, get_number, get_str, reply, sample_id, source_name
from rmforge.data.registry import ConvertContext, register_converter
from rmforge.data.schema import Message, Sample, Scale

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
SCALE = (0.0, 4.0)
_TURN = re.compile(r"\n?<extra_id_1>(User|Assistant)\n?")
_SYSTEM = re.compile(r"\A<extra_id_0>System\n(.*?)\n?(?=<extra_id_1>)", re.DOTALL)
_ROLE = {"User": "user", "Assistant": "assistant"}


def split_prompt(text: str) -> list[Message]:
    """Messages of a HelpSteer2 prompt (plain text is one user turn; markers split turns)."""
    messages: list[Message] = []
    system = _SYSTEM.match(text)
    if system:
        messages.append(Message(role="system", content=system.group(1)))
        text = text[system.end():]
    parts = _TURN.split(text)
    if parts[0] or len(parts) == 1:
        messages.append(Message(role="user", content=parts[0]))
    messages += [Message(role=_ROLE[m], content=t) for m, t in zip(parts[1::2], parts[2::2])]
    return messages


@register_converter("helpsteer2-pointwise",
                    "HelpSteer2 ratings {prompt, response, helpfulness..verbosity (0-4)} -> pointwise",
                    kind="pointwise")
def convert_helpsteer2_pointwise(record: dict, ctx: ConvertContext) -> Sample:
    prompt = get_str(record, ctx, "prompt")
    response = get_str(record, ctx, "response")
    scores = {a: get_number(record, ctx, a, lo=SCALE[0], hi=SCALE[1]) for a in ATTRIBUTES}
    return Sample(
        id=sample_id(ctx, "helpsteer2-pointwise", record.get(column(ctx, "id"))),
        prompt=split_prompt(prompt),
        response=reply(response),
        scores=scores,
        scale=Scale(min=SCALE[0], max=SCALE[1]),
        source=source_name(ctx, "helpsteer2-pointwise"),
        split=_split(record, ctx),
    )


@register_converter("helpsteer2-pairwise",
                    "HelpSteer2-Preference {prompt, response_1, response_2, preference_strength (-3..3)} -> pair",
                    kind="pair")
def convert_helpsteer2_pairwise(record: dict, ctx: ConvertContext) -> list[Sample]:
    """One pair (chosen = the preferred response); option ``both_orders`` adds the swapped presentation.

    Position metadata: ``response_order`` lists the upstream responses in presentation order and
    ``chosen_position`` says where the chosen one sits ("A" = first, "B" = second).
    """
    prompt = split_prompt(get_str(record, ctx, "prompt"))
    r1, r2 = get_str(record, ctx, "response_1"), get_str(record, ctx, "response_2")
    strength = get_number(record, ctx, "preference_strength", lo=-3, hi=3)
    first_wins = strength <= 0  # negative: response_1 better; 0: tie, keep upstream order
    chosen, rejected = (r1, r2) if first_wins else (r2, r1)
    sid = sample_id(ctx, "helpsteer2-pairwise", record.get(column(ctx, "id")))
    meta = {"preference_strength": int(strength) if strength.is_integer() else strength}
    for key in ("preference_statement", "preference_elaboration"):
        if isinstance(record.get(key), str) and record[key]:
            meta[key] = record[key]
    base = dict(prompt=prompt, chosen=reply(chosen), rejected=reply(rejected), margin=abs(strength),
                tie=strength == 0, source=source_name(ctx, "helpsteer2-pairwise"), split=_split(record, ctx))
    out = [Sample(id=sid, **base, metadata=meta | {
        "response_order": ["response_1", "response_2"], "chosen_position": "A" if first_wins else "B"})]
    if as_bool(ctx.options.get("both_orders", False), "both_orders"):
        out.append(Sample(id=f"{sid}-rev", **base, metadata=meta | {
            "order": "reversed", "response_order": ["response_2", "response_1"],
            "chosen_position": "B" if first_wins else "A"}))
    return out


def _split(record: dict, ctx: ConvertContext) -> str | None:
    value = record.get(column(ctx, "split"))
    return value if isinstance(value, str) and value else None


__all__ = ["ATTRIBUTES", "split_prompt", "convert_helpsteer2_pointwise", "convert_helpsteer2_pairwise"]
