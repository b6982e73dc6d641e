"""Judge data loading: every exported layout, canonical samples in both orders, wrong-kind errors."""

import json

import pytest

from rmforge.data.export import export_samples
from rmforge.data.io import write_samples
from rmforge.data.schema import Sample, Scale
from rmforge.errors import DataError
from rmforge.judge.data import load_judge_data, load_sft_messages

PAIRS = [Sample(id=f"p{i}", prompt=[{"role": "user", "content": f"q{i}"}], chosen=[{"role": "assistant", "content": "good"}],
                rejected=[{"role": "assistant", "content": "bad"}], tie=i == 2) for i in range(4)]
POINTS = [Sample(id=f"s{i}", prompt=[{"role": "user", "content": "q"}], response=[{"role": "assistant", "content": "r"}],
                 scores={"helpfulness": float(i)}, scale=Scale(min=0, max=4)) for i in range(3)]


def test_pairwise_export_both_orders(tmp_path):
    export_samples(PAIRS, "pairwise", tmp_path / "p.jsonl", options={"both_orders": True})
    ex = load_judge_data(str(tmp_path / "p.jsonl"), "pairwise")
    assert len(ex) == 8 and {e.pair_id for e in ex} == {"p0", "p1", "p2", "p3"}
    assert all(e.truth == ("tie" if e.pair_id == "p2" else e.position) for e in ex)


def test_limit_keeps_whole_comparisons(tmp_path):
    pairs = [PAIRS[0].model_copy(update={"id": f"p{i}"}) for i in range(20)]
    export_samples(pairs, "pairwise", tmp_path / "p.jsonl", options={"both_orders": True})
    ex = load_judge_data(str(tmp_path / "p.jsonl"), "pairwise", limit=10, seed=3)
    assert len(ex) == 10 and all(sorted(e.position for e in ex if e.pair_id == p) == ["A", "B"]
                                 for p in {e.pair_id for e in ex})
    assert [e.id for e in ex] != [e.id for e in load_judge_data(str(tmp_path / "p.jsonl"), "pairwise", limit=10)]
    assert len(load_judge_data(str(tmp_path / "p.jsonl"), "pairwise", limit=7)) == 7  # last pair cut to fit


def test_pointwise_export_scale_from_prompt_or_option(tmp_path):
    export_samples(POINTS, "pointwise", tmp_path / "s.parquet")
    ex = load_judge_data(str(tmp_path / "s.parquet"), "pointwise")
    assert [(e.truth, e.scale_min, e.scale_max) for e in ex] == [("0.0", 0, 4), ("1.0", 0, 4), ("2.0", 0, 4)]
    assert load_judge_data(str(tmp_path / "s.parquet"), "pointwise", scale=(1, 10))[0].scale_max == 10


def test_verl_export_and_canonical_agree(tmp_path):
    export_samples(POINTS, "verl", tmp_path / "v.parquet")
    write_samples(tmp_path / "c.jsonl", POINTS)
    v = load_judge_data(str(tmp_path / "v.parquet"), "pointwise")
    c = load_judge_data(str(tmp_path / "c.jsonl"), "pointwise")
    assert [e.prompt for e in v] == [e.prompt for e in c]
    assert [float(e.truth) for e in v] == [float(e.truth) for e in c]
    write_samples(tmp_path / "pairs.jsonl", PAIRS)
    ex = load_judge_data(str(tmp_path / "pairs.jsonl"), "pairwise", template="pairwise-think")
    assert len(ex) == 8 and "<think>" in ex[0].prompt[0]["content"]


def test_wrong_kind_for_mode_names_file_and_row(tmp_path):
    export_samples(PAIRS, "pairwise", tmp_path / "p.jsonl")
    with pytest.raises(DataError, match=r"p.jsonl, line 1: holds pairwise judge rows, but mode=pointwise"):
        load_judge_data(str(tmp_path / "p.jsonl"), "pointwise")
    write_samples(tmp_path / "c.jsonl", PAIRS)
    with pytest.raises(DataError, match=r"c.jsonl, line 1: sample 'p0' is a pair sample; mode=pointwise"):
        load_judge_data(str(tmp_path / "c.jsonl"), "pointwise")
    export_samples(PAIRS, "sft", tmp_path / "sft.jsonl")
    with pytest.raises(DataError, match="SFT 'messages' rows, not judge data"):
        load_judge_data(str(tmp_path / "sft.jsonl"), "pairwise")


def test_bad_rows(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"input": [{"role": "user", "content": "x"}], "output": "<preference>A</preference>",
            "metadata": {"id": "a", "chosen_position": "A"}}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "output": "A wins"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, field 'output': .* is not a <preference>"):
        load_judge_data(str(path), "pairwise")
    path.write_text(json.dumps({"id": "x", "input": [{"role": "user", "content": "rate it"}], "output": "<score>1</score>",
                                "label": 1.0}) + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'input': pointwise row without a scale"):
        load_judge_data(str(path), "pointwise")


def test_sft_messages_from_judge_rows_and_sft_rows(tmp_path):
    export_samples(PAIRS, "pairwise", tmp_path / "p.jsonl")
    export_samples(PAIRS, "sft", tmp_path / "s.jsonl")
    conv = load_sft_messages(str(tmp_path / "p.jsonl"))
    assert conv[0][-1]["role"] == "assistant" and conv[0][-1]["content"].startswith("<preference>")
    assert load_sft_messages(str(tmp_path / "s.jsonl"))[0] == [{"role": "user", "content": "q0"},
                                                               {"role": "assistant", "content": "good"}]
    assert len(load_sft_messages(str(tmp_path / "p.jsonl"), limit=2)) == 2
