"""Splitting: sizes, stratification, prompt grouping, existing splits and a golden assignment."""

from collections import Counter

import pytest

from rmforge.config import build_config
from rmforge.data.process import dedup
from rmforge.data.schema import Sample, assistant, user
from rmforge.data.split import SplitConfig, prompt_key, split_samples, stratum_of
from rmforge.errors import ConfigError, DataError


def pair(id, prompt, **kw):
    prompt = [user(prompt)] if prompt else []
    return Sample(id=id, prompt=prompt, chosen=[assistant("a")], rejected=[assistant("b")], **kw)


def ids(result):
    return {name: [s.id for s in group] for name, group in result.items()}


def golden_samples():
    prompts = ["alpha", "Beta", "gamma", "delta", "eps", "zeta"]
    return [pair(f"g{i}", prompts[i % 6] if i < 8 else f"q{i}", subset="xy"[i % 2]) for i in range(12)]


def test_golden_assignment():
    cfg = SplitConfig(validation=0.25, test=0.25, seed=7)
    assert ids(split_samples(golden_samples(), cfg)) == {
        "train": ["g0", "g1", "g4", "g6", "g7", "g8"],
        "validation": ["g2", "g9", "g10"],
        "test": ["g3", "g5", "g11"],
    }
    cfg = SplitConfig(validation=0.25, test=0.25, seed=7, stratify_by="subset")
    assert ids(split_samples(golden_samples(), cfg)) == {
        "train": ["g0", "g1", "g6", "g7", "g8", "g9"],
        "validation": ["g2", "g3", "g10"],
        "test": ["g4", "g5", "g11"],
    }


def test_exact_sizes_determinism_and_seed():
    samples = [pair(f"s{i}", f"prompt {i}") for i in range(100)]
    result = split_samples(samples, SplitConfig(validation=0.1, test=0.15, seed=1))
    assert {k: len(v) for k, v in result.items()} == {"train": 75, "validation": 10, "test": 15}
    assert all(s.split == name for name, group in result.items() for s in group)
    fresh = lambda: [pair(f"s{i}", f"prompt {i}") for i in range(100)]  # noqa: E731
    again = ids(split_samples(fresh(), SplitConfig(validation=0.1, test=0.15, seed=1)))
    other = ids(split_samples(fresh(), SplitConfig(validation=0.1, test=0.15, seed=2)))
    assert again == ids(result) and other != ids(result)
    counts = split_samples([pair(f"s{i}", f"prompt {i}") for i in range(100)], SplitConfig(validation=7, test=3))
    assert {k: len(v) for k, v in counts.items()} == {"train": 90, "validation": 7, "test": 3}
    only_train = split_samples([pair("a", "x"), pair("b", "y")], SplitConfig())
    assert list(only_train) == ["train"] and len(only_train["train"]) == 2


def test_stratified_proportions_per_stratum():
    samples = [pair(f"a{i}", f"a prompt {i}", subset="a") for i in range(40)]
    samples += [pair(f"b{i}", f"b prompt {i}", subset="b") for i in range(20)]
    result = split_samples(samples, SplitConfig(validation=0.25, test=0.1, stratify_by="subset", seed=3))
    per = {name: Counter(s.subset for s in group) for name, group in result.items()}
    assert per == {"train": {"a": 26, "b": 13}, "validation": {"a": 10, "b": 5}, "test": {"a": 4, "b": 2}}


def test_many_small_strata_still_fill_every_split():
    samples = [pair(f"s{i}", f"p{i}", category=f"c{i // 3}") for i in range(30)]  # 10 strata of 3
    result = split_samples(samples, SplitConfig(validation=0.1, test=0.1, stratify_by="category"))
    assert {k: len(v) for k, v in result.items()} == {"train": 24, "validation": 3, "test": 3}
    for name in ("validation", "test"):
        assert len({s.category for s in result[name]}) == 3  # spread over strata, at most one each


def test_no_prompt_in_two_splits():
    samples = [pair(f"s{i}", f"Question {i % 13}{'?' if i % 2 else ''}") for i in range(80)]
    samples += [pair(f"np{i}", "") for i in range(10)]  # prompt-less: each its own group
    result = split_samples(samples, SplitConfig(validation=0.2, test=0.2, seed=11))
    where: dict[str, set] = {}
    for name, group in result.items():
        for s in group:
            if prompt_key(s):
                where.setdefault(prompt_key(s), set()).add(name)
    assert len(where) == 13 and all(len(v) == 1 for v in where.values())
    sizes = {k: len(v) for k, v in result.items()}
    assert set(sizes) == {"train", "validation", "test"} and sum(sizes.values()) == 90
    assert all(abs(sizes[k] - 18) <= 7 for k in ("validation", "test"))  # whole groups of <= 7
    free = split_samples([pair(f"s{i}", "same") for i in range(10)], SplitConfig(test=0.3, group_by_prompt=False))
    assert len(free["test"]) == 3


def test_keep_existing_and_followers():
    samples = [pair("fixed", "shared prompt", split="test"), pair("follower", "Shared   prompt!"),
               pair("dev", "dev prompt", split="dev")] + [pair(f"s{i}", f"p{i}") for i in range(10)]
    result = split_samples(samples, SplitConfig(validation=0.2, seed=0))
    assert [s.id for s in result["test"]] == ["fixed", "follower"]
    assert [s.id for s in result["dev"]] == ["dev"] and list(result)[-1] == "dev"
    assert len(result["validation"]) == 2 and len(result["train"]) == 8
    reset = split_samples(samples, SplitConfig(validation=0.2, keep_existing=False, seed=0))
    assert set(reset) == {"train", "validation"} and sum(map(len, reset.values())) == 13


def test_prompt_key_matches_dedup_normalization():
    a, b = pair("a", "  What IS this?? "), pair("b", "what is\nthis")
    assert prompt_key(a) == prompt_key(b) == "what is this"
    out, _ = dedup([a, b], mode="normalized", by="prompt")
    assert [s.id for s in out] == ["a"]
    assert prompt_key(pair("c", "")) == ""


def test_label_strata():
    point = Sample(id="p", prompt=[user("q")], response=[assistant("r")], scores={"helpfulness": 3.4, "x": 0.0})
    nway = Sample(id="n", candidates=[[assistant("a")], [assistant("b")]], ranks=[1, 2])
    assert [stratum_of(s, "label") for s in (pair("t", "q", tie=True), pair("p", "q"), nway, point)] == [
        "tie", "pair", "nway", "pointwise:3"]
    assert stratum_of(pair("s", "q", source="hh"), "source") == "hh" and stratum_of(pair("s", "q"), "subset") == ""


def test_config_validation():
    with pytest.raises(ConfigError, match="ambiguous"):
        build_config(SplitConfig, {"test": 1.0})
    with pytest.raises(ConfigError, match="add up to 1.2"):
        build_config(SplitConfig, {"test": 0.6, "validation": 0.6})
    with pytest.raises(ConfigError, match="did you mean 'stratify_by'"):
        build_config(SplitConfig, {"stratify": "subset"})
    cfg = build_config(SplitConfig, {"test": 5, "validation": 0.1})
    assert cfg.test == 5 and isinstance(cfg.test, int) and isinstance(cfg.validation, float)
    with pytest.raises(DataError, match="exceed the 3 samples"):
        split_samples([pair(f"s{i}", f"p{i}") for i in range(3)], cfg)
