"""Evaluation of generative judges (``rmforge eval judge``): generate verdicts, parse, score.

Metrics (:func:`judge_metrics`): parse-failure rate (and per failure kind), mean reward; pairwise:
accuracy (a failure counts as wrong), accuracy over parsed answers, share of ``A`` verdicts, and
position consistency (the same comparison shown in both A/B orders gets the same underlying
verdict; a failure in either order counts as inconsistent); pointwise: MAE and exact match over
parsed answers, Spearman correlation between parsed scores and labels; ``accuracy_by_group`` when
the data names subsets. Undefined values are None. Per-example rows carry ``correct`` and ``reward``,
so ``rmforge eval compare`` can pair two judges' results.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from rmforge.judge.data import JudgeExample
from rmforge.judge.rewards import DEFAULT_K, JudgeReward, completion_text


def judge_metrics(examples: list[JudgeExample], completions: list, mode: str, k: float = DEFAULT_K) -> dict:
    """Metrics of ``completions`` (texts or TRL messages) against ``examples`` (same order)."""
    if len(examples) != len(completions):
        raise ValueError(f"{len(examples)} examples but {len(completions)} completions")
    reward = JudgeReward(mode, k)
    verdicts = [reward.parse(completion_text(c), ex.scale_min, ex.scale_max) for ex, c in zip(examples, completions)]
    scores = [reward._score(v, ex.truth, ex.scale_min, ex.scale_max) for v, ex in zip(verdicts, examples)]
    n = len(examples)
    failures = Counter(v.status for v in verdicts if not v.ok)
    parsed = [i for i, v in enumerate(verdicts) if v.ok]
    out: dict = {"n": n, "parse_failure_rate": (n - len(parsed)) / n if n else None,
                 "parse_failures": dict(sorted(failures.items())),
                 "reward_mean": sum(s["score"] for s in scores) / n if n else None,
                 "mean_completion_chars": sum(len(completion_text(c)) for c in completions) / n if n else 0.0}
    groups: dict[str, list[float]] = defaultdict(list)
    for ex, s in zip(examples, scores):
        if ex.group is not None:
            groups[ex.group].append(s["acc"])
    if groups:
        out["accuracy_by_group"] = {g: sum(v) / len(v) for g, v in sorted(groups.items())}
    if mode == "pairwise":
        correct = [s["acc"] for s in scores]
        out["accuracy"] = sum(correct) / n if n else None
        out["accuracy_parsed"] = sum(correct[i] for i in parsed) / len(parsed) if parsed else None
        out["a_rate"] = sum(verdicts[i].value == "A" for i in parsed) / len(parsed) if parsed else None
        out.update(position_consistency(examples, verdicts))
    else:
        errors = [s["abs_error"] for s in scores if s["abs_error"] is not None]
        out["mae"] = sum(errors) / len(errors) if errors else None
        out["exact_match"] = sum(scores[i]["acc"] for i in parsed) / len(parsed) if parsed else None
        out["accuracy"] = sum(s["acc"] for s in scores) / n if n else None
        out["spearman"] = _spearman([verdicts[i].value for i in parsed], [float(examples[i].truth) for i in parsed])
    return out


def position_consistency(examples: list[JudgeExample], verdicts: list) -> dict:
    """Share of comparisons seen in both orders whose two verdicts agree on the underlying responses."""
    groups: dict[str, dict[str, object]] = defaultdict(dict)
    for ex, v in zip(examples, verdicts):
        if ex.pair_id is not None and ex.position in ("A", "B"):
            groups[ex.pair_id][ex.position] = v
    both = [g for g in groups.values() if len(g) == 2]
    if not both:
        return {"position_consistency": None, "pairs_in_both_orders": 0}

    def outcome(v, position):  # relative to the better response: better / worse / tie
        if not v.ok:
            return None
        return "tie" if v.value == "tie" else ("better" if v.value == position else "worse")

    agree = sum(1 for g in both if outcome(g["A"], "A") is not None and outcome(g["A"], "A") == outcome(g["B"], "B"))
    return {"position_consistency": agree / len(both), "pairs_in_both_orders": len(both)}


def _spearman(pred: list, truth: list) -> float:
    if len(pred) < 2 or len(set(pred)) < 2 or len(set(truth)) < 2:
        return None
    from scipy.stats import spearmanr

    value = float(spearmanr(pred, truth).statistic)
    return value if math.isfinite(value) else None


def generate_verdicts(model, tok, examples: list[JudgeExample], max_new_tokens: int, batch_size: int = 16,
                      enable_thinking: bool | None = None) -> list[str]:
    """Greedy completions of the judge prompts, batched."""
    from rmforge.judge.lm import generate
    from rmforge.judge.templates import render_chat

    prompts = [render_chat(tok, ex.prompt, enable_thinking) for ex in examples]
    return generate(model, tok, prompts, max_new_tokens, batch_size)


def evaluate_judge(model_name: str, data: str, mode: str, *, limit: int | None = None, batch_size: int = 16,
                   max_new_tokens: int = 64, k: float = DEFAULT_K, enable_thinking: bool | None = None,
                   template: str | None = None, scale: tuple[float, float] | None = None,
                   seed: int = 0) -> tuple[dict, list[dict]]:
    """Load ``model_name`` and ``data``; return (metrics, per-example rows with completion and verdict)."""
    import time

    import torch

    from rmforge.judge.data import load_judge_data
    from rmforge.judge.lm import load_causal_lm

    examples = load_judge_data(data, mode, template=template, scale=scale, limit=limit, seed=seed)
    model, tok = load_causal_lm(model_name)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    completions = generate_verdicts(model, tok, examples, max_new_tokens, batch_size, enable_thinking)
    metrics = judge_metrics(examples, completions, mode, k)
    metrics.update(model=model_name, data=data, mode=mode, generation_seconds=round(time.perf_counter() - t0, 2))
    reward = JudgeReward(mode, k)
    rows = []
    for ex, text in zip(examples, completions):
        v = reward.parse(text, ex.scale_min, ex.scale_max)
        score = reward._score(v, ex.truth, ex.scale_min, ex.scale_max)
        rows.append({"id": ex.id, "group": ex.group, "truth": ex.truth, "verdict": v.value, "status": v.status,
                     "correct": float(score["acc"]), "reward": float(score["score"]), "completion": text})
    return metrics, rows
