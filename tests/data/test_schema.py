"""Canonical samples: kind rules and lossless jsonl/parquet round trips."""

import pytest
from pydantic import ValidationError

from rmforge.data.io import load_samples, write_samples
from rmforge.data.schema import Message, Sample, assistant, user
from rmforge.errors import DataError, OutputExistsError


def every_kind():
    return [
        Sample(id="p1", prompt=[Message(role="system", content="be brief"), user("hi"), assistant("hello"), user("2+2?")],
               chosen=[assistant("4", reasoning="2+2=4")], rejected=[assistant("5")], margin=2.0, source="s",
               subset="math", category="arith", split="train", metadata={"k": [1, {"x": None}], "f": 0.5}),
        Sample(id="p2", prompt=[user("tie?")], chosen=[assistant("a")], rejected=[assistant("b")], tie=True),
        Sample(id="n1", prompt=[user("q")], candidates=[[assistant("a")], [assistant("b")], [assistant("c")]],
               ranks=[1, 2, 2], candidate_scores=[0.9, 0.1, 0.0], candidate_labels=["chosen", "rejected", "rejected"]),
        Sample(id="w1", prompt=[user("q")], response=[assistant("r")], scale={"min": 0, "max": 4},
               scores={"helpfulness": 3.0, "verbosity": 1.0}),
        Sample(id="e1", chosen=[assistant("")], rejected=[assistant("x")]),
    ]


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz", "s.parquet"])
def test_round_trip_is_lossless(tmp_path, name):
    samples = every_kind()
    assert write_samples(tmp_path / name, samples) == len(samples)
    assert load_samples(tmp_path / name) == samples


def test_kinds():
    assert [s.kind for s in every_kind()] == ["pair", "pair", "nway", "pointwise", "pair"]


@pytest.mark.parametrize("fields, message", [
    ({"chosen": [{"role": "assistant", "content": "a"}]}, "needs both 'chosen' and 'rejected'"),
    ({}, "exactly one of"),
    ({"candidates": [[{"role": "assistant", "content": "a"}]] * 2, "ranks": [1]}, "'ranks' has 1 entries for 2"),
    ({"response": [{"role": "assistant", "content": "a"}]}, "needs 'scores'"),
    ({"chosen": [], "rejected": [], "margin": -1}, "'margin' must be >= 0"),
])
def test_invalid_samples(fields, message):
    with pytest.raises(ValidationError, match=message):
        Sample(id="x", **fields)


def test_bad_role_rejected():
    with pytest.raises(ValidationError, match="role"):
        Message(role="human", content="x")


def test_reading_a_non_canonical_file_names_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "chosen": [{"role": "assistant", "content": "x"}], "rejected": []}\n'
                    '{"id": "b", "chosen": [{"role": "bot", "content": "x"}], "rejected": []}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, field 'chosen.0.role'"):
        load_samples(path)


def test_no_silent_overwrite(tmp_path):
    path = tmp_path / "s.jsonl"
    write_samples(path, every_kind())
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_samples(path, every_kind())
    write_samples(path, every_kind()[:1], overwrite=True)
    assert len(load_samples(path)) == 1


def test_failed_write_leaves_no_file(tmp_path):
    def boom():
        yield every_kind()[0]
        raise RuntimeError("midway")

    for name in ("a.jsonl", "a.parquet"):
        with pytest.raises(RuntimeError):
            write_samples(tmp_path / name, boom())
        assert list(tmp_path.iterdir()) == []
