"""Tests for rmforge.data.validate: every check on crafted samples, silence on clean data, report IO."""

import json
import math

import pytest
from rich.console import Console

from rmforge.data.schema import Sample, Scale, assistant, user
from rmforge.data.validate import CHECKS, ValidationReport, prompt_key, validate_samples
from rmforge.errors import OutputExistsError


def pair(id, prompt, chosen, rejected, **kw):
    return Sample(id=id, prompt=[user(prompt)] if prompt is not None else [], chosen=[assistant(chosen)],
                  rejected=[assistant(rejected)], **kw)


def nway(id, prompt, texts, **kw):
    return Sample(id=id, prompt=[user(prompt)], candidates=[[assistant(t)] for t in texts], **kw)


def point(id, prompt, response, scores, **kw):
    return Sample(id=id, prompt=[user(prompt)], response=[assistant(response)], scores=scores, **kw)


def clean_set():
    return [
        pair("a", "What is 2+2?", "It is 4.", "5", split="train", subset="math", source="s1"),
        pair("b", "Say hi", "Hi there friend", "no", split="test", subset="chat", source="s1", tie=True),
        nway("c", "Pick one", ["first answer", "second", "third one here"], ranks=[1, 2, 2], split="train"),
        point("d", "Rate me", "ok answer", {"helpfulness": 3.0}, scale=Scale(min=0, max=4), split="train"),
    ]


def crafted_set():
    four = Scale(min=0, max=4)
    return [
        pair("dup", "P1", "good", "bad", split="train"),
        pair("dup", "P2", "x", "y", split="train"),                       # duplicate_id
        pair("same", "P3", "same", "same"),                               # chosen_equals_rejected
        pair("empty_resp", "P4", "", "z"),                                # empty_response
        pair("noprompt", None, "a1", "b1"),                               # empty_prompt
        pair("copy", "P1", "good", "bad"),                                # duplicate_sample (of "dup")
        pair("flip", "P1", "bad", "good"),                                # contradictory_label
        pair("t1", "P5", "c5", "d5"),
        pair("tie2", "P5", "d5", "c5", tie=True),                         # contradictory_label (tie vs not)
        pair("leak", "  p1 ", "q", "r", split="test"),                    # prompt_leak ("P1" in train)
        pair("nan", "P6", "e", "f", margin=float("nan")),                 # non_finite
        point("oos", "P7", "g", {"h": 5.0}, scale=four),                  # score_out_of_scale
        point("noscale", "P8", "h", {"h": 1.0}),                          # missing_scale
        point("inf", "P9", "i", {"h": math.inf}, scale=four),             # non_finite (not out of scale)
        nway("ident", "P10", ["s", "s", "t"], ranks=[1, 2, 3]),           # identical_candidates
        nway("ranks0", "P11", ["u", "v"], ranks=[2, 3]),                  # ranks_not_from_1
    ]


EXPECTED = {
    "empty_response": 1, "chosen_equals_rejected": 1, "non_finite": 2, "score_out_of_scale": 1,
    "duplicate_id": 1, "prompt_leak": 1, "contradictory_label": 2, "empty_prompt": 1, "missing_scale": 1,
    "duplicate_sample": 1, "identical_candidates": 1, "ranks_not_from_1": 1,
}


def test_clean_set_has_no_issues_and_exact_stats():
    report = validate_samples(iter(clean_set()))
    assert report.issues == [] and report.ok
    assert report.total == 4
    assert report.counts["kind"] == {"pair": 2, "nway": 1, "pointwise": 1}
    assert report.counts["split"] == {"test": 1, "train": 3}
    assert report.counts["subset"] == {"(none)": 2, "chat": 1, "math": 1}
    assert report.counts["source"] == {"(none)": 2, "s1": 2}
    p = report.lengths["prompt_chars"]
    assert (p.count, p.min, p.max, p.mean) == (4, 6, 12, (12 + 6 + 8 + 7) / 4)
    assert p.p50 == 7.5 and p.p95 == pytest.approx(11.4)
    r = report.lengths["response_words"]
    assert (r.count, r.min, r.max) == (8, 1, 3)
    assert report.pairs.count == 2
    assert report.pairs.chars_diff_mean == ((8 - 1) + (15 - 2)) / 2
    assert report.pairs.words_diff_mean == ((3 - 1) + (3 - 1)) / 2
    assert report.pairs.chosen_longer_share == 1.0


def test_every_check_fires_once_with_exact_counts():
    report = validate_samples(crafted_set())
    assert {i.code: i.count for i in report.issues} == EXPECTED
    assert set(EXPECTED) == set(CHECKS)
    assert not report.ok
    severities = [i.severity for i in report.issues]
    assert severities == sorted(severities, key=lambda s: s != "error")  # errors first
    assert report.issue("duplicate_id").examples == ["dup"]
    assert report.issue("contradictory_label").examples == ["flip", "tie2"]
    assert report.issue("prompt_leak").examples == ["leak"]
    assert report.issue("non_finite").examples == ["nan", "inf"]
    assert report.issue("empty_prompt").severity == "warning"


def test_warnings_only_report_is_ok():
    report = validate_samples([point("w", "P", "r", {"h": 1.0})])
    assert [i.code for i in report.issues] == ["missing_scale"] and report.ok


def test_max_examples_limits_ids_not_counts():
    samples = [pair(f"s{i}", f"P{i}", "same", "same") for i in range(8)]
    issue = validate_samples(samples, max_examples=3).issue("chosen_equals_rejected")
    assert issue.count == 8 and issue.examples == ["s0", "s1", "s2"]


def test_prompt_leak_uses_normalized_prompt_and_ignores_empty_prompts():
    assert prompt_key(pair("x", "  Ｈello\n\tWORLD ", "a", "b")) == "hello world"
    samples = [pair("a", "Hello world", "a", "b", split="train"), pair("b", "hello   WORLD", "c", "d", split="test"),
               pair("c", "HELLO world", "e", "f", split="valid"),  # same prompt: still one leak
               pair("d", None, "g", "h", split="train"), pair("e", None, "i", "j", split="test")]
    assert validate_samples(samples).issue("prompt_leak").count == 1


def test_contradiction_between_pair_and_nway_ranking():
    samples = [pair("p", "Q", "alpha", "beta"), nway("n", "Q", ["alpha", "beta", "gamma"], candidate_scores=[1, 2, 0])]
    issue = validate_samples(samples).issue("contradictory_label")
    assert issue.count == 1 and issue.examples == ["n"]
    agreeing = [pair("p", "Q", "alpha", "beta"), nway("n", "Q", ["beta", "alpha"], ranks=[2, 1])]
    assert validate_samples(agreeing).issues == []


def test_scale_also_applies_to_candidate_scores():
    s = nway("n", "Q", ["a", "b"], candidate_scores=[1.0, 7.0], scale=Scale(min=0, max=5))
    assert [i.code for i in validate_samples([s]).issues] == ["score_out_of_scale"]


def test_json_round_trip_and_overwrite(tmp_path):
    report = validate_samples(crafted_set())
    out = tmp_path / "reports" / "validation.json"
    report.to_json(out)
    data = json.loads(out.read_text())
    assert data["ok"] is False and data["total"] == 16
    assert ValidationReport.from_dict(data) == report
    report.to_json(out)  # reports may be replaced by default
    with pytest.raises(OutputExistsError):
        report.to_json(out, overwrite=False)


def test_empty_input_report():
    report = validate_samples([])
    assert report.total == 0 and report.ok and report.lengths["prompt_chars"].mean is None
    assert report.pairs.chars_diff_mean is None


def test_render_prints_tables():
    console = Console(record=True, width=160)
    validate_samples(crafted_set() + clean_set()).render(console)
    out = console.export_text()
    for word in ("Samples: 20", "Lengths", "response_chars", "Issues", "contradictory_label", "flip, tie2"):
        assert word in out
    console = Console(record=True, width=160)
    validate_samples(clean_set()).render(console)
    assert "no issues found" in console.export_text()


@pytest.mark.parametrize("column, value, arrow_type, message", [
    ("chosen", 7, "int64", r"row 1, field 'chosen': not a canonical rmforge sample: expected a list of messages, got number"),
    ("chosen", "text", "string", r"row 1, field 'chosen': .*expected a list of messages, got string"),
    ("candidates", [1, 2], "list<int64>", r"row 1, field 'candidates': .*expected a list of conversations, got array"),
    ("metadata", "{not json", "string", r"row 1, field 'metadata': .*metadata is not valid JSON"),
    ("metadata", 3, "int64", r"row 1, field 'metadata': .*expected JSON text, got number"),
])
def test_wrong_typed_parquet_column_is_located(tmp_path, column, value, arrow_type, message):
    """A parquet file whose columns have the wrong Arrow types raised TypeError (a traceback) in `validate`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rmforge.data.io import read_samples
    from rmforge.errors import DataError

    conv = [{"role": "assistant", "content": "b"}]
    cols = {"id": ["a"], "chosen": [conv], "rejected": [conv]}
    cols[column] = pa.array([value], type=pa.type_for_alias(arrow_type) if "<" not in arrow_type
                            else pa.list_(pa.int64()))
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table(cols), path)
    with pytest.raises(DataError, match=message):
        list(read_samples(path))
