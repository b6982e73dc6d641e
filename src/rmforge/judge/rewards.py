"""Judge rewards as plain callables, usable by TRL's GRPOTrainer, verl (:mod:`rmforge.judge.verl`) and rmforge.

- pointwise: ``exp(-k * |pred - truth| / (max - min))`` (k = 2 by default), 0 on a parse failure;
- pairwise: 1 for the correct verdict (``A``, ``B`` or ``tie``: a tie is a label like the others), else 0;
- optional format reward: ``format_weight`` x (1 if the answer parses, else 0), added to either.

:class:`JudgeReward` scores one answer into a dict (``score`` plus logged extras: ``acc``, ``parse_ok``,
``abs_error``, ``pred``; None where there is no value) and, called on a batch the TRL way, returns the list of scores while summing
statistics (:class:`JudgeStats`) that the trainers log as verdict accuracy, MAE and parse-failure rate.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from rmforge.judge.parse import Verdict, parse_verdict

DEFAULT_K = 2.0


def pointwise_reward(pred: float | None, truth: float, low: float, high: float, k: float = DEFAULT_K) -> float:
    """``exp(-k |pred - truth| / (high - low))``; 0 when ``pred`` is None (parse failure)."""
    if pred is None:
        return 0.0
    if high <= low:
        raise ValueError(f"scale max ({high}) must exceed scale min ({low})")
    return math.exp(-k * abs(float(pred) - float(truth)) / (high - low))


def pairwise_reward(pred: str | None, truth: str) -> float:
    """1.0 when the verdict equals the label (``A``, ``B`` or ``tie``), else 0.0 (None = parse failure)."""
    return 1.0 if pred is not None and pred == truth else 0.0


def completion_text(completion) -> str:
    """The text of a completion: a string, or the assistant contents of a TRL conversational completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return "".join(str(m.get("content") or "") for m in completion or [] if m.get("role", "assistant") == "assistant")


def normalize_truth(truth, mode: str) -> float | str:
    """A label as the parsers return it: a float (pointwise) or ``A``/``B``/``tie`` (pairwise)."""
    if mode == "pointwise":
        return float(truth)
    value = str(truth).strip()
    verdict = "tie" if value.casefold() == "tie" else value.upper()
    if verdict not in ("A", "B", "tie"):
        raise ValueError(f"pairwise label must be A, B or tie, not {truth!r}")
    return verdict


@dataclass
class JudgeStats:
    """Sums over scored answers; :meth:`pop` returns the averaged metrics and resets."""

    n: int = 0
    reward: float = 0.0
    correct: int = 0
    parsed: int = 0
    abs_error: float = 0.0
    errors: int = 0
    failures: Counter = field(default_factory=Counter)
    groups: dict = field(default_factory=dict)
    """``{group: [answers, correct]}`` for rows whose data names a subset."""

    def add(self, result: dict, status: str, group: str | None = None) -> None:
        self.n += 1
        if group is not None:
            counts = self.groups.setdefault(group, [0, 0])
            counts[0] += 1
            counts[1] += int(result["acc"])
        self.reward += result["score"]
        self.correct += int(result["acc"])
        if status == "ok":
            self.parsed += 1
            if result.get("abs_error") is not None:
                self.abs_error += result["abs_error"]
                self.errors += 1
        else:
            self.failures[status] += 1

    def pop(self, prefix: str = "judge/") -> dict[str, float]:
        if not self.n:
            return {}
        out = {f"{prefix}reward_mean": self.reward / self.n, f"{prefix}verdict_accuracy": self.correct / self.n,
               f"{prefix}parse_failure_rate": 1 - self.parsed / self.n}
        if self.errors:
            out[f"{prefix}mae"] = self.abs_error / self.errors
        for status, count in sorted(self.failures.items()):
            out[f"{prefix}failure/{status}"] = count / self.n
        for group, (n, correct) in sorted(self.groups.items()):
            out[f"{prefix}accuracy/{group}"] = correct / n
        self.__init__()
        return out


class JudgeReward:
    """Reward of one judge task; ``__call__`` follows TRL's reward-function protocol.

    TRL passes the dataset columns as keyword lists: ``truth`` (label as text), for pointwise
    ``scale_min`` / ``scale_max``, and optionally ``group`` (the row's subset: per-group accuracy in
    :attr:`stats`).
    """

    def __init__(self, mode: str, k: float = DEFAULT_K, format_weight: float = 0.0):
        if mode not in ("pointwise", "pairwise"):
            raise ValueError(f"mode must be 'pointwise' or 'pairwise', not {mode!r}")
        self.mode, self.k, self.format_weight = mode, float(k), float(format_weight)
        self.__name__ = f"{mode}_judge"
        self.stats = JudgeStats()

    def parse(self, text: str, low: float | None = None, high: float | None = None) -> Verdict:
        return parse_verdict(text, self.mode, low, high)

    def score(self, text: str, truth, low: float | None = None, high: float | None = None) -> dict:
        """``{"score", "acc", "parse_ok", "abs_error", "pred"}`` for one answer.

        On a parse failure ``abs_error`` is None and ``pred`` is None (pointwise) or -1.0 (pairwise): None,
        never NaN, because verl's metric aggregation drops None values but averages NaN into every figure.
        """
        return self._score(self.parse(text, low, high), truth, low, high)

    def _score(self, verdict: Verdict, truth, low, high) -> dict:
        truth = normalize_truth(truth, self.mode)
        value = verdict.value if verdict.ok else None
        if self.mode == "pointwise":
            base = pointwise_reward(value, truth, low, high, self.k)
            err = abs(value - truth) if value is not None else None
            acc = value is not None and round(value) == round(truth) and abs(value - truth) < 0.5 + 1e-9
            pred = float(value) if value is not None else None
        else:
            base = pairwise_reward(value, truth)
            err, acc = None, base == 1.0
            pred = {"A": 0.0, "B": 1.0, "tie": 0.5}.get(value, -1.0)
        score = base + self.format_weight * float(verdict.ok)
        return {"score": score, "acc": float(acc), "parse_ok": float(verdict.ok), "abs_error": err, "pred": pred}

    def __call__(self, completions, truth, scale_min=None, scale_max=None, group=None, **_) -> list[float]:
        out = []
        for i, (completion, label) in enumerate(zip(completions, truth)):
            low = scale_min[i] if scale_min is not None else None
            high = scale_max[i] if scale_max is not None else None
            verdict = self.parse(completion_text(completion), low, high)
            result = self._score(verdict, label, low, high)
            self.stats.add(result, verdict.status, group[i] if group is not None else None)
            out.append(result["score"])
        return out


def format_reward(mode: str):
    """A TRL reward callable giving 1.0 to answers that parse (weight it with GRPOConfig.reward_weights)."""

    def reward(completions, scale_min=None, scale_max=None, **_) -> list[float]:
        return [float(parse_verdict(completion_text(c), mode, scale_min[i] if scale_min else None,
                                    scale_max[i] if scale_max else None).ok) for i, c in enumerate(completions)]

    reward.__name__ = f"{mode}_format"
    return reward
