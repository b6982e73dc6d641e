"""Raw record readers: formats, gzip, and errors that name file and line."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmforge.data.records import iter_file
from rmforge.errors import DataError

ROWS = [{"chosen": "a", "rejected": "b"}, {"chosen": "c", "rejected": "d"}]


def write(path, text: bytes):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(text)
    else:
        path.write_bytes(text)
    return path


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz", "r.json", "r.json.gz", "r.csv", "r.csv.gz", "r.parquet"])
def test_formats(tmp_path, name):
    path = tmp_path / name
    if ".jsonl" in name:
        write(path, "".join(json.dumps(r) + "\n" for r in ROWS).encode())
    elif ".json" in name:
        write(path, json.dumps(ROWS).encode())
    elif ".csv" in name:
        write(path, b"chosen,rejected\na,b\nc,d\n")
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    records = list(iter_file(path))
    assert [r for r, _ in records] == ROWS
    assert [n for _, n in records] == ([2, 3] if ".csv" in name else [1, 2])


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", b'{"a": 1}\n{"a": \n', r"bad.jsonl, line 2: malformed JSON"),
    ("bad.jsonl.gz", b'{"a": 1}\n\n[1, 2]\n', r"bad.jsonl.gz, line 3: expected a JSON object, got array"),
    ("utf.jsonl", b'{"a": 1}\n{"a": "\xff\xfe"}\n', r"utf.jsonl, line 2: invalid UTF-8"),
    ("empty.jsonl", b"", r"empty.jsonl: file is empty"),
    ("blank.jsonl", b"\n  \n", r"blank.jsonl: file is empty"),
    ("empty.json", b"", r"empty.json.*file is empty or not JSON"),
    ("bad.csv", b"a,b\n1,2\n3,4,5\n", r"bad.csv, line 3: row has 3 fields, header has 2"),
    ("utf.csv", b"a,b\n1,2\n\xff,3\n", r"utf.csv, line 3: invalid UTF-8"),
    ("x.txt", b"hello", r"unknown file format 'txt'"),
])
def test_errors_name_file_and_line(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message):
        list(iter_file(path))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        list(iter_file(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz", "r.json", "r.json.gz", "r.csv", "r.tsv.gz"])
def test_utf8_bom_is_accepted(tmp_path, name):
    """Files saved by Windows tools start with a BOM (EF BB BF); it was rejected as malformed JSON / a bad header."""
    if ".jsonl" in name:
        body = "".join(json.dumps(r) + "\n" for r in ROWS)
    elif ".json" in name:
        body = json.dumps(ROWS)
    else:
        sep = "\t" if ".tsv" in name else ","
        body = f"chosen{sep}rejected\na{sep}b\nc{sep}d\n"
    path = write(tmp_path / name, b"\xef\xbb\xbf" + body.encode())
    assert [r for r, _ in iter_file(path)] == ROWS


def test_bom_only_at_the_start(tmp_path):
    path = write(tmp_path / "r.jsonl", b'{"a": 1}\n\xef\xbb\xbf{"a": 2}\n')
    with pytest.raises(DataError, match=r"r.jsonl, line 2: malformed JSON"):
        list(iter_file(path))


@pytest.mark.parametrize("name, content, message", [
    ("deep.jsonl", b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", r"deep.jsonl, line 1: JSON nested too deeply"),
    ("deep.json", b"[" * 5000 + b"]" * 5000, r"deep.json: JSON nested too deeply"),
    ("null.jsonl", b"null\n", r"null.jsonl, line 1: expected a JSON object, got null"),
    ("num.json", b"3.5", r"num.json: expected a JSON array of objects, got number"),
    ("utf.json", b'[{"a": 1},\n {"a": "\xff"}]', r"utf.json, line 2: invalid UTF-8 at byte 8 of the line"),
])
def test_more_errors_name_file_and_line(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        list(iter_file(write(tmp_path / name, content)))


def test_plain_and_truncated_gzip(tmp_path):
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_bytes(b'{"a": 1}\n')
    with pytest.raises(DataError, match=r"plain.jsonl.gz: not a gzip file"):
        list(iter_file(plain))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:40])
    with pytest.raises(DataError, match=r"cut.jsonl.gz: gzip data ends early \(the file is truncated\), after \d+ records"):
        list(iter_file(cut))


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match=r": is a folder, not a file"):
        list(iter_file(tmp_path, "jsonl"))
