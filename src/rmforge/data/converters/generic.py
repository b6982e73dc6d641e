"""Generic layouts for users' own data: ``preference`` (pairs) and ``pointwise`` (scored responses).

Column names are the canonical ones unless remapped with ``ctx.fields`` (e.g. ``{"chosen": "response_a"}``);
CSV cells are accepted for numbers and booleans.

- ``preference``: ``chosen``, ``rejected`` (plain text or message lists, TRL's explicit or
  implicit-prompt conversational format), optional ``prompt``, ``margin``, ``tie``, ``id``,
  ``subset``, ``category``, ``split``.
- ``pointwise``: ``response``, optional ``prompt``, and either one ``score`` column or the named
  columns in ``options["attributes"]``; ``options["scale"] = [min, max]`` declares the range.
"""

from __future__ import annotations

from rmforge.data.converters._common import (as_bool, as_messages, as_number, column, get_number, get_str,
                                             opt_id, sample_id, source_name, split_pair)
from rmforge.data.registry import ConvertContext, register_converter
from rmforge.data.schema import Message, Sample, Scale
from rmforge.errors import FieldError

_BOOKKEEPING = ("subset", "category", "split")


def _prompt(record: dict, ctx: ConvertContext) -> list[Message]:
    value = ctx.get(record, "prompt", required=False)
    return [] if value is None else as_messages(value, column(ctx, "prompt"), text_role="user")


def _bookkeeping(record: dict, ctx: ConvertContext) -> dict[str, str | None]:
    return {name: get_str(record, ctx, name, required=False) or None for name in _BOOKKEEPING}


@register_converter("preference", "generic pairs: chosen/rejected (text or messages), optional prompt/margin/tie",
                    kind="pair")
def convert_preference(record: dict, ctx: ConvertContext) -> Sample:
    """A pair; message lists that repeat the prompt turns have the shared prefix moved to the prompt."""
    c_col, r_col = column(ctx, "chosen"), column(ctx, "rejected")
    chosen = as_messages(ctx.get(record, "chosen"), c_col)
    rejected = as_messages(ctx.get(record, "rejected"), r_col)
    prompt, c, r, mismatch = split_pair(chosen, rejected, _prompt(record, ctx), fields=(c_col, r_col))
    margin = get_number(record, ctx, "margin", required=False)
    if margin is not None and margin < 0:
        raise FieldError(column(ctx, "margin"), f"expected a number >= 0, got {margin:g}")
    tie_value = ctx.get(record, "tie", required=False)
    return Sample(
        id=sample_id(ctx, "preference", opt_id(record.get(column(ctx, "id")))),
        prompt=prompt,
        chosen=c,
        rejected=r,
        margin=margin,
        tie=False if tie_value is None else as_bool(tie_value, column(ctx, "tie")),
        source=source_name(ctx, "preference"),
        metadata={"prefix_mismatch": True} if mismatch else {},
        **_bookkeeping(record, ctx),
    )


@register_converter("pointwise", "generic scored responses: prompt/response/score or options.attributes columns",
                    kind="pointwise")
def convert_pointwise(record: dict, ctx: ConvertContext) -> Sample:
    scale = _scale(ctx.options.get("scale"))
    lo, hi = (scale.min, scale.max) if scale else (None, None)
    attributes = ctx.options.get("attributes") or ["score"]
    if isinstance(attributes, str):  # CLI: --option attributes=accuracy,style
        attributes = [a.strip() for a in attributes.split(",") if a.strip()]
    if not isinstance(attributes, (list, tuple)) or not all(isinstance(a, str) for a in attributes):
        raise FieldError("attributes", "option 'attributes' must be a list of column names")
    scores = {a: get_number(record, ctx, a, lo=lo, hi=hi) for a in attributes}
    return Sample(
        id=sample_id(ctx, "pointwise", opt_id(record.get(column(ctx, "id")))),
        prompt=_prompt(record, ctx),
        response=as_messages(ctx.get(record, "response"), column(ctx, "response")),
        scores=scores,
        scale=scale,
        source=source_name(ctx, "pointwise"),
        **_bookkeeping(record, ctx),
    )


def _scale(value) -> Scale | None:
    if value is None:
        return None
    if isinstance(value, str):  # CLI: --option scale=1,5
        value = [v.strip() for v in value.strip("[]").split(",")]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise FieldError("scale", "option 'scale' must be [min, max]")
    lo, hi = as_number(value[0], "scale"), as_number(value[1], "scale")
    if hi <= lo:
        raise FieldError("scale", f"option 'scale' needs min < max, got [{lo:g}, {hi:g}]")
    return Scale(min=lo, max=hi)
