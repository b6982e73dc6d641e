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


# ---------------------------------------------------------------- lone surrogates, TRL message keys (issue 16)
BAD = "x\ud800"  # what json.loads makes of the valid JSON string "x\ud800"


@pytest.mark.parametrize("record, field", [
    ({"prompt": [{"role": "user", "content": BAD}]}, "prompt.0.content"),
    ({"chosen": [{"role": "assistant", "content": "a", "reasoning": BAD}]}, "chosen.0.reasoning"),
    ({"id": BAD}, "id"),
    ({"subset": BAD}, "subset"),
    ({"metadata": {"note": ["ok", BAD]}}, "metadata"),
    ({"chosen": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": BAD}}]}]}, "chosen.0.tool_calls"),
])
def test_lone_surrogate_is_a_located_error(tmp_path, record, field):
    import json

    from rmforge.data.schema import first_error

    base = {"id": "s", "prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    with pytest.raises(ValidationError) as exc:
        Sample.from_record(base | record)
    loc, msg = first_error(exc.value)
    assert (loc, msg) == (field, "lone surrogate \\ud800 at character 1 (not valid Unicode text; "
                                 "send UTF-8 or a valid \\uXXXX pair)")
    path = tmp_path / "bad.jsonl"  # as read from a file: the escaped form is valid JSON
    path.write_text(json.dumps(base) + "\n" + json.dumps(base | record) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"line 2.*{field}.*lone surrogate \\ud800"):
        load_samples(path)


def test_valid_surrogate_pair_text_is_accepted():
    import json

    assert Message(**json.loads('{"role": "user", "content": "\\ud83d\\ude00"}')).content == "\U0001F600"


def test_trl_parse_response_keys_round_trip(tmp_path):
    """TRL's parse_response gives reasoning_content and tool_calls; tool messages carry a name."""
    call = [{"type": "function", "function": {"name": "multiply", "arguments": {"a": 3, "b": 4}}}]
    msg = Message(**{"role": "assistant", "content": "", "reasoning_content": "3*4", "tool_calls": call})
    assert msg.reasoning == "3*4" and msg.tool_calls == call and not msg.is_empty
    assert Message(role="assistant", content=None, tool_calls=call).content == ""
    assert Message(role="assistant", content="", thinking="t").reasoning == "t"
    assert Message(role="assistant", content=" ").is_empty
    with pytest.raises(ValidationError, match="'reasoning_content' and 'reasoning' differ"):
        Message(role="assistant", content="x", reasoning="a", reasoning_content="b")
    with pytest.raises(ValidationError):  # content null is only allowed beside tool calls
        Message(role="assistant", content=None)
    s = Sample(id="t", prompt=[user("3*4?")], response=[msg, Message(role="tool", name="multiply", content="12"),
                                                         assistant("12")], scores={"ok": 1.0})
    for name in ("t.jsonl", "t.parquet"):
        write_samples(tmp_path / name, [s])
        assert load_samples(tmp_path / name) == [s]
