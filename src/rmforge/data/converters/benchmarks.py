"""Reward-model benchmarks in their upstream layouts: RewardBench 1 and 2, RM-Bench, JudgeBench.

- ``rewardbench``: ``{id, prompt, chosen, rejected, chosen_model, rejected_model, subset}`` -> pair;
  ``category`` is the leaderboard section (Chat, Chat Hard, Safety, Reasoning) of known subsets.
- ``rewardbench2``: ``{id, prompt, chosen: [str], rejected: [str], num_correct, subset, ...}`` -> N-way,
  ranks 1 (chosen) / 2 (rejected).
- ``rm-bench``: ``{id, prompt, chosen: [3], rejected: [3], subset, ...}`` with the three style
  variants concise / detailed_plain / detailed_markdown -> N-way with 6 candidates; ``subset`` is
  the domain (chat, code, math, safety-refuse, safety-response), ``category`` the upstream subset.
- ``judgebench``: ``{pair_id, original_id, source, question, response_model, response_A,
  response_B, label}`` with label "A>B" or "B>A" -> pair; ``subset`` is the reported group.
"""

from __future__ import annotations

import re

from rmforge.data.converters._common import (as_str_list, ask, column, extras, get_str, opt_id, reply, sample_id,
                                             source_name)
from rmforge.data.registry import ConvertContext, register_converter
from rmforge.data.schema import Sample
from rmforge.errors import FieldError

_RB1_SECTIONS = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
REWARDBENCH_SECTION = {subset: section for section, subsets in _RB1_SECTIONS.items() for subset in subsets}
RM_BENCH_STYLES = ("concise", "detailed_plain", "detailed_markdown")
RM_BENCH_DOMAIN_NAMES = ("chat", "code", "math", "safety-refuse", "safety-response")
RM_BENCH_SUBSET_DOMAIN = {
    "alpacaeval": "chat", "bigcode/humanevalpack": "code", "xstest-should-refuse": "safety-refuse",
    "refusals-dangerous": "safety-refuse", "refusals-offensive": "safety-refuse",
    "xstest-should-respond": "safety-response",
}
"""The ``subset`` values of THU-KEG/RM-Bench's per-domain files (commit 73c52d7) -> the file's domain.
The math file (``math_filtered.json``) was not available to check: give its domain explicitly."""


def rm_bench_domain_of_file(path: str | None) -> str | None:
    """The domain named by an upstream per-domain file name (``chat_filtered.json[.gz]`` -> chat)."""
    if not path:
        return None
    stem = re.split(r"[\\/]", str(path))[-1].lower().split(".")[0]
    head = stem.removesuffix("_filtered")
    return head if head in RM_BENCH_DOMAIN_NAMES else None


def rm_bench_domain_of(name: str | None) -> str | None:
    """The RM-Bench domain of a domain name or a known upstream subset name (None when unknown)."""
    if name in RM_BENCH_DOMAIN_NAMES:
        return name
    return RM_BENCH_SUBSET_DOMAIN.get(name or "")
JUDGEBENCH_LABELS = ("A>B", "B>A")


@register_converter("rewardbench", "RewardBench {prompt, chosen, rejected, subset, id, *_model} -> pair", kind="pair")
def convert_rewardbench(record: dict, ctx: ConvertContext) -> Sample:
    subset = get_str(record, ctx, "subset", required=False)
    meta = {k: record[k] for k in ("chosen_model", "rejected_model") if record.get(k) is not None}
    return Sample(
        id=sample_id(ctx, "rewardbench", opt_id(record.get(column(ctx, "id")))),
        prompt=ask(get_str(record, ctx, "prompt")),
        chosen=reply(get_str(record, ctx, "chosen")),
        rejected=reply(get_str(record, ctx, "rejected")),
        source=source_name(ctx, "rewardbench"),
        subset=subset,
        category=REWARDBENCH_SECTION.get(subset or ""),
        metadata=meta,
    )


@register_converter("rewardbench2", "RewardBench 2 {id, prompt, chosen: [str], rejected: [str], subset} -> nway",
                    kind="nway")
def convert_rewardbench2(record: dict, ctx: ConvertContext) -> Sample:
    chosen = _str_list(record, ctx, "chosen")
    rejected = _str_list(record, ctx, "rejected")
    for name, values in (("chosen", chosen), ("rejected", rejected)):
        if not values:
            raise FieldError(column(ctx, name), "expected at least one response, got an empty list")
    return Sample(
        id=sample_id(ctx, "rewardbench2", opt_id(record.get(column(ctx, "id")))),
        prompt=ask(get_str(record, ctx, "prompt")),
        candidates=[reply(t) for t in chosen + rejected],
        ranks=[1] * len(chosen) + [2] * len(rejected),
        candidate_labels=["chosen"] * len(chosen) + ["rejected"] * len(rejected),
        source=source_name(ctx, "rewardbench2"),
        subset=get_str(record, ctx, "subset", required=False),
        metadata=extras(record, ctx, ("id", "prompt", "chosen", "rejected", "subset")),
    )


@register_converter("rm-bench", "RM-Bench {id, prompt, chosen: [3 styles], rejected: [3 styles]} -> nway (6)",
                    kind="nway")
def convert_rm_bench(record: dict, ctx: ConvertContext) -> Sample:
    """Candidates: chosen then rejected, each concise / detailed_plain / detailed_markdown.

    The domain (chat, code, math, safety-refuse, safety-response) is not in the per-domain files,
    whose ``subset`` is the source (``alpacaeval``, ...): it is ``options={"domain": ...}``, else the
    record's ``domain`` field (``total_dataset.json``), else the domain in the upstream file name
    (``math_filtered.json`` -> math), else the domain of a known upstream subset
    (:data:`RM_BENCH_SUBSET_DOMAIN`). ``subset`` is the domain when known (else the upstream subset);
    ``category`` is the upstream subset. Ids repeat across domains, so the domain is part of the id.
    """
    chosen = as_str_list(ctx.get(record, "chosen"), column(ctx, "chosen"), len(RM_BENCH_STYLES))
    rejected = as_str_list(ctx.get(record, "rejected"), column(ctx, "rejected"), len(RM_BENCH_STYLES))
    upstream_subset = get_str(record, ctx, "subset", required=False)
    domain = (ctx.options.get("domain") or get_str(record, ctx, "domain", required=False)
              or rm_bench_domain_of_file(ctx.file) or rm_bench_domain_of(upstream_subset))
    meta = extras(record, ctx, ("id", "prompt", "chosen", "rejected", "subset", "domain"))
    if domain:
        meta["domain"] = domain
    upstream_id = opt_id(record.get(column(ctx, "id")))
    return Sample(
        id=sample_id(ctx, "rm-bench", domain if upstream_id else None, upstream_id),
        prompt=ask(get_str(record, ctx, "prompt")),
        candidates=[reply(t) for t in chosen + rejected],
        ranks=[1] * len(chosen) + [2] * len(rejected),
        candidate_labels=[f"{side}/{style}" for side in ("chosen", "rejected") for style in RM_BENCH_STYLES],
        source=source_name(ctx, "rm-bench"),
        subset=domain or upstream_subset,
        category=upstream_subset,
        metadata=meta,
    )


@register_converter("judgebench", "JudgeBench {pair_id, question, response_A, response_B, label A>B|B>A} -> pair",
                    kind="pair")
def convert_judgebench(record: dict, ctx: ConvertContext) -> Sample:
    """Chosen = the winning response; ``category`` = upstream source, ``subset`` = its reported group."""
    label = get_str(record, ctx, "label")
    if label not in JUDGEBENCH_LABELS:
        raise FieldError(column(ctx, "label"), f"expected 'A>B' or 'B>A', got {label!r}")
    a, b = get_str(record, ctx, "response_A"), get_str(record, ctx, "response_B")
    chosen, rejected = (a, b) if label == "A>B" else (b, a)
    category = get_str(record, ctx, "source", required=False)
    meta = {"label": label, "chosen_position": label[0],
            "response_model": get_str(record, ctx, "response_model", required=False),
            "original_id": record.get(column(ctx, "original_id"))}
    return Sample(
        id=sample_id(ctx, "judgebench", opt_id(record.get(column(ctx, "pair_id")))),
        prompt=ask(get_str(record, ctx, "question")),
        chosen=reply(chosen),
        rejected=reply(rejected),
        source=source_name(ctx, "judgebench"),
        subset=judgebench_group(category) if category else None,
        category=category,
        metadata={k: v for k, v in meta.items() if v is not None},
    )


def judgebench_group(source: str) -> str:
    """Reported group of a JudgeBench source: all ``mmlu-pro-*`` pool into ``mmlu-pro``."""
    return "mmlu-pro" if source.startswith("mmlu-pro") else source


def _str_list(record: dict, ctx: ConvertContext, name: str) -> list[str]:
    value = ctx.get(record, name)
    return [value] if isinstance(value, str) else as_str_list(value, column(ctx, name))
