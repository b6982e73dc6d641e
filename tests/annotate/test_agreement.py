"""Agreement statistics against textbook values."""

import math

import numpy as np
import pytest

from rmforge.annotate.agreement import (agreement_report, cohen_kappa, fleiss_kappa, krippendorff_alpha,
                                        percent_agreement, position_bias, unit_agreement)
from rmforge.data.schema import Sample, assistant, user

# Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
FLEISS_TABLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, missing values
KRIPP = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
         [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]


def test_fleiss_kappa_textbook_example():
    assert fleiss_kappa(np.array(FLEISS_TABLE)) == pytest.approx(0.20993, abs=1e-4)


def test_fleiss_kappa_perfect_and_variable_raters():
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    # rows with fewer than two ratings are ignored
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [1, 0]])) == pytest.approx(1.0)
    # every rater split the same way on every item: observed agreement 1/3 of pairs -> kappa -1/3 (n=4, 2+2)
    assert fleiss_kappa(np.array([[2, 2], [2, 2]])) == pytest.approx(-1 / 3)


def test_cohen_kappa_textbook_2x2():
    # Wikipedia: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["x", "x"], ["x", "x"]) == 1.0  # one category, full agreement
    assert math.isnan(cohen_kappa(["x"], ["y"]))  # too few items


def _units(matrix):
    return {j: {f"o{i}": row[j] for i, row in enumerate(matrix) if row[j] is not None} for j in range(len(matrix[0]))}


@pytest.mark.parametrize("level,expected", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_textbook(level, expected):
    codes = {v: float(v) for v in range(1, 6)} if level == "nominal" else None
    assert krippendorff_alpha(_units(KRIPP), level, codes) == pytest.approx(expected, abs=5e-4)


def test_percent_agreement_pools_pairs():
    units = {"u1": {"a": "x", "b": "x", "c": "y"}, "u2": {"a": "x", "b": "x"}, "u3": {"a": "y"}}
    # u1: 2 agreeing ordered pairs of 6, u2: 2 of 2 -> 4 / 8
    assert percent_agreement(units) == pytest.approx(0.5)
    assert unit_agreement(["x", "x", "y"]) == pytest.approx(1 / 3)
    assert math.isnan(unit_agreement(["x"]))


def test_position_bias_binomial():
    bias = position_bias({"ann": ["A"] * 9 + ["B"] + ["Tie"] * 2})
    assert bias["ann"] == {"a": 9, "b": 1, "tie": 2, "a_share": 0.9, "p_value": pytest.approx(22 / 1024, abs=1e-6)}


def _pair(i, labels):
    anns = [{"annotator": who, "label": lab, "position": pos} for who, (lab, pos) in labels.items()]
    return Sample(id=f"p{i}", prompt=[user("q")], chosen=[assistant("a")], rejected=[assistant("b")],
                  metadata={"annotations": anns})


def test_report_pairwise_lists_low_agreement_items():
    samples = [_pair(0, {"u1": ("first", "A"), "u2": ("first", "B")}),
               _pair(1, {"u1": ("second", "A"), "u2": ("first", "A")}),
               _pair(2, {"u1": ("tie", "Tie"), "u2": ("tie", "Tie")}),
               Sample(id="bare", chosen=[assistant("a")], rejected=[assistant("b")])]
    report = agreement_report(samples)
    m = report["measures"]["preference"]
    assert report["kind"] == "pairwise" and report["samples_without_annotations"] == 1
    assert m["units"] == 3 and m["percent_agreement"] == pytest.approx(2 / 3)
    assert m["cohen"][0]["annotators"] == ["u1", "u2"] and m["cohen"][0]["n"] == 3
    assert report["low_agreement"] == [{"id": "p1", "agreement": 0.0}]
    assert report["position_bias"]["u1"]["a"] == 2 and report["position_bias"]["u2"]["b"] == 1


def test_report_pointwise_and_ranking_are_ordinal():
    def point(i, scores):
        return Sample(id=f"s{i}", response=[assistant("r")], scores={"h": 1},
                      metadata={"annotations": [{"annotator": w, "scores": {"h": v}} for w, v in scores.items()]})

    report = agreement_report([point(0, {"a": 1, "b": 1}), point(1, {"a": 3, "b": 4}), point(2, {"a": 4, "b": 4})])
    h = report["measures"]["h"]
    assert report["kind"] == "pointwise" and h["level"] == "ordinal"
    assert h["percent_agreement"] == pytest.approx(2 / 3) and h["krippendorff_alpha_interval"] > 0.8
    ranks = Sample(id="r0", candidates=[[assistant("x")], [assistant("y")]], ranks=[1, 2],
                   metadata={"annotations": [{"annotator": "a", "ranks": [1, 2]}, {"annotator": "b", "ranks": [2, 1]}]})
    report = agreement_report([ranks])
    assert report["kind"] == "ranking" and report["measures"]["rank"]["units"] == 2
    assert report["low_agreement"] == [{"id": "r0", "agreement": 0.0}]
