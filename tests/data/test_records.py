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
