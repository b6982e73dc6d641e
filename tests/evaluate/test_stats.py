"""Bootstrap intervals and length diagnostics on hand-computed inputs."""

import math

import numpy as np
import pytest

from rmforge.evaluate import stats as st
from rmforge.evaluate.stats import accuracy_with_ci, bootstrap_ci


def test_bootstrap_contains_mean_and_is_seeded():
    x = np.random.default_rng(1).random(200) < 0.7
    low, high = bootstrap_ci(x, seed=3)
    assert low < x.mean() < high
    assert bootstrap_ci(x, seed=3) == (low, high)
    assert len({bootstrap_ci(x, n_boot=200, seed=s) for s in range(10)}) > 1  # the seed matters


def test_bootstrap_float_values_and_edge_cases():
    x = np.random.default_rng(0).normal(2.0, 1.0, 300)  # many levels: index resampling
    low, high = bootstrap_ci(x, n_boot=500)
    assert low < x.mean() < high and high - low == pytest.approx(2 * 1.96 / math.sqrt(300), rel=0.25)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)  # a constant's bootstrap is a point: 0/1 accuracies use Wilson
    assert accuracy_with_ci([1, 1, 1]).ci_low < 1.0
    with pytest.raises(ValueError):
        bootstrap_ci([0, 1], alpha=0)


def test_bootstrap_narrows_with_n():
    widths = []
    for n in (20, 200, 2000):
        x = (np.arange(n) % 4 != 0).astype(float)  # accuracy 0.75
        low, high = bootstrap_ci(x)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[2] == pytest.approx(2 * 1.96 * math.sqrt(0.75 * 0.25 / 2000), rel=0.15)


def test_multinomial_and_index_resampling_agree(monkeypatch):
    x = (np.random.default_rng(5).random(400) < 0.6).astype(float)
    fast = bootstrap_ci(x, n_boot=4000)
    monkeypatch.setattr(st, "_MAX_LEVELS", 1)
    slow = bootstrap_ci(x, n_boot=4000)
    assert fast == pytest.approx(slow, abs=0.015)


def test_accuracy_with_ci():
    acc = accuracy_with_ci([1, 0, 1, 1])
    assert (acc.accuracy, acc.n) == (0.75, 4) and acc.ci_low <= 0.75 <= acc.ci_high
    assert accuracy_with_ci([]).n == 0 and math.isnan(accuracy_with_ci([]).accuracy)
    assert "n=4" in str(acc)


def test_zero_one_accuracy_gets_scipys_wilson_interval_never_zero_width():
    from scipy.stats import binomtest

    all_right = accuracy_with_ci([1] * 28)
    assert all_right.accuracy == 1.0 and all_right.ci_high == 1.0
    assert all_right.ci_low == pytest.approx(0.8793566952, abs=1e-9) and all_right.ci_low < 1.0
    one_wrong = accuracy_with_ci([1] * 27 + [0])
    assert (round(one_wrong.ci_low, 3), round(one_wrong.ci_high, 3)) == (0.823, 0.994)
    ci = binomtest(27, 28).proportion_ci(method="wilson")  # the peer call, verbatim
    assert (one_wrong.ci_low, one_wrong.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    ci90 = binomtest(3, 10).proportion_ci(confidence_level=0.9, method="wilson")
    assert st.wilson_ci(3, 10, alpha=0.1) == (pytest.approx(ci90.low), pytest.approx(ci90.high))
    none_right = accuracy_with_ci([0] * 5)
    assert none_right.ci_low == 0.0 and none_right.ci_high == pytest.approx(0.4344824648)
    assert all(math.isnan(v) for v in st.wilson_ci(0, 0))


def test_fractional_credits_keep_the_bootstrap():
    x = [1, 0.5, 0, 1, 1, 0.5, 1, 0]
    assert (accuracy_with_ci(x).ci_low, accuracy_with_ci(x).ci_high) == bootstrap_ci(x)


def test_length_baselines_by_hand():
    chosen, rejected = [10, 5, 7, 20], [5, 10, 7, 19]
    assert st.longer_wins(chosen, rejected).tolist() == [1, 0, 0.5, 1]
    assert st.shorter_wins(chosen, rejected).tolist() == [0, 1, 0.5, 0]
    base = st.length_baselines(chosen, rejected)
    assert base["longer_wins"].accuracy == 0.625 and base["shorter_wins"].accuracy == 0.375
    assert st.length_matched(chosen, rejected).tolist() == [False, False, True, True]
    assert st.length_matched([0, 11], [0, 10]).tolist() == [True, True]  # 1/11 <= 0.1
    matched = st.length_matched_accuracy([1, 1, 0, 1], chosen, rejected)
    assert (matched.accuracy, matched.n) == (0.5, 2)


def test_length_correlation():
    lengths = [1, 2, 3, 4, 5, 6]
    assert st.length_correlation([2 * v for v in lengths], lengths)["pearson"] == pytest.approx(1.0)
    cube = st.length_correlation([v ** 3 for v in lengths], lengths)
    assert cube["spearman"] == pytest.approx(1.0) and cube["pearson"] < 1.0
    assert math.isnan(st.length_correlation([1, 1, 1], [1, 2, 3])["pearson"])
