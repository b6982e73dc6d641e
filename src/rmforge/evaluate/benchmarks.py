"""The three benchmarks: loading their official layouts, checking them before scoring, building strata.

:data:`SPECS` describes RewardBench 1 (``rewardbench``), RewardBench 2 (``rewardbench2``) and
RM-Bench (``rm-bench``): converter, default hub location, allowed subsets, the statistic of
:mod:`rmforge.evaluate.rules`, and which chosen/rejected comparisons feed the diagnostics.

:func:`load_benchmark` reads a local file or folder in the upstream layout (through the data
stage's converters), canonical rmforge samples (``format="canonical"``, auto-detected), or a hub id
where a network exists. An RM-Bench folder is read file by file, the domain taken from the file
name (``chat_filtered.json`` -> chat) as the upstream files carry none; converted samples whose
``subset`` is still the upstream source (``alpacaeval``) get the domain of that source. :func:`check_samples`
stops on a wrong sample kind, an unknown subset or a malformed Ties id before any model is loaded.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rmforge.data.converters.benchmarks import RM_BENCH_STYLES, rm_bench_domain_of
from rmforge.data.schema import Sample
from rmforge.errors import ConfigError, DataError
from rmforge.evaluate import rules

Record = dict[str, Any]
"""Per-sample result: ``id``, ``subset``, ``rewards`` (None = dropped), ``lengths``, ``n_chosen``."""


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    title: str
    converter: str
    kind: str
    hub: tuple[str, str]
    """Default (hub id, split) when no data is given."""
    subsets: tuple[str, ...]
    statistic: Callable
    figure_label: Callable[[str], str | None]
    """Display label of a statistic key (None = not shown in the table)."""


def _rb1_label(key: str) -> str | None:
    if key.startswith("subset:"):
        return "    " + key[7:]
    return {"score": "RewardBench score", "score_with_prior": "score with prior sets (0.5 weight)"}.get(key, key)


def _rb2_label(key: str) -> str | None:
    return "  " + key[7:] if key.startswith("subset:") else {"score": "RewardBench 2 score"}.get(key, key)


def _rmb_label(key: str) -> str | None:
    if ":cell" in key:
        return None
    if key.startswith("domain:"):
        return key[7:]
    if ":" in key:
        return "    " + key.replace(":", " ")
    return {"score": "RM-Bench score"}.get(key, key)


SPECS: dict[str, BenchmarkSpec] = {
    "rewardbench": BenchmarkSpec("rewardbench", "RewardBench", "rewardbench", "pair",
                                 ("allenai/reward-bench", "filtered"),
                                 tuple(rules.REWARDBENCH_COUNTS) + rules.PRIOR_SUBSETS,
                                 rules.rewardbench_statistic, _rb1_label),
    "rewardbench2": BenchmarkSpec("rewardbench2", "RewardBench 2", "rewardbench2", "nway",
                                  ("allenai/reward-bench-2", "test"), rules.REWARDBENCH2_SUBSETS,
                                  rules.rewardbench2_statistic, _rb2_label),
    "rm-bench": BenchmarkSpec("rm-bench", "RM-Bench", "rm-bench", "nway", ("THU-KEG/RM-Bench", "train"),
                              rules.RM_BENCH_FILES, rules.rm_bench_statistic, _rmb_label),
}
ALIASES = {"rewardbench1": "rewardbench", "reward-bench": "rewardbench", "rb1": "rewardbench",
           "reward-bench-2": "rewardbench2", "rb2": "rewardbench2", "rmbench": "rm-bench", "rm_bench": "rm-bench"}


def get_spec(name: str) -> BenchmarkSpec:
    key = name.lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in SPECS:
        raise ConfigError(f"unknown benchmark '{name}' (known: preference, {', '.join(SPECS)})")
    return SPECS[key]


# ----------------------------------------------------------------------------- loading

def load_benchmark(spec: BenchmarkSpec, data: str | os.PathLike | Sequence | None = None, fmt: str = "auto",
                   limit: int | None = None) -> list[Sample]:
    """Samples of ``spec`` from ``data`` (path, hub id, list of samples; None = the hub default)."""
    samples = _load(spec, data, fmt, limit)
    return rm_bench_domains(samples) if spec.name == "rm-bench" else samples


def rm_bench_domains(samples: list[Sample]) -> list[Sample]:
    """RM-Bench samples whose ``subset`` is an upstream source (``alpacaeval``, as converted before the
    domain was kept) get the domain instead: from ``metadata["domain"]`` or the known subset names."""
    out = []
    for s in samples:
        if s.subset not in rules.RM_BENCH_FILES:
            domain = rm_bench_domain_of((s.metadata or {}).get("domain")) or rm_bench_domain_of(s.subset)
            if domain:
                s = s.model_copy(update={"subset": domain, "category": s.category or s.subset})
        out.append(s)
    return out


def _load(spec: BenchmarkSpec, data, fmt: str, limit: int | None) -> list[Sample]:
    from rmforge.data.sources import SourceConfig, load_source

    if data is not None and not isinstance(data, (str, os.PathLike)):
        from rmforge.evaluate import load_data

        return load_data(data, limit=limit)
    if data is None:
        hub, split = spec.hub
        return list(load_source(SourceConfig(hf=hub, hf_split=split, converter=spec.converter, limit=limit)))
    path = os.path.expanduser(str(data))
    if not os.path.exists(path):
        if "/" in path and not path.startswith((".", "/")):
            return list(load_source(SourceConfig(hf=path, hf_split=spec.hub[1], converter=spec.converter,
                                                 limit=limit)))
        raise DataError("file or folder not found", file=path)
    if fmt == "auto":
        fmt = "canonical" if _looks_canonical(path) else spec.converter
    if fmt == "canonical":
        from rmforge.train.data import read_any

        return read_any(path, "canonical", limit=limit)
    if spec.name == "rm-bench" and fmt == "rm-bench":
        return _rm_bench_files(path, limit)
    return list(load_source(SourceConfig(path=path, converter=fmt, limit=limit)))


def _looks_canonical(path: str) -> bool:
    """Whether the first record of a file (or of a folder's first file) is a canonical sample."""
    from rmforge.data.records import iter_file
    from rmforge.data.sources import data_files_in, is_saved_dataset

    if os.path.isdir(path):
        if is_saved_dataset(path):
            return False
        path = data_files_in(path)[0]
    for record, _ in iter_file(path):
        try:
            Sample.model_validate(record)
            return True
        except (ValueError, TypeError):
            return False
    return False


def _rm_bench_files(path: str, limit: int | None) -> list[Sample]:
    """RM-Bench file(s); a per-domain file's domain comes from its name unless records carry one."""
    from rmforge.data.sources import SourceConfig, data_files_in, load_source

    files = data_files_in(path) if os.path.isdir(path) else [path]
    out: list[Sample] = []
    for file in files:
        stem = Path(file).name.split(".")[0]
        domain = stem[:-len("_filtered")] if stem.endswith("_filtered") else stem
        options = {"domain": domain} if domain in rules.RM_BENCH_FILES else {}
        left = None if limit is None else limit - len(out)
        if left == 0:
            break
        out += load_source(SourceConfig(path=file, converter="rm-bench", options=options, limit=left))
    return out


# ----------------------------------------------------------------------------- checks

def check_samples(spec: BenchmarkSpec, samples: Sequence[Sample], where: str | None = None) -> None:
    """Raise a DataError naming the sample for anything the benchmark's rules cannot score."""
    if not samples:
        raise DataError(f"no {spec.title} samples", file=where)
    for s in samples:
        def fail(msg: str, field: str | None = None):
            raise DataError(f"{spec.title} sample '{s.id}': {msg}", file=where, field=field)

        if s.kind != spec.kind:
            fail(f"expected a {spec.kind} sample, got {s.kind} (is this {spec.title} data?)")
        if s.subset not in spec.subsets:
            close = difflib.get_close_matches(str(s.subset), spec.subsets, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            extra = (" - name a per-domain file <domain>_filtered.json or give records a 'domain' field"
                     if spec.name == "rm-bench" else "")
            fail(f"unknown subset {s.subset!r}{hint} (known: {', '.join(spec.subsets)}){extra}", "subset")
        if spec.name == "rewardbench2":
            n_chosen = n_chosen_of(s)
            if n_chosen < 1 or n_chosen == len(s.candidates):
                fail("needs at least one chosen and one rejected response", "chosen")
            if s.subset.lower() == "ties" and rules.ties_prompt_id(s.id) is None:
                fail("a Ties id must end in 'ref:N' or 'tied:N'", "id")
        if spec.name == "rm-bench":
            want = [f"{side}/{style}" for side in ("chosen", "rejected") for style in RM_BENCH_STYLES]
            if s.candidate_labels != want:
                fail(f"expected candidates labelled {want}, got {s.candidate_labels}", "candidate_labels")


def n_chosen_of(s: Sample) -> int:
    """Number of chosen (best-ranked) candidates, which come first in RewardBench 2 samples."""
    ranks = s.ranks or []
    best = min(ranks) if ranks else 1
    n = 0
    while n < len(ranks) and ranks[n] == best:
        n += 1
    return n


# ----------------------------------------------------------------------------- strata

def build_strata(spec: BenchmarkSpec, records: Sequence[Record], key: str = "rewards",
                 sign: float = 1.0) -> rules.Strata:
    """Per-stratum item rows from the records' ``key`` values (``sign=-1`` flips them)."""
    groups: dict[str, tuple[list[str], list[np.ndarray]]] = {}
    ties: list[tuple[str, list[float], int]] = []
    for rec in records:
        values = rec.get(key)
        if values is None:
            continue
        values = [sign * float(v) for v in values]
        subset = rec["subset"]
        if spec.name == "rewardbench":
            row = np.array([rules.pair_credit(values)])
        elif spec.name == "rewardbench2":
            if subset.lower() == "ties":
                ties.append((rec["id"], values, rec["n_chosen"]))
                continue
            row = np.array([rules.best_of_n_credit(values)])
        else:
            subset = rules.rm_bench_domain(subset)
            row = rules.style_matrix_row(values[:3], values[3:])
        keys, rows = groups.setdefault(subset, ([], []))
        keys.append(rec["id"])
        rows.append(row)
    out = {k: (keys, np.vstack(rows)) for k, (keys, rows) in groups.items()}
    if ties:
        keys, rows = rules.ties_rows(ties)
        out[next(r["subset"] for r in records if str(r["subset"]).lower() == "ties")] = (keys, rows)
    return out


def comparisons(spec: BenchmarkSpec, rec: Record) -> list[tuple[int, int]]:
    """(chosen index, rejected index) pairs of a record used by the pairwise diagnostics:
    RewardBench the pair, RewardBench 2 every chosen against every rejected, RM-Bench same-style pairs."""
    n = len(rec["rewards"] or rec["lengths"])
    if spec.name == "rewardbench":
        return [(0, 1)]
    if spec.name == "rewardbench2":
        k = rec["n_chosen"]
        return [(i, j) for i in range(k) for j in range(k, n)]
    return [(i, i + 3) for i in range(3)]


def figure_sizes(spec: BenchmarkSpec, strata: rules.Strata, keys: Sequence[str]) -> dict[str, int]:
    """Number of items behind each statistic key."""
    sizes = {k: len(v[0]) for k, v in strata.items()}
    total = sum(sizes.values())
    out = {}
    for key in keys:
        head, _, _ = key.partition(":")
        if key.startswith(("subset:", "domain:")):
            out[key] = sizes.get(key.split(":", 1)[1], 0)
        elif head in sizes:
            out[key] = sizes[head]
        elif spec.name == "rewardbench" and key in rules.REWARDBENCH_SECTIONS:
            from rmforge.data.converters.benchmarks import REWARDBENCH_SECTION

            out[key] = sum(n for s, n in sizes.items() if REWARDBENCH_SECTION.get(s) == key)
        elif key == "Prior Sets":
            out[key] = sum(sizes.get(s, 0) for s in rules.PRIOR_SETS)
        else:
            out[key] = total
    return out
