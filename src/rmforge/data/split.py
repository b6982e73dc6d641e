"""Train / validation / test splitting: seeded, stratified, and leak-free by prompt.

Algorithm (deterministic for a seed):

1. samples that already carry ``split`` keep it (``keep_existing``); samples sharing their
   normalized prompt follow them, so no prompt crosses splits;
2. the remaining samples form groups (one per normalized prompt with ``group_by_prompt``,
   otherwise one per sample; prompt-less samples are always their own group), each group
   belonging to the stratum of its first sample;
3. split sizes are computed on the remaining samples (fractions, or absolute counts), spread
   over the strata in proportion to their sizes with largest-remainder rounding so that both
   the totals and every stratum's sizes are whole and sum up exactly;
4. inside a stratum, groups are shuffled, larger groups placed first, and each goes to the
   split that still needs the most samples. With single-sample groups the sizes are exact;
   whole groups may overshoot a split by less than a group's size.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import Field, model_validator

from rmforge.config import ConfigModel
from rmforge.data.schema import Sample
from rmforge.data.textnorm import prompt_key
from rmforge.errors import DataError

__all__ = ["SPLITS", "SplitConfig", "prompt_key", "split_samples", "stratum_of"]

SPLITS = ("train", "validation", "test")


class SplitConfig(ConfigModel):
    """How samples are divided into train / validation / test."""

    validation: float | int = Field(0.0, ge=0)
    """Validation size: a fraction (0.05) or an absolute count (500)."""
    test: float | int = Field(0.0, ge=0)
    """Test size: a fraction (0.05) or an absolute count (500)."""
    stratify_by: Literal["none", "subset", "category", "label", "source"] = "none"
    """Keep each stratum's proportions in every split; label = tie/pair, nway, or the rounded first pointwise score."""
    group_by_prompt: bool = True
    """Samples sharing a normalized prompt always land in the same split (no prompt leaks)."""
    seed: int = 42
    """Random seed of the assignment."""
    keep_existing: bool = True
    """Samples whose 'split' is already set keep it."""

    @model_validator(mode="after")
    def _sizes(self) -> "SplitConfig":
        fractions = 0.0
        for name in ("validation", "test"):
            value = getattr(self, name)
            if isinstance(value, float):
                if value >= 1.0:
                    if value.is_integer():
                        raise ValueError(f"'{name}: {value}' is ambiguous: write {int(value)} for a count "
                                         "or a fraction below 1")
                    raise ValueError(f"'{name}' fraction must be below 1 (got {value})")
                fractions += value
        if fractions > 1.0:
            raise ValueError(f"validation + test fractions add up to {fractions:g} (> 1)")
        return self


def stratum_of(sample: Sample, by: str) -> str:
    """Stratum name of a sample for ``stratify_by`` (``""`` when the field is unset)."""
    if by == "none":
        return ""
    if by == "label":
        if sample.kind == "pair":
            return "tie" if sample.tie else "pair"
        if sample.kind == "nway":
            return "nway"
        return f"pointwise:{round(next(iter(sample.scores.values())))}"
    return getattr(sample, by) or ""


def _largest_remainder(quotas: list[float], total: int) -> list[int]:
    """Integers summing to ``total`` closest to ``quotas`` (which sum to ``total``)."""
    out = [math.floor(q) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda k: (-(quotas[k] - out[k]), k))
    for k in order[: total - sum(out)]:
        out[k] += 1
    return out


def _split_sizes(n: int, cfg: SplitConfig) -> list[int]:
    """[train, validation, test] sizes for ``n`` samples."""
    want = {}
    for name in ("validation", "test"):
        value = getattr(cfg, name)
        want[name] = value * n if isinstance(value, float) else value
    counts = [w for w in want.values() if not isinstance(w, float)]
    if sum(counts) > n:
        raise DataError(f"split: validation + test counts ({sum(counts)}) exceed the {n} samples to split")
    quotas = [max(0.0, n - want["validation"] - want["test"]), float(want["validation"]), float(want["test"])]
    return _largest_remainder(quotas, n)


def _stratum_sizes(sizes: list[int], totals: list[int]) -> list[list[int]]:
    """Matrix rounding: per-stratum split sizes with rows summing to ``sizes`` and columns to ``totals``."""
    n = sum(sizes)
    ideal = [[size * t / n for t in totals] for size in sizes]
    out = [[math.floor(v) for v in row] for row in ideal]
    row_need = [size - sum(row) for size, row in zip(sizes, out)]
    col_need = [t - sum(row[j] for row in out) for j, t in enumerate(totals)]
    cells = sorted(((i, j) for i in range(len(sizes)) for j in range(len(totals))),
                   key=lambda c: (-(ideal[c[0]][c[1]] - out[c[0]][c[1]]), c))
    for i, j in cells:
        if row_need[i] > 0 and col_need[j] > 0:
            out[i][j] += 1
            row_need[i] -= 1
            col_need[j] -= 1
    for i in range(len(sizes)):  # rare leftovers the greedy pass could not place
        for j in range(len(totals)):
            step = min(row_need[i], col_need[j])
            out[i][j] += step
            row_need[i] -= step
            col_need[j] -= step
    return out


def split_samples(samples: list[Sample], cfg: SplitConfig | None = None) -> dict[str, list[Sample]]:
    """Assign every sample a split (sets ``sample.split`` in place) and group them by split.

    Keys are train/validation/test (empty ones omitted), then any other pre-existing split
    names kept by ``keep_existing``; samples keep their input order inside each split.
    """
    cfg = cfg or SplitConfig()
    keys = [prompt_key(s) if cfg.group_by_prompt else "" for s in samples]
    fixed: dict[str, str] = {}
    if cfg.keep_existing:
        for s, key in zip(samples, keys):
            if s.split and key and key not in fixed:
                fixed[key] = s.split
    assigned: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for i, (s, key) in enumerate(zip(samples, keys)):
        if cfg.keep_existing and s.split:
            assigned[i] = s.split
        elif key in fixed:
            assigned[i] = fixed[key]
        else:
            groups.setdefault(key or f"\0{i}", []).append(i)
    strata: dict[str, list[list[int]]] = {}
    for members in groups.values():
        strata.setdefault(stratum_of(samples[members[0]], cfg.stratify_by), []).append(members)
    names = sorted(strata)
    sizes = [sum(len(g) for g in strata[name]) for name in names]
    if sizes:
        targets = _stratum_sizes(sizes, _split_sizes(sum(sizes), cfg))
    rng = random.Random(cfg.seed)
    for name, target in zip(names, targets if sizes else []):
        stratum = strata[name]
        rng.shuffle(stratum)
        stratum.sort(key=len, reverse=True)  # stable: shuffled order among equal sizes
        need = list(target)
        for members in stratum:
            j = max(range(len(SPLITS)), key=lambda k: (need[k], -k))
            need[j] -= len(members)
            for i in members:
                assigned[i] = SPLITS[j]
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for i, s in enumerate(samples):
        s.split = assigned[i]
        out.setdefault(s.split, []).append(s)
    return {name: group for name, group in out.items() if group}
