"""Generic ``preference`` and ``pointwise`` converters: text or messages, field mapping, CSV cells."""

import pytest

from rmforge.data.schema import Message, Scale, assistant, user
from rmforge.errors import DataError


def test_preference_text(convert):
    a, b = convert("preference", "preference.jsonl")
    assert a.id == "preference-p-1" and a.subset == "style" and a.split == "train" and a.margin == 1.5
    assert a.prompt == [user("Describe rain in three words.")]
    assert a.chosen == [assistant("Wet, grey, soothing.")] and a.rejected == [assistant("It is rain.")]
    assert b.id == "preference-2" and b.prompt == [] and b.margin is None


def test_preference_conversational_implicit_and_explicit_prompt(convert):
    implicit, explicit = convert("preference", "preference_conversational.jsonl")
    assert implicit.prompt == [Message(role="system", content="Be brief."), user("Capital of Peru?")]
    assert implicit.chosen == [assistant("Lima.")] and implicit.rejected == [assistant("Cusco.")]
    assert explicit.prompt == [user("Say yes.")]
    assert explicit.chosen == [assistant("Yes.", reasoning="The user asked for yes.")]


def test_preference_repeated_explicit_prompt_is_stripped(tmp_path, convert):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "hi", "chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", '
                    '"content": "hello"}], "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", '
                    '"content": "go away"}]}\n')
    s = convert("preference", path)[0]
    assert s.prompt == [user("hi")] and s.chosen == [assistant("hello")]


def test_preference_csv_with_field_mapping(convert):
    fields = {"prompt": "question", "chosen": "response_a", "rejected": "response_b"}
    a, b = convert("preference", "preference.csv", fields=fields, source="mine")
    assert a.id == "mine-2" and a.source == "mine"  # csv rows are numbered by line (header is line 1)
    assert a.prompt == [user("Pick a number.")] and a.chosen == [assistant("Seven")]
    assert a.margin == 2 and not a.tie
    assert b.margin is None and b.tie


def test_preference_mapped_field_missing_names_the_column(tmp_path, convert):
    path = tmp_path / "p.jsonl"
    path.write_text('{"response_a": "x"}\n')
    with pytest.raises(DataError) as exc:
        convert("preference", path, fields={"chosen": "response_a", "rejected": "response_b"})
    assert str(exc.value) == f"{path}, line 1, field 'response_b': missing required field"


def test_preference_negative_margin(tmp_path, convert):
    path = tmp_path / "p.jsonl"
    path.write_text('{"chosen": "a", "rejected": "b", "margin": -1}\n')
    with pytest.raises(DataError, match="field 'margin': expected a number >= 0, got -1"):
        convert("preference", path)


def test_pointwise_single_score(convert):
    a, b = convert("pointwise", "pointwise.jsonl", options={"scale": [0, 1]})
    assert a.kind == "pointwise" and a.scores == {"score": 0.9} and a.scale == Scale(min=0, max=1)
    assert a.prompt == [user("Spell 'cat'.")] and a.response == [assistant("c-a-t")]
    assert b.id == "pointwise-22" and b.category == "spelling"


def test_pointwise_named_attributes_from_csv(convert):
    a, b = convert("pointwise", "pointwise_attributes.csv", options={"attributes": ["accuracy", "style"], "scale": [1, 5]})
    assert a.scores == {"accuracy": 5, "style": 3} and b.scores == {"accuracy": 1, "style": 4}
    assert a.scale == Scale(min=1, max=5)
    # the CLI passes --option attributes=accuracy,style --option scale=1,5 as strings
    c, _ = convert("pointwise", "pointwise_attributes.csv", options={"attributes": "accuracy,style", "scale": "1,5"})
    assert c == a


def test_pointwise_score_outside_scale(convert):
    with pytest.raises(DataError, match=r"line 1, field 'score': expected a number in \[0, 0.5\], got 0.9"):
        convert("pointwise", "pointwise.jsonl", options={"scale": [0, 0.5]})
