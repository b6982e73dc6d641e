"""Reward-model evaluation (issue 5): ``evaluate(model, benchmark=..., data=...)``.

``model`` is an rmforge run directory, a Hugging Face folder, an embedded name (``minilm-l6``,
``smollm2-135m``: scored with a seeded untrained head) or a :class:`Scorer`; ``data`` a file path
(canonical, or any layout a converter reads with ``format=NAME``) or a list of samples.
Benchmarks: ``preference`` (:class:`PreferenceResult`), ``rewardbench``, ``rewardbench2`` and ``rm-bench``
(:class:`BenchmarkResult`; ``data`` may then be omitted to read the hub copy where a network exists).

The package itself is callable, so ``import rmforge.evaluate; rmforge.evaluate(model, data=...)``
works as the issue's Python API describes.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence
from typing import Any

from rmforge.errors import ConfigError
from rmforge.evaluate.preference import PreferenceResult, evaluate_preference
from rmforge.reward_model.scorer import Scorer, load_scorer
from rmforge.evaluate.stats import Accuracy, accuracy_with_ci, bootstrap_ci
from rmforge.evaluate.suite import BenchmarkResult, evaluate_benchmark

BENCHMARKS = ("preference", "rewardbench", "rewardbench2", "rm-bench")
_SCORER_KW = ("max_length", "batch_size", "precision", "device", "length_policy", "progress")
_EVAL_KW = ("group_by", "n_boot", "seed", "alpha")

__all__ = [
    "BENCHMARKS",
    "Accuracy",
    "BenchmarkResult",
    "PreferenceResult",
    "Scorer",
    "accuracy_with_ci",
    "bootstrap_ci",
    "evaluate",
    "evaluate_benchmark",
    "evaluate_preference",
    "load_data",
    "load_scorer",
]


def load_data(data: str | os.PathLike | Sequence[Any], fmt: str = "canonical", limit: int | None = None) -> list:
    """Samples from a path (``fmt``: canonical or a converter name) or a list of samples/records."""
    from rmforge.data.schema import Sample

    if isinstance(data, (str, os.PathLike)):
        from rmforge.train.data import read_any

        return read_any(str(data), fmt, limit=limit)
    out = [s if isinstance(s, Sample) else Sample.model_validate(s) for s in data]
    return out[:limit] if limit else out


def evaluate(model: str | os.PathLike | Scorer, benchmark: str = "preference", data=None, *,
             format: str = "auto", limit: int | None = None, **kw) -> PreferenceResult | BenchmarkResult:
    """Evaluate ``model`` on ``benchmark``; keyword options go to :func:`load_scorer` (max_length,
    batch_size, precision, device, length_policy, progress) and to the evaluator (n_boot, seed, alpha;
    group_by for ``preference``). Data are read and checked before the model is loaded."""
    from rmforge.evaluate.benchmarks import get_spec, load_benchmark

    name = benchmark.lower().replace("_", "-")
    spec = None if name == "preference" else get_spec(name)
    allowed = set(_SCORER_KW) | set(_EVAL_KW) - ({"group_by"} if spec else set())
    unknown = set(kw) - allowed
    if unknown:
        raise ConfigError(f"unknown option(s) for evaluate: {', '.join(sorted(unknown))}")
    where = str(data) if isinstance(data, (str, os.PathLike)) else None
    if spec is None:
        if data is None:
            raise ConfigError("evaluate needs data=PATH or a list of samples")
        samples = load_data(data, "canonical" if format == "auto" else format, limit)
    else:
        from rmforge.evaluate.benchmarks import check_samples

        samples = load_benchmark(spec, data, format, limit)
        check_samples(spec, samples, where)
    scorer_kw = {k: v for k, v in kw.items() if k in _SCORER_KW}
    if isinstance(model, Scorer):
        if scorer_kw:
            raise ConfigError(f"{', '.join(scorer_kw)} cannot change an existing Scorer; pass the model name instead")
        scorer = model
    else:
        scorer = load_scorer(model, **scorer_kw)
    eval_kw = {k: v for k, v in kw.items() if k in _EVAL_KW}
    if spec is None:
        return evaluate_preference(scorer, samples, data=where, **eval_kw)
    return evaluate_benchmark(scorer, spec.name, samples, data=where or spec.hub[0], **eval_kw)


class _CallableModule(types.ModuleType):
    """Lets ``rmforge.evaluate(...)`` call :func:`evaluate`."""

    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
