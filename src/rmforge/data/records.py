"""Raw record readers for local files: jsonl, json, parquet, csv (optionally gzip-compressed).

Each reader yields ``(record, row_number)`` one at a time (parquet and csv in Arrow batches),
so memory does not grow with the file. Errors name the file, line/row and what is wrong.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import zlib
from typing import IO, Any, Iterator

from rmforge.errors import DataError
from rmforge.fileio import file_format, open_binary, strip_compression

Record = dict[str, Any]
FILE_FORMATS = ("jsonl", "json", "parquet", "csv")


def iter_file(path: str | os.PathLike, fmt: str | None = None, batch_size: int = 4096) -> Iterator[tuple[Record, int]]:
    """Yield ``(record, row_number)`` from a local file; row numbers are 1-based lines for jsonl/csv."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError("file not found", file=path)
    if os.path.isdir(path):
        raise DataError("is a folder, not a file", file=path)
    fmt = fmt or file_format(path)
    readers = {"jsonl": _iter_jsonl, "json": _iter_json, "parquet": _iter_parquet, "csv": _iter_csv}
    if fmt not in readers:
        raise DataError(f"unknown file format '{fmt}' (expected one of {', '.join(FILE_FORMATS)})", file=path)
    n = 0
    records = readers[fmt](path, batch_size)
    while True:
        try:
            item = next(records)
        except StopIteration:
            break
        except gzip.BadGzipFile:
            raise DataError("not a gzip file (the name ends in .gz but the content is not gzip-compressed: "
                            "rename or compress it)", file=path) from None
        except (EOFError, zlib.error) as exc:
            what = "gzip data ends early (the file is truncated)" if isinstance(exc, EOFError) \
                else f"corrupt gzip data ({exc})"
            raise DataError(f"{what}, after {n} records", file=path) from None
        n += 1
        yield item
    if n == 0:
        raise DataError("file is empty (no records)", file=path)


def json_type(value: Any) -> str:
    """JSON's name for the type of a parsed value (object, array, string, number, boolean, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


_TOO_DEEP = "JSON nested too deeply (more levels than Python's recursion limit)"


def _iter_jsonl(path: str, batch_size: int) -> Iterator[tuple[Record, int]]:
    with open_binary(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a leading BOM is dropped
            except UnicodeDecodeError as exc:
                raise DataError(f"invalid UTF-8 at byte {exc.start} of the line", file=path, line=lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=path, line=lineno) from None
            except RecursionError:
                raise DataError(_TOO_DEEP, file=path, line=lineno) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {json_type(obj)}", file=path, line=lineno)
            yield obj, lineno


def _iter_json(path: str, batch_size: int) -> Iterator[tuple[Record, int]]:
    with open_binary(path) as fh:
        raw = fh.read()  # json.load reads the whole file too
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM is dropped
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1)
        raise DataError(f"invalid UTF-8 at byte {column} of the line", file=path, line=line) from None
    del raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Expecting value" and exc.pos == 0:
            raise DataError("file is empty or not JSON", file=path, line=exc.lineno) from None
        raise DataError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=path, line=exc.lineno) from None
    except RecursionError:
        raise DataError(_TOO_DEEP, file=path) from None
    if isinstance(data, dict):  # {"data": [...]} / {"rows": [...]} wrappers, or a single record
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise DataError(f"expected a JSON array of objects, got {json_type(data)}", file=path)
    for i, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {json_type(obj)}", file=path, line=i, row_kind="item")
        yield obj, i


def _iter_parquet(path: str, batch_size: int) -> Iterator[tuple[Record, int]]:
    import pyarrow.parquet as pq

    try:
        # pre_buffer (pyarrow's default) caches every row group read so far: memory would grow
        # with the file; a bounded read buffer keeps it flat.
        pf = pq.ParquetFile(open_binary(path) if path.endswith(".gz") else path, pre_buffer=False,
                            buffer_size=1 << 20)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends
        raise DataError(f"not a readable parquet file ({exc})", file=path) from None
    import pyarrow as pa

    row = 0
    batches = pf.iter_batches(batch_size=batch_size)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:  # a corrupt page or row group
            raise DataError(f"unreadable parquet data after row {row} ({exc})", file=path) from None
        if batch is None:
            break
        for rec in batch.to_pylist():
            row += 1
            yield rec, row


def _iter_csv(path: str, batch_size: int) -> Iterator[tuple[Record, int]]:
    delimiter = "\t" if strip_compression(path).endswith(".tsv") else ","
    with open_binary(path) as fh:
        reader = csv.DictReader(_decoded_lines(fh, path), delimiter=delimiter)
        try:
            for rec in reader:
                if None in rec:
                    raise DataError(f"row has {len(rec) - 1 + len(rec[None])} fields, header has {len(reader.fieldnames)}",
                                    file=path, line=reader.line_num)
                yield rec, reader.line_num
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", file=path, line=reader.line_num) from None


def _decoded_lines(fh: IO[bytes], path: str) -> Iterator[str]:
    """Strict UTF-8 decoding line by line, so an invalid byte is reported with its line."""
    for lineno, raw in enumerate(fh, start=1):
        try:
            yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a leading BOM is dropped
        except UnicodeDecodeError as exc:
            raise DataError(f"invalid UTF-8 at byte {exc.start} of the line", file=path, line=lineno) from None
