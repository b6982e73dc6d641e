"""Majority vote, Dawid-Skene and the ordinal aggregators."""

import random

import pytest

from rmforge.annotate.aggregate import dawid_skene, majority_vote, mean_ranks, median_score
from rmforge.errors import ConfigError


def test_majority_vote_and_tie_policy():
    assert majority_vote(["first", "first", "second"]) == "first"
    assert majority_vote(["first", "second"]) == "tie"
    assert majority_vote(["first", "second"], tie_policy="drop") is None
    assert majority_vote([]) is None
    with pytest.raises(ConfigError, match="unknown tie policy 'coin'"):
        majority_vote(["first"], tie_policy="coin")


def test_dawid_skene_learns_an_inverted_annotator():
    rng = random.Random(0)
    flip = {"first": "second", "second": "first"}
    truth = [rng.choice(["first", "second"]) for _ in range(80)]
    items = []
    for t in truth:
        wrong_b = rng.random() < 0.3
        items.append({"good": t, "noisy": flip[t] if wrong_b else t, "inverted": flip[t]})
    posterior, confusion = dawid_skene(items, ["first", "second", "tie"])
    ds = [["first", "second", "tie"][int(p.argmax())] for p in posterior]
    mv = [majority_vote(list(item.values())) for item in items]
    assert ds == truth
    assert sum(m == t for m, t in zip(mv, truth)) < len(truth)  # the inverted annotator fools majority vote
    assert confusion["inverted"][0, 1] > 0.9 and confusion["good"][0, 0] > 0.9


def test_dawid_skene_agrees_with_unanimous_votes():
    items = [{"a": "x", "b": "x"}, {"a": "y", "b": "y"}, {"a": "x", "b": "x"}]
    posterior, _ = dawid_skene(items, ["x", "y"])
    assert [int(p.argmax()) for p in posterior] == [0, 1, 0]
    assert posterior.sum(1) == pytest.approx([1, 1, 1])


def test_ordinal_aggregators():
    assert median_score([1, 4, 2]) == 2.0
    assert mean_ranks([[1, 2, 3], [2, 1, 3]]) == [1, 1, 2]
    assert mean_ranks([[1, 2, 3], [1, 3, 2], [2, 1, 3]]) == [1, 2, 3]
