"""Registry contract, located errors for missing/mistyped fields, and jsonl/parquet round trips."""

import json

import pytest

from rmforge.data.io import read_samples, write_samples
from rmforge.data.records import iter_file
from rmforge.data.registry import convert_records, get_converter
from rmforge.errors import DataError

NAMES = {"hh-rlhf": "pair", "helpsteer2-pointwise": "pointwise", "helpsteer2-pairwise": "pair",
         "ultrafeedback": "pair", "rewardbench": "pair", "rewardbench2": "nway", "rm-bench": "nway",
         "judgebench": "pair", "preference": "pair", "pointwise": "pointwise"}


@pytest.mark.parametrize("name, kind", NAMES.items())
def test_registered(name, kind):
    conv = get_converter(name)
    assert conv.kind == kind and conv.description


def _write(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


GOOD_RB = {"prompt": "p", "chosen": "a", "rejected": "b", "subset": "s", "id": 1}


def test_missing_field_names_file_line_and_field(tmp_path):
    bad = dict(GOOD_RB)
    del bad["rejected"]
    path = _write(tmp_path / "rb.jsonl", GOOD_RB, bad)
    with pytest.raises(DataError) as exc:
        list(convert_records(iter_file(path), "rewardbench", file=str(path)))
    assert str(exc.value) == f"{path}, line 2, field 'rejected': missing required field"
    assert (exc.value.file, exc.value.line, exc.value.field) == (str(path), 2, "rejected")


def test_mistyped_field_names_file_line_and_field(tmp_path):
    path = _write(tmp_path / "rb.jsonl", GOOD_RB, GOOD_RB, GOOD_RB | {"prompt": 42})
    with pytest.raises(DataError) as exc:
        list(convert_records(iter_file(path), "rewardbench", file=str(path)))
    assert str(exc.value) == f"{path}, line 3, field 'prompt': expected a string, got int"


def test_mistyped_message_list(tmp_path):
    path = _write(tmp_path / "p.jsonl", {"chosen": [{"role": "narrator", "content": "x"}], "rejected": "y"})
    with pytest.raises(DataError, match="line 1, field 'chosen': unknown message role 'narrator'"):
        list(convert_records(iter_file(path), "preference", file=str(path)))


@pytest.mark.parametrize("name, fixture, kind", [
    ("hh-rlhf", "hh_rlhf.jsonl", "pair"),
    ("helpsteer2-pairwise", "helpsteer2_preference.jsonl", "pair"),
    ("rm-bench", "rm_bench.json", "nway"),
    ("helpsteer2-pointwise", "helpsteer2.jsonl", "pointwise"),
    ("judgebench", "judgebench.jsonl", "pair"),
])
@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_round_trip(tmp_path, convert, name, fixture, kind, ext):
    samples = convert(name, fixture, options={"domain": "chat"} if name == "rm-bench" else None)
    assert {s.kind for s in samples} == {kind}
    out = tmp_path / f"out.{ext}"
    assert write_samples(out, samples) == len(samples)
    assert list(read_samples(out)) == samples
