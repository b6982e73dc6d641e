"""hh-rlhf transcripts -> pairs: parsing, prompt/response split, prefix mismatches, real files."""

import pytest

from rmforge.data.converters import hh_rlhf_mismatch_count, parse_transcript
from rmforge.data.schema import Message, assistant, user
from rmforge.errors import DataError, FieldError


def test_single_turn(convert):
    s = convert("hh-rlhf", "hh_rlhf.jsonl")[0]
    assert s.id == "hh-rlhf-1" and s.source == "hh-rlhf" and s.kind == "pair"
    assert s.prompt == [user("How do I keep basil alive indoors?")]
    assert s.chosen == [assistant("Give it a sunny window and water when the soil feels dry.")]
    assert s.rejected == [assistant("Basil is a plant.")]
    assert s.metadata == {} and s.margin is None and not s.tie


def test_multi_turn_prompt_is_the_shared_context(convert):
    s = convert("hh-rlhf", "hh_rlhf.jsonl")[1]
    assert s.prompt == [user("Can you name a prime number?"), assistant("Seven is prime."),
                        user("And a bigger one?")]
    assert s.chosen == [assistant("Thirteen is a bigger prime.")]
    assert s.rejected == [assistant("Twelve.")]
    assert "prefix_mismatch" not in s.metadata


def test_prefix_mismatch_uses_chosen_context_and_is_flagged(convert):
    samples = convert("hh-rlhf", "hh_rlhf.jsonl")
    s = samples[2]
    assert s.prompt == [user("Tell me a fact."), assistant("Honey does not spoil easily."), user("Another one?")]
    assert s.chosen == [assistant("Octopuses have three hearts.")]
    assert s.rejected == [assistant("I would rather not.")]
    assert s.metadata == {"prefix_mismatch": True}
    assert hh_rlhf_mismatch_count(samples) == 1


def test_human_marker_mid_line_does_not_split(convert):
    s = convert("hh-rlhf", "hh_rlhf.jsonl")[3]
    assert s.chosen == [assistant("Human: Who goes there? Guard: A friend.")]
    assert s.rejected == [assistant("No.")]  # surrounding whitespace is stripped


def test_missing_leading_newlines_and_empty_final_reply(convert):
    s = convert("hh-rlhf", "hh_rlhf.jsonl")[4]
    assert s.prompt == [user("Say something kind.")]
    assert s.chosen == [assistant("You are doing well.")]
    assert s.rejected == [Message(role="assistant", content="")]  # kept: validation reports it
    assert "prefix_mismatch" not in s.metadata


@pytest.mark.parametrize("transcript, reason", [
    ("\n\nHuman: hello", "does not end with an '\\n\\nAssistant:' turn"),
    ("\n\nAssistant: hello", "has no '\\n\\nHuman:' turn"),
    ("just text", "has no '\\n\\nHuman:' turn"),
    ("preamble\n\nHuman: hi\n\nAssistant: yo", "text before the first"),
])
def test_malformed_transcripts(transcript, reason):
    with pytest.raises(FieldError) as exc:
        parse_transcript(transcript, "chosen")
    assert exc.value.field == "chosen" and reason in exc.value.reason


def test_bad_transcript_is_located(tmp_path, convert):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\\n\\nHuman: a\\n\\nAssistant: c"}\n'
                    '{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\\n\\nHuman: a"}\n')
    with pytest.raises(DataError) as exc:
        convert("hh-rlhf", path)
    assert str(exc.value).startswith(f"{path}, line 2, field 'rejected': transcript does not end with")


@pytest.mark.shared
@pytest.mark.parametrize("name, rows, mismatches, repeated_role, inline_human, empty_reply", [
    ("hh-rlhf-harmless-base.dev.jsonl.gz", 1800, 5, 4, 32, 4),
    ("hh-rlhf-harmless-base.eval.jsonl.gz", 512, 0, 0, 15, 0),
])
def test_real_files(shared_data, convert, name, rows, mismatches, repeated_role, inline_human, empty_reply):
    samples = convert("hh-rlhf", shared_data / name)
    assert len(samples) == rows
    assert len({s.id for s in samples}) == rows
    assert all(s.prompt for s in samples)
    assert all(s.chosen != s.rejected for s in samples)  # no identical final replies in these files
    assert hh_rlhf_mismatch_count(samples) == mismatches
    # the dev mismatches are upstream quirks: one transcript has two consecutive Assistant turns
    # (the first often containing "  Human: ..." mid-line), so its context is one turn longer
    assert all(s.prompt[-1].role == "user" for s in samples if not s.metadata.get("prefix_mismatch"))
    # upstream prompts with two Assistant turns in a row are kept as they are
    assert sum(any(a.role == b.role for a, b in zip(s.prompt, s.prompt[1:])) for s in samples) == repeated_role
    # "Human:" inside a turn (e.g. "Assistant: Human: ...") stays text
    assert sum(any("Human:" in m.content for m in s.prompt + s.chosen + s.rejected) for s in samples) == inline_human
    assert sum(not s.chosen[0].content or not s.rejected[0].content for s in samples) == empty_reply
