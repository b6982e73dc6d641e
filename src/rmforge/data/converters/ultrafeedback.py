"""UltraFeedback binarized (HuggingFaceH4/ultrafeedback_binarized layout) -> pair samples.

Rows are ``{prompt, prompt_id, chosen: [messages], rejected: [messages], score_chosen,
score_rejected, messages}``; ``chosen``/``rejected`` hold the whole conversation (user turn
included), so their shared leading messages become the prompt. ``margin`` is
``score_chosen - score_rejected`` when that is >= 0 (equal scores: ``tie=True``).
"""

from __future__ import annotations

from rmforge.data.converters._common import (as_messages, ask, column, get_number, get_str, opt_id, sample_id,
                                             source_name, split_pair)
from rmforge.data.registry import ConvertContext, register_converter
from rmforge.data.schema import Sample

NAME = "ultrafeedback"


@register_converter(NAME, "UltraFeedback binarized {prompt, prompt_id, chosen/rejected messages, score_*} -> pair",
                    kind="pair")
def convert_ultrafeedback(record: dict, ctx: ConvertContext) -> Sample:
    chosen = as_messages(ctx.get(record, "chosen"), column(ctx, "chosen"))
    rejected = as_messages(ctx.get(record, "rejected"), column(ctx, "rejected"))
    prompt_text = get_str(record, ctx, "prompt", required=False)
    prompt, c, r, mismatch = split_pair(chosen, rejected, ask(prompt_text) if prompt_text is not None else None,
                                        fields=(column(ctx, "chosen"), column(ctx, "rejected")))
    s_chosen = get_number(record, ctx, "score_chosen", required=False)
    s_rejected = get_number(record, ctx, "score_rejected", required=False)
    margin, tie, meta = None, False, {}
    if s_chosen is not None:
        meta["score_chosen"] = s_chosen
    if s_rejected is not None:
        meta["score_rejected"] = s_rejected
    if s_chosen is not None and s_rejected is not None:
        diff = s_chosen - s_rejected
        if diff >= 0:
            margin, tie = diff, diff == 0
        else:
            meta["scores_inverted"] = True
    if mismatch:
        meta["prefix_mismatch"] = True
    return Sample(
        id=sample_id(ctx, NAME, opt_id(record.get(column(ctx, "prompt_id")))),
        prompt=prompt,
        chosen=c,
        rejected=r,
        margin=margin,
        tie=tie,
        source=source_name(ctx, NAME),
        split=get_str(record, ctx, "split", required=False) or None,
        metadata=meta,
    )
