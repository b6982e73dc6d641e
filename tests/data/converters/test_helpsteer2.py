"""HelpSteer2 ratings (pointwise) and HelpSteer2-Preference pairs."""

import pytest

from rmforge.data.converters import split_prompt
from rmforge.data.schema import Message, Scale, assistant, user
from rmforge.errors import DataError

ATTRS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def test_pointwise_single_turn(convert):
    s = convert("helpsteer2-pointwise", "helpsteer2.jsonl")[0]
    assert s.kind == "pointwise" and s.id == "helpsteer2-pointwise-1"
    assert s.prompt == [user("what is a haiku")]
    assert s.response == [assistant("A haiku is a short poem of three lines with 5, 7 and 5 syllables.")]
    assert s.scores == {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 1}
    assert s.scale == Scale(min=0, max=4)


def test_pointwise_multi_turn_prompt(convert):
    s = convert("helpsteer2-pointwise", "helpsteer2.jsonl")[1]
    assert s.prompt == [user("name a colour"), assistant("Blue."), user("another one")]
    assert s.response == [assistant("Green.")]


def test_split_prompt_with_system_header():
    text = "<extra_id_0>System\nBe kind.\n<extra_id_1>User\nhi\n<extra_id_1>Assistant\nhello\n<extra_id_1>User\nbye"
    assert split_prompt(text) == [Message(role="system", content="Be kind."), user("hi"), assistant("hello"),
                                  user("bye")]
    assert split_prompt("line one\nline two") == [user("line one\nline two")]


def test_pointwise_out_of_range_score(tmp_path, convert):
    path = tmp_path / "hs.jsonl"
    path.write_text('{"prompt": "p", "response": "r", "helpfulness": 5, "correctness": 1, "coherence": 1, '
                    '"complexity": 1, "verbosity": 1}\n')
    with pytest.raises(DataError, match=r"line 1, field 'helpfulness': expected a number in \[0, 4\], got 5"):
        convert("helpsteer2-pointwise", path)


def test_pairwise_sign_convention(convert):
    first, second, tie = convert("helpsteer2-pairwise", "helpsteer2_preference.jsonl")
    # preference_strength -2: response_1 is better
    assert first.chosen == [assistant("Ash, after its grey fur.")] and first.rejected == [assistant("Cat.")]
    assert first.margin == 2 and not first.tie and first.split == "train"
    assert first.metadata["preference_strength"] == -2
    assert first.metadata["preference_statement"] == "@Response 1 is better than @Response 2."
    assert first.metadata["chosen_position"] == "A"
    # +3: response_2 is better
    assert second.chosen == [assistant("4")] and second.rejected == [assistant("5")]
    assert second.margin == 3 and second.split == "val" and second.metadata["chosen_position"] == "B"
    # 0: tie, upstream order kept
    assert tie.tie and tie.margin == 0
    assert tie.chosen == [assistant("Hello!")] and tie.rejected == [assistant("Hi!")]
    assert [s.id for s in (first, second, tie)] == [f"helpsteer2-pairwise-{i}" for i in (1, 2, 3)]


def test_pairwise_both_orders(convert):
    samples = convert("helpsteer2-pairwise", "helpsteer2_preference.jsonl", options={"both_orders": True})
    assert [s.id for s in samples[:2]] == ["helpsteer2-pairwise-1", "helpsteer2-pairwise-1-rev"]
    orig, rev = samples[:2]
    assert rev.chosen == orig.chosen and rev.rejected == orig.rejected and rev.margin == orig.margin
    assert rev.metadata["order"] == "reversed" and "order" not in orig.metadata
    assert orig.metadata["response_order"] == ["response_1", "response_2"]
    assert rev.metadata["response_order"] == ["response_2", "response_1"]
    assert (orig.metadata["chosen_position"], rev.metadata["chosen_position"]) == ("A", "B")
    assert len(samples) == 6


def test_pairwise_strength_out_of_range(tmp_path, convert):
    path = tmp_path / "pref.jsonl"
    path.write_text('{"prompt": "p", "response_1": "a", "response_2": "b", "preference_strength": "strong"}\n')
    with pytest.raises(DataError, match="line 1, field 'preference_strength': expected a number, got str 'strong'"):
        convert("helpsteer2-pairwise", path)


@pytest.mark.shared
def test_real_derived_official_layout(shared_data, convert):
    samples = convert("helpsteer2-pointwise", shared_data / "bench/helpsteer2/DERIVED_helpsteer2_official_layout_8rows.jsonl")
    assert len(samples) == 8
    assert all(set(s.scores) == set(ATTRS) and len(s.prompt) == 1 and s.prompt[0].role == "user" for s in samples)
    assert samples[0].prompt == [user("explain master slave replication nsql")]
    assert samples[0].scores == {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 3, "verbosity": 2}
