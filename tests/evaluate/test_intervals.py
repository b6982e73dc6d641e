"""Which interval each benchmark figure gets: Wilson for 0/1 subset accuracies, bootstrap for the rest."""

import pytest
from scipy.stats import binomtest

from rmforge.data.schema import Sample, assistant, user
from rmforge.evaluate import evaluate_benchmark
from rmforge.reward_model.tokenize import EncodeStats


class Fixed:
    """Fake scorer: a sample whose id ends in ':wrong' prefers its rejected response."""

    name, info = "fixed", {}

    def score_samples(self, samples):
        return [[0.0, 1.0] if s.id.endswith(":wrong") else [1.0, 0.0] for s in samples], EncodeStats(kept=len(samples))


def pair(subset, i, wrong=False):
    return Sample(id=f"{subset}-{i}" + (":wrong" if wrong else ""), prompt=[user("p")],
                  chosen=[assistant("c" * (i + 1))], rejected=[assistant("r")], subset=subset)


def test_subset_accuracies_use_wilson_and_sections_keep_the_bootstrap():
    samples = ([pair("mt-bench-easy", i) for i in range(28)]
               + [pair("alpacaeval-easy", i, wrong=i == 0) for i in range(28)])
    res = evaluate_benchmark(Fixed(), "rewardbench", samples, n_boot=200)
    all_right, one_wrong = res.figures["subset:mt-bench-easy"], res.figures["subset:alpacaeval-easy"]
    ci = binomtest(28, 28).proportion_ci(method="wilson")
    assert (all_right.value, all_right.n) == (1.0, 28)
    assert (all_right.ci_low, all_right.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert all_right.ci_low < 1.0  # the bootstrap gave [1, 1]
    assert (round(one_wrong.ci_low, 3), round(one_wrong.ci_high, 3)) == (0.823, 0.994)  # bootstrap: [0.893, 1]
    # Chat weighs 100 (alpacaeval-easy) and 28 (mt-bench-easy): a composite figure, bootstrapped
    chat = res.figures["Chat"]
    assert chat.value == pytest.approx((100 * 27 / 28 + 28) / 128)
    assert chat.ci_high == pytest.approx(1.0) and chat.ci_low > 0.9
    assert res.diagnostics["accuracy"]["ci_low"] == pytest.approx(binomtest(55, 56).proportion_ci(method="wilson").low)
