"""Judge answer parsers: tags, think sections, several tags, out-of-range, unicode digits, failures."""

import pytest

from rmforge.judge.parse import FAILURES, parse_preference, parse_score, parse_verdict, split_think


@pytest.mark.parametrize("text, value", [
    ("<score>3</score>", 3.0),
    ("The answer is fine. <score> 2 </score> Done.", 2.0),
    ("<SCORE>**4**</SCORE>", 4.0),
    ("< score >1.</ score >", 1.0),
    ("<score>2.5</score>", 2.5),
    ("<score>３</score>", 3.0),                       # full-width digit (NFKC)
    ("<score>٣</score>", 3.0),                        # Arabic-Indic digit
    ("Format: <score>N</score>. <score>1</score>", 1.0),  # restated format, last tag counts
    ("<think>maybe <score>4</score>?</think><score>0</score>", 0.0),  # tags inside think are ignored
    ("partial thought</think> <score>2</score>", 2.0),  # thinking opened by the prompt (Qwen3)
])
def test_score_ok(text, value):
    v = parse_score(text, 0, 4)
    assert v.ok and v.value == value


@pytest.mark.parametrize("text, status", [
    ("", "empty"), (None, "empty"), ("   ", "empty"),
    ("I would give it a 3.", "missing_tag"),
    ("<score>3", "missing_tag"),
    ("<score>three</score>", "not_a_number"),
    ("<score>3/4</score>", "not_a_number"),
    ("<score></score>", "not_a_number"),
    ("<score>5</score>", "out_of_range"),
    ("<score>-1</score>", "out_of_range"),
    ("<think>let me think about <score>3</score>", "unclosed_think"),
])
def test_score_failures(text, status):
    v = parse_score(text, 0, 4)
    assert v.status == status and not v.ok and status in FAILURES


def test_out_of_range_keeps_value_and_think_text():
    assert parse_score("<score>7</score>", 0, 4).value == 7.0
    assert parse_score("<think> because X </think><score>1</score>", 0, 4).think == "because X"


@pytest.mark.parametrize("text, verdict", [
    ("<preference>A</preference>", "A"), ("<preference> b </preference>", "B"),
    ("<preference>Response A</preference>", "A"), ("<preference>**B**.</preference>", "B"),
    ("<preference>Tie</preference>", "tie"), ("<preference>tie</preference>", "tie"),
    ("<think>A looks good</think>\n<preference>B</preference>", "B"),
    ("<preference>A</preference> wait, <preference>B</preference>", "B"),
])
def test_preference_ok(text, verdict):
    v = parse_preference(text)
    assert v.ok and v.value == verdict


@pytest.mark.parametrize("text, status", [
    ("A is better", "missing_tag"), ("<preference>C</preference>", "invalid_verdict"),
    ("<preference>A and B</preference>", "invalid_verdict"), ("<think>hmm", "unclosed_think"), ("", "empty"),
])
def test_preference_failures(text, status):
    assert parse_preference(text).status == status


def test_split_think_and_dispatch():
    assert split_think("no think") == (None, "no think", "ok")
    assert split_think("<think>a</think><think>b</think>x")[1] == "x"
    assert parse_verdict("<score>2</score>", "pointwise", 0, 4).value == 2.0
    with pytest.raises(ValueError, match="scale"):
        parse_verdict("<score>2</score>", "pointwise")
    with pytest.raises(ValueError, match="mode"):
        parse_verdict("x", "listwise")
