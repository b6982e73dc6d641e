"""UltraFeedback binarized -> pairs (shared prefix becomes the prompt, margins, ties)."""

import pytest

from rmforge.data.schema import assistant, user
from rmforge.errors import DataError

UF_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_single_turn_margin(convert):
    s = convert("ultrafeedback", "ultrafeedback.jsonl")[0]
    assert s.id == f"ultrafeedback-{UF_ID}"
    assert s.prompt == [user("Give me a synonym for happy.")]
    assert s.chosen == [assistant("Joyful.")] and s.rejected == [assistant("Sad.")]
    assert s.margin == 6.5 and not s.tie
    assert s.metadata == {"score_chosen": 9.0, "score_rejected": 2.5}


def test_equal_scores_are_a_tie(convert):
    s = convert("ultrafeedback", "ultrafeedback.jsonl")[1]
    assert s.tie and s.margin == 0


def test_multi_turn_shared_prefix(convert):
    s = convert("ultrafeedback", "ultrafeedback.jsonl")[2]
    assert s.prompt == [user("Pick a fruit."), assistant("Apple."), user("Why?")]
    assert s.chosen == [assistant("It keeps well.")] and s.rejected == [assistant("No reason.")]
    assert s.margin == 5


def test_inverted_scores_keep_no_margin(tmp_path, convert):
    path = tmp_path / "uf.jsonl"
    path.write_text('{"prompt": "q", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", '
                    '"content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", '
                    '"content": "b"}], "score_chosen": 1, "score_rejected": 4}\n')
    s = convert("ultrafeedback", path)[0]
    assert s.margin is None and s.metadata["scores_inverted"] and s.id == "ultrafeedback-1"


def test_chosen_must_be_a_message_list(tmp_path, convert):
    path = tmp_path / "uf.jsonl"
    path.write_text('{"prompt": "q", "chosen": 5, "rejected": "b"}\n')
    with pytest.raises(DataError, match="line 1, field 'chosen': expected a string or a list of messages, got int"):
        convert("ultrafeedback", path)
