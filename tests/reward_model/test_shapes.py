"""Static row widths: the fitted widths are optimal and few."""

import itertools
import random

import pytest

from rmforge.reward_model.shapes import geometric_widths, plan_widths, round_up, width_for


def _padding(totals, widths):
    return sum(width_for(t, widths) - t for t in totals)


def _brute(totals, count):
    values = sorted({round_up(t) for t in totals})
    best = None
    for k in range(1, count + 1):
        for lower in itertools.combinations(values[:-1], k - 1):
            widths = sorted(lower) + [values[-1]]
            cost = _padding(totals, widths)
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_plan_widths_is_the_least_padding(seed):
    rng = random.Random(seed)
    totals = [rng.randint(1, 3000) for _ in range(rng.randint(1, 25))]
    widths = plan_widths(totals, 3)
    assert len(widths) <= 3 and widths == sorted(widths)
    assert all(w % 128 == 0 for w in widths) and widths[-1] >= max(totals)
    assert _padding(totals, widths) == _brute(totals, 3)


def test_width_for_and_geometric_golden():
    assert plan_widths([]) == []
    assert plan_widths([100, 130, 5000]) == [128, 256, 5120]
    assert width_for(129, [128, 256]) == 256
    assert width_for(300, [128, 256]) == 512  # above the plan: a multiple of the largest width
    assert width_for(300, []) == 384
    assert geometric_widths(16384, 1024) == [1024, 2048, 4096, 8192, 16384]
    assert geometric_widths(3000, 1024) == [1024, 2048, 3072]
    with pytest.raises(ValueError, match="count must be >= 1"):
        plan_widths([1], 0)
