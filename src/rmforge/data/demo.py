"""The demo preference set that ships with rmforge: generated, deterministic, no download needed.

Seven categories (``arithmetic``, ``units``, ``counting``, ``dates``, ``instructions``, ``safety``,
``helpfulness``), each built from many prompt templates (:mod:`rmforge.data.demo_templates`).
Every text was written for rmforge; computed answers are computed, not looked up.

- :func:`generate_demo` -> list of pair samples (same seed, same list);
- :func:`demo_splits` -> ``{"train": [...], "test": [...]}``, split by prompt template so no
  template appears in both splits, and every category has templates in both;
- :func:`write_demo` writes ``train.jsonl`` / ``test.jsonl``;
- :func:`shortcut_report` measures how well trivial cues (length, digits, "sorry", ...) predict
  the label; the generator balances lengths so "longer wins" stays near 0.5.

Recipes can read it through the ``demo`` loader plus the ``demo`` converter (add
``rmforge.data.demo`` to ``plugins``)::

    sources: [{loader: demo, loader_options: {split: train, seed: 0}, converter: demo}]

The datasheet is ``docs/demo-dataset.md``. This module never imports torch.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rmforge.data.demo_templates import CATEGORIES, TEMPLATES, Draft, Retry, Template
from rmforge.data.io import write_samples
from rmforge.data.registry import ConvertContext, register_converter, register_loader
from rmforge.data.schema import Sample, assistant, text, user
from rmforge.errors import DataError, OutputExistsError

DEMO_SOURCE = "rmforge-demo"
DEMO_VERSION = 3
"""Bumped whenever a change alters the generated samples for an existing seed."""
DEFAULT_PAIRS = 2400
SPLITS = ("train", "test")

__all__ = ["CATEGORIES", "DEFAULT_PAIRS", "DEMO_SOURCE", "demo_splits", "generate_demo", "shortcut_report",
           "template_splits", "write_demo"]


# ---------------------------------------------------------------- generation

def generate_demo(n_pairs: int = DEFAULT_PAIRS, seed: int = 0) -> list[Sample]:
    """``n_pairs`` demo pairs, split evenly over the categories and their templates (``split`` unset)."""
    if n_pairs < len(CATEGORIES):
        raise ValueError(f"n_pairs must be at least {len(CATEGORIES)} (one per category), got {n_pairs}")
    by_cat = _by_category()
    samples: list[Sample] = []
    seen_prompts: set[str] = set()
    seen_pairs: set[tuple[str, str]] = set()
    for ci, cat in enumerate(CATEGORIES):
        n_cat = n_pairs // len(CATEGORIES) + (ci < n_pairs % len(CATEGORIES))
        templates = by_cat[cat]
        for ti, tpl in enumerate(templates):
            count = n_cat // len(templates) + (ti < n_cat % len(templates))
            samples.extend(_template_samples(tpl, count, seed, seen_prompts, seen_pairs))
    return samples


def _by_category() -> dict[str, list[Template]]:
    out: dict[str, list[Template]] = defaultdict(list)
    for tpl in TEMPLATES:
        out[tpl.category].append(tpl)
    return out


def _template_samples(tpl: Template, count: int, seed: int, seen_prompts: set, seen_pairs: set) -> list[Sample]:
    rng = random.Random(f"rmforge-demo:{DEMO_VERSION}:{seed}:{tpl.category}:{tpl.id}")
    n_longer = count // 2 + (count % 2 and rng.random() < 0.5)
    targets = [True] * n_longer + [False] * (count - n_longer)
    rng.shuffle(targets)
    out = []
    for k, want_longer in enumerate(targets):
        for attempt in range(400):
            try:
                draft = tpl.make(rng)
            except Retry:
                continue
            chosen, rejected = _pick(rng, draft, want_longer)
            if draft.prompt in seen_prompts and attempt < 100:  # prefer new prompts, accept repeats late
                continue
            if (draft.prompt, chosen) in seen_pairs:
                continue
            break
        else:
            raise ValueError(f"demo template {tpl.category}/{tpl.id} cannot produce {count} distinct pairs; "
                             f"lower n_pairs")
        seen_prompts.add(draft.prompt)
        seen_pairs.add((draft.prompt, chosen))
        out.append(Sample(
            id=f"demo-{tpl.category}-{tpl.id}-{k}",
            prompt=[user(draft.prompt)],
            chosen=[assistant(chosen)],
            rejected=[assistant(rejected)],
            source=DEMO_SOURCE,
            subset=tpl.category,
            category=tpl.category,
            metadata={"template": tpl.id, "rule": tpl.rule, "generator": f"{DEMO_SOURCE}/v{DEMO_VERSION}",
                      "seed": seed, **draft.meta},
        ))
    return out


def _pick(rng: random.Random, draft: Draft, want_longer: bool) -> tuple[str, str]:
    """One rendering per side so that the chosen one is longer (or shorter) than the rejected one.

    Among the pairs that meet the target one is drawn at random (same-index pairs first for
    aligned drafts); when none does, the pair closest to the target is used.
    """
    lc = [len(c) for c in draft.chosen]
    lr = [len(r) for r in draft.rejected]
    sign = 1 if want_longer else -1
    pairs = [(i, j) for i in range(len(lc)) for j in range(len(lr)) if draft.chosen[i] != draft.rejected[j]]
    if not pairs:
        raise Retry
    good = [(i, j) for i, j in pairs if sign * (lc[i] - lr[j]) > 0]
    if draft.aligned:
        good = [(i, j) for i, j in good if i == j] or good
    if not good:
        best = max(sign * (lc[i] - lr[j]) for i, j in pairs)
        good = [(i, j) for i, j in pairs if sign * (lc[i] - lr[j]) == best]
    i, j = rng.choice(good)
    return draft.chosen[i], draft.rejected[j]


# ---------------------------------------------------------------- splits and files

def template_splits(seed: int = 0, test_fraction: float = 0.25) -> dict[str, str]:
    """``"category/template" -> "train" | "test"``; each category gets at least one template in each split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    out = {}
    for cat, templates in _by_category().items():
        ids = [t.id for t in templates]
        random.Random(f"rmforge-demo-split:{seed}:{cat}").shuffle(ids)
        n_test = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
        for k, tid in enumerate(ids):
            out[f"{cat}/{tid}"] = "test" if k < n_test else "train"
    return out


def demo_splits(seed: int = 0, test_fraction: float = 0.25, n_pairs: int = DEFAULT_PAIRS) -> dict[str, list[Sample]]:
    """``{"train": [...], "test": [...]}`` split by prompt template, with ``Sample.split`` set."""
    assign = template_splits(seed, test_fraction)
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for s in generate_demo(n_pairs, seed):
        name = assign[f"{s.category}/{s.metadata['template']}"]
        out[name].append(s.model_copy(update={"split": name}))
    return out


def write_demo(out_dir: str | Path, seed: int = 0, overwrite: bool = False, *, n_pairs: int = DEFAULT_PAIRS,
               test_fraction: float = 0.25, fmt: str = "jsonl") -> dict[str, int]:
    """Write ``train.{fmt}`` and ``test.{fmt}`` (jsonl or parquet) into ``out_dir``; returns counts per split."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / f"{name}.{fmt}" for name in SPLITS}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True or choose a new folder")
    splits = demo_splits(seed, test_fraction, n_pairs)
    return {name: write_samples(paths[name], splits[name], overwrite=overwrite) for name in SPLITS}


# ---------------------------------------------------------------- shortcut report

CUES: dict[str, Callable[[str], bool]] = {
    "contains_digit": lambda t: any(ch.isdigit() for ch in t),
    "ends_with_period": lambda t: t.rstrip().endswith("."),
    "starts_with_I": lambda t: re.match(r"I\b", t.lstrip()) is not None,
    "contains_sorry": lambda t: "sorry" in t.lower(),
    "contains_cant": lambda t: "can't" in t.lower() or "cannot" in t.lower() or "can\u2019t" in t.lower(),
}
"""Surface cues checked by :func:`shortcut_report` (``starts_with_I``: the word "I", also I'm/I'd/I'll)."""


def shortcut_report(samples: Iterable[Sample]) -> dict:
    """Accuracy of trivial predictors of the label, overall and per category.

    ``longer_wins`` / ``shorter_wins``: accuracy of picking the longer / shorter response by
    characters (ties count 1/2, ``ties`` is their share). For each cue in :data:`CUES`:
    ``chosen`` / ``rejected`` = share of pairs whose chosen / rejected response has the cue,
    ``chosen_only`` / ``rejected_only`` = share where only that side has it, and ``accuracy`` of
    "the side with the cue wins" (1/2 when both or neither have it).
    """
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s in samples:
        if s.kind != "pair":
            continue
        pair = (text(s.chosen), text(s.rejected))
        groups["overall"].append(pair)
        groups[s.category or s.subset or "none"].append(pair)
    report = {"overall": _report(groups.pop("overall", []))}
    report["per_category"] = {cat: _report(groups[cat]) for cat in sorted(groups)}
    return report


def _report(pairs: list[tuple[str, str]]) -> dict:
    n = len(pairs)
    if not n:
        return {"n": 0}
    longer = sum(len(c) > len(r) for c, r in pairs)
    ties = sum(len(c) == len(r) for c, r in pairs)
    out = {"n": n, "longer_wins": (longer + ties / 2) / n, "shorter_wins": (n - longer - ties + ties / 2) / n,
           "ties": ties / n, "cues": {}}
    for name, cue in CUES.items():
        flags = [(cue(c), cue(r)) for c, r in pairs]
        c_only = sum(a and not b for a, b in flags)
        r_only = sum(b and not a for a, b in flags)
        out["cues"][name] = {"chosen": sum(a for a, _ in flags) / n, "rejected": sum(b for _, b in flags) / n,
                             "chosen_only": c_only / n, "rejected_only": r_only / n,
                             "accuracy": (c_only + (n - c_only - r_only) / 2) / n}
    return out


# ---------------------------------------------------------------- recipe integration

@register_loader("demo")
def iter_demo_records(split: str | None = None, seed: int = 0, n_pairs: int = DEFAULT_PAIRS,
                      test_fraction: float = 0.25, path: str | None = None) -> Iterator[tuple[dict, int]]:
    """Canonical records of the demo set (``split``: train, test, or None for both); use with converter ``demo``."""
    if path is not None:
        raise DataError("the demo loader generates its own data; remove 'path' from the source")
    if split is not None and split not in SPLITS:
        raise DataError(f"demo split must be one of {', '.join(SPLITS)} (got '{split}')")
    splits = demo_splits(seed, test_fraction, n_pairs)
    samples = [s for name in SPLITS if split in (None, name) for s in splits[name]]
    for row, s in enumerate(samples, 1):
        yield s.to_record(), row


@register_converter("demo", "canonical rmforge records, as yielded by the 'demo' loader", kind="pair")
def convert_demo_record(record: dict, ctx: ConvertContext) -> Sample:
    return Sample.model_validate(record)
