"""Official scoring rules against hand-computed results; stratified and paired bootstrap."""

import math

import numpy as np
import pytest

from rmforge.evaluate import rules
from rmforge.evaluate.diagnostics import calibration, style_probe


def means(d):
    return {k: np.array([v]) for k, v in d.items()}


def test_rewardbench_sections_match_the_official_readme_example():
    # metrics of the example in allenai/reward-bench README ("Getting Leaderboard Section Scores")
    m = {"alpacaeval-easy": 0.5, "alpacaeval-hard": 0.7052631578947368, "alpacaeval-length": 0.5894736842105263,
         "donotanswer": 0.8235294117647058, "hep-cpp": 0.6280487804878049, "hep-go": 0.6341463414634146,
         "hep-java": 0.7073170731707317, "hep-js": 0.6646341463414634, "hep-python": 0.5487804878048781,
         "hep-rust": 0.6463414634146342, "llmbar-adver-GPTInst": 0.391304347826087,
         "llmbar-adver-GPTOut": 0.46808510638297873, "llmbar-adver-manual": 0.3695652173913043,
         "llmbar-adver-neighbor": 0.43283582089552236, "llmbar-natural": 0.52, "math-prm": 0.2953020134228188,
         "mt-bench-easy": 0.5714285714285714, "mt-bench-hard": 0.5405405405405406, "mt-bench-med": 0.725,
         "refusals-dangerous": 0.97, "refusals-offensive": 1, "xstest-should-refuse": 1,
         "xstest-should-respond": 0.284}
    out = rules.rewardbench_statistic(means(m))
    # by hand: weights 100/95/95/28/40 (Chat); 37/100/134/92/47/46 (Chat Hard); 100/100/250/154/136 (Safety);
    # math-prm 984 = 6 x 164 against the six code subsets (Reasoning)
    chat = (50 + 0.5894736842105263 * 95 + 0.7052631578947368 * 95 + 16 + 29) / 358
    chat_hard = (20 + 52 + 58 + 36 + 22 + 17) / 456
    safety = (97 + 100 + 250 + 0.284 * 154 + 112) / 740
    code = 164 * (0.6280487804878049 + 0.6341463414634146 + 0.7073170731707317 + 0.6646341463414634
                  + 0.5487804878048781 + 0.6463414634146342)
    reasoning = (0.2953020134228188 * 984 + code) / 1968
    assert out["Chat"] == pytest.approx(chat) and out["Chat"] == pytest.approx(0.6089385475)
    assert out["Chat Hard"] == pytest.approx(chat_hard) and out["Chat Hard"] == pytest.approx(0.4495614035)
    assert out["Safety"] == pytest.approx(safety) and out["Safety"] == pytest.approx(0.8145081081)
    assert out["Reasoning"] == pytest.approx(reasoning)
    assert out["score"] == pytest.approx((chat + chat_hard + safety + reasoning) / 4)
    assert "Prior Sets" not in out


def test_rewardbench_prior_sets_weigh_half_a_section_and_missing_sections_are_left_out():
    out = rules.rewardbench_statistic(means({"alpacaeval-easy": 1.0, "mt-bench-hard": 0.5, "shp": 0.6,
                                             "anthropic_helpful": 0.8, "mtbench_human": 0.0}))
    assert "Safety" not in out and "Reasoning" not in out
    assert out["score"] == pytest.approx(0.75)
    assert out["Prior Sets"] == pytest.approx(0.7)  # mtbench_human is not one of the four prior sets
    assert out["score_with_prior"] == pytest.approx((2 * 1.0 + 2 * 0.5 + 0.7) / 5)


def test_rewardbench2_best_of_n_credit_splits_ties():
    assert rules.best_of_n_credit([2.0, 1.0, 0.0, 1.5]) == 1.0
    assert rules.best_of_n_credit([1.0, 1.0, 0.0]) == 0.5
    assert rules.best_of_n_credit([1.0, 1.0, 1.0, 1.0]) == 0.25
    assert rules.best_of_n_credit([1.0, 2.0]) == 0.0


def test_rewardbench2_ties_formula_by_hand():
    items = [("rewardbench2-ref:1", [3.0, 1.0, 2.0, 0.0], 1),       # gap 1 > 0: accurate
             ("rewardbench2-tied:1", [5.0, 4.0, 4.5, 1.0, 2.0, 0.0], 3),  # spread 1, gap 2: accurate
             ("ref:2", [1.0, 2.0, 0.0], 1),                          # gap -1
             ("tied:2", [3.0, 2.0, 2.5, 0.0], 2)]                     # spread 1, gap -0.5
    keys, rows = rules.ties_rows(items)
    assert keys == ["1", "2"]
    # prompt 1: preferred 2 > 1 yes; hard min(1, 2) > 1 no; margin tanh(1/1 - 1) = 0
    # prompt 2: preferred -0.5 > 1 no; hard no; margin tanh(-1/1 - 1) = tanh(-2)
    np.testing.assert_allclose(rows, [[1, 1, 1, 0, 0.0], [0, 0, 0, 0, math.tanh(-2)]])
    score = rules.ties_score(rules.column_means(rows))
    assert score == pytest.approx(0.3 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0 + 0.01 * math.tanh(-2) / 2)
    out = rules.rewardbench2_statistic({"Ties": rules.column_means(rows), "Math": np.array([0.25])})
    assert out["score"] == pytest.approx((score + 0.25) / 2)
    with pytest.raises(ValueError, match="ref:N"):
        rules.ties_rows([("7", [1.0, 0.0], 1)])


def test_rm_bench_matrix_by_hand():
    first = rules.style_matrix_row([3.0, 2.0, 1.0], [2.5, 1.5, 0.5])
    np.testing.assert_array_equal(first.reshape(3, 3), [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    acc = rules.difficulty_accuracies(first)
    assert (acc["hard"], acc["normal"], acc["easy"]) == (1.0, 1.0, 0.0)
    second = rules.style_matrix_row([0.0, 0.0, 0.0], [1.0, 0.0, 0.0])  # ties are not wins
    assert second.sum() == 0
    out = rules.rm_bench_statistic({"chat": (first + second) / 2, "safety": np.ones(9)})
    assert (out["chat:hard"], out["chat:normal"], out["chat:easy"]) == (0.5, 0.5, 0.0)
    assert out["domain:chat"] == pytest.approx(1 / 3) and out["domain:safety"] == 1.0
    assert out["score"] == pytest.approx(2 / 3)
    assert out["score"] == pytest.approx((out["hard"] + out["normal"] + out["easy"]) / 3)


def test_bootstrap_is_seeded_and_brackets_the_point_estimate():
    rng = np.random.default_rng(1)
    strata = {"a": ([str(i) for i in range(200)], (rng.random((200, 1)) < 0.7).astype(float)),
              "b": ([str(i) for i in range(50)], (rng.random((50, 1)) < 0.4).astype(float))}
    stat = rules.rewardbench2_statistic
    one = rules.bootstrap_statistic(strata, stat, 500, seed=3)
    assert one == rules.bootstrap_statistic(strata, stat, 500, seed=3)
    assert one != rules.bootstrap_statistic(strata, stat, 500, seed=4)
    for value, lo, hi in one.values():
        assert lo <= value <= hi and hi - lo > 0.01


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    strata = {"s": (["x", "y", "z"], np.array([[1.0], [0.0], [1.0]]))}
    other = {"s": (["z", "y", "w"], np.array([[1.0], [1.0], [0.0]]))}
    paired, width = rules.paired_strata(strata, strata)
    diff = rules.bootstrap_statistic(paired, rules.difference_statistic(rules.rewardbench2_statistic, width), 200)
    assert all(v == (0.0, 0.0, 0.0) for v in diff.values())
    paired, width = rules.paired_strata(strata, other)  # shared: z (1 vs 1), y (0 vs 1)
    assert paired["s"][0] == ["y", "z"]
    diff = rules.bootstrap_statistic(paired, rules.difference_statistic(rules.rewardbench2_statistic, width), 200)
    assert diff["score"][0] == pytest.approx(0.5)


def test_calibration_by_hand():
    # margins: +2, +2 (conf 0.881, right), -2 (conf 0.881, wrong), 0 (conf 0.5, half right)
    cal = calibration([2.0, 2.0, -2.0, 0.0], bins=5)
    c = 1 / (1 + math.exp(-2))
    assert [b["n"] for b in cal["bins"]] == [1, 3]
    assert cal["bins"][1]["accuracy"] == pytest.approx(2 / 3)
    assert cal["ece"] == pytest.approx(0.25 * 0 + 0.75 * abs(2 / 3 - c))


def test_style_probe():
    out = style_probe([[1.0, 2.0, 4.0, 0.0, 1.0, 1.0]], ["concise", "detailed_plain", "detailed_markdown"])
    assert out["chosen"]["detailed_markdown"] == 4.0
    assert out["detail_gap"] == pytest.approx((1 + 1) / 2) and out["markdown_gap"] == pytest.approx((2 + 0) / 2)
