"""Canonical samples -> Label Studio tasks, with a per-task randomised display order.

Each task carries what pull needs to rebuild the sample without the source file:
``rmforge_id`` (the stable sample id, used to skip tasks already in the project on re-push),
``rmforge_order`` (``order[k]`` = index of the original response shown at position ``k``;
original index 0 is the sample's ``chosen``, 1 its ``rejected``; for ranking the candidate
index) and ``rmforge_sample`` (the full canonical record). The order is a pure function of
``(seed, sample id)``, so a re-push shows every task the same way.
"""

from __future__ import annotations

import random
from typing import Iterable

from rmforge.annotate.configs import ConfigSpec
from rmforge.data.schema import Conversation, Sample, text
from rmforge.errors import ConfigError, DataError

SAMPLE_KIND = {"pairwise": "pair", "pointwise": "pointwise", "ranking": "nway"}


def prompt_text(prompt: Conversation) -> str:
    """One user turn -> its text; longer conversations -> ``Role: content`` paragraphs."""
    if len(prompt) == 1 and prompt[0].role == "user":
        return prompt[0].content
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in prompt)


def display_order(sample_id: str, n: int, seed: int, randomize: bool = True) -> list[int]:
    """Deterministic random permutation of ``range(n)`` for one sample."""
    order = list(range(n))
    if randomize:
        random.Random(f"{seed}:{sample_id}").shuffle(order)
    return order


def sample_to_task(sample: Sample, kind: str, seed: int = 0, randomize: bool = True) -> dict:
    """Label Studio task (``{"data": {...}}``) for one sample of the matching kind."""
    if sample.kind != SAMPLE_KIND[kind]:
        raise DataError(f"sample '{sample.id}' is a {sample.kind} sample; --kind {kind} needs "
                        f"{SAMPLE_KIND[kind]} samples", field="kind")
    data = {"prompt": prompt_text(sample.prompt), "rmforge_id": sample.id, "rmforge_kind": kind,
            "rmforge_sample": sample.to_record()}
    if kind == "pointwise":
        data["response"] = text(sample.response)
        data["rmforge_order"] = [0]
        return {"data": data}
    responses = sample.responses()
    order = display_order(sample.id, len(responses), seed, randomize)
    names = ["a", "b"] if kind == "pairwise" else [f"r{i}" for i in range(len(responses))]
    for name, original in zip(names, order):
        data[name] = text(responses[original])
    data["rmforge_order"] = order
    return {"data": data}


def infer_spec(kind: str, samples: list[Sample], attributes: list[str] | None = None,
               scale: tuple[int, int] | None = None, strength: bool = True, comment: bool = True) -> ConfigSpec:
    """The config a dataset needs: pointwise attributes/scale and ranking size come from the data."""
    if kind == "pairwise":
        return ConfigSpec("pairwise", extras=tuple(n for n, on in (("strength", strength), ("comment", comment)) if on))
    if not samples:
        raise DataError("no samples to push")
    if kind == "ranking":
        sizes = {len(s.candidates or []) for s in samples}
        if len(sizes) != 1:
            raise DataError(f"ranking needs the same number of responses in every sample (found {sorted(sizes)})")
        return ConfigSpec("ranking", n_candidates=sizes.pop())
    if kind != "pointwise":
        raise ConfigError(f"unknown annotation kind '{kind}' (expected pairwise, pointwise or ranking)")
    first = samples[0]
    attrs = list(attributes or (first.scores or {}).keys())
    if scale is None:
        scale = (int(first.scale.min), int(first.scale.max)) if first.scale else (1, 5)
    return ConfigSpec("pointwise", attributes=tuple(attrs), scale=tuple(scale))


def build_tasks(samples: Iterable[Sample], kind: str, seed: int = 0, randomize: bool = True,
                skip_ids: set[str] = frozenset(), source: str | None = None) -> tuple[list[dict], int]:
    """Tasks for samples whose id is not in ``skip_ids``; returns (tasks, number skipped).

    Duplicate sample ids in the input are an error naming the row."""
    tasks, seen, skipped = [], set(), 0
    for row, sample in enumerate(samples, 1):
        if sample.id in seen:
            raise DataError(f"duplicate sample id '{sample.id}' (task ids come from sample ids)",
                            file=source, line=row, field="id", row_kind="sample")
        seen.add(sample.id)
        if sample.id in skip_ids:
            skipped += 1
            continue
        try:
            tasks.append(sample_to_task(sample, kind, seed, randomize))
        except DataError as exc:
            raise exc.located(file=source, line=row, row_kind="sample") from None
    return tasks, skipped
