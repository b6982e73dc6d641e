"""Judge rewards: golden values, parse failures, ties as labels, TRL call protocol and statistics."""

import math

import pytest

from rmforge.judge.rewards import JudgeReward, format_reward, pairwise_reward, pointwise_reward


def test_pointwise_reward_golden():
    assert pointwise_reward(3, 3, 0, 4) == 1.0
    assert pointwise_reward(2, 3, 0, 4) == pytest.approx(math.exp(-0.5))
    assert pointwise_reward(0, 4, 0, 4) == pytest.approx(math.exp(-2))
    assert pointwise_reward(0, 4, 0, 4, k=1) == pytest.approx(math.exp(-1))
    assert pointwise_reward(None, 4, 0, 4) == 0.0
    assert pointwise_reward(5, 7, 1, 10, k=3) == pytest.approx(math.exp(-3 * 2 / 9))


def test_pairwise_reward_ties_are_labels():
    assert pairwise_reward("A", "A") == 1.0 and pairwise_reward("B", "A") == 0.0
    assert pairwise_reward("tie", "tie") == 1.0 and pairwise_reward("A", "tie") == 0.0
    assert pairwise_reward(None, "B") == 0.0


def test_judge_reward_trl_protocol_and_stats():
    r = JudgeReward("pointwise")
    completions = [[{"role": "assistant", "content": "<score>3</score>"}],
                   [{"role": "assistant", "content": "<score>1</score>"}],
                   [{"role": "assistant", "content": "no tag"}]]
    out = r(prompts=None, completions=completions, truth=["3", "3.0", "2"], scale_min=[0, 0, 0], scale_max=[4, 4, 4])
    assert out == pytest.approx([1.0, math.exp(-1.0), 0.0])
    stats = r.stats.pop()
    assert stats["judge/verdict_accuracy"] == pytest.approx(1 / 3)
    assert stats["judge/parse_failure_rate"] == pytest.approx(1 / 3)
    assert stats["judge/mae"] == pytest.approx(1.0)  # over parsed answers: (0 + 2) / 2
    assert stats["judge/failure/missing_tag"] == pytest.approx(1 / 3)
    assert r.stats.pop() == {}  # reset
    assert not any(k.startswith("judge/accuracy/") for k in stats)  # no group column


def test_judge_reward_per_group_accuracy():
    r = JudgeReward("pairwise")
    answers = ["<preference>A</preference>", "<preference>B</preference>", "<preference>A</preference>"]
    r(completions=answers, truth=["A", "A", "A"], group=["math", "math", None])
    stats = r.stats.pop()
    assert stats["judge/accuracy/math"] == pytest.approx(0.5) and stats["judge/verdict_accuracy"] == pytest.approx(2 / 3)
    assert [k for k in stats if k.startswith("judge/accuracy/")] == ["judge/accuracy/math"]


def test_format_weight_and_verl_style_dict():
    r = JudgeReward("pairwise", format_weight=0.1)
    ok = r.score("<preference>B</preference>", "A")
    assert ok == {"score": pytest.approx(0.1), "acc": 0.0, "parse_ok": 1.0, "abs_error": None, "pred": 1.0}
    assert r.score("<preference>tie</preference>", "TIE")["score"] == pytest.approx(1.1)
    assert r.score("garbage", "A")["score"] == 0.0
    fmt = format_reward("pairwise")
    assert fmt(completions=["<preference>A</preference>", "A"]) == [1.0, 0.0] and fmt.__name__ == "pairwise_format"


def test_bad_labels_and_modes():
    with pytest.raises(ValueError, match="A, B or tie"):
        JudgeReward("pairwise").score("<preference>A</preference>", "C")
    with pytest.raises(ValueError, match="mode"):
        JudgeReward("listwise")
