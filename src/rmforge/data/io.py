"""Reading and writing canonical samples (jsonl or parquet, chosen by the file extension).

Writers stream (constant memory for any number of samples) and are atomic: the output
appears only when every sample was written.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Iterator

from pydantic import ValidationError

from rmforge.data.records import iter_file
from rmforge.data.schema import ARROW_SCHEMA, Sample, first_error, row_to_record, samples_to_table
from rmforge.errors import DataError
from rmforge.fileio import atomic_path, atomic_text, file_format

SAMPLE_FORMATS = ("jsonl", "parquet")


def output_format(path: str | os.PathLike) -> str:
    fmt = file_format(path)
    if fmt not in SAMPLE_FORMATS:
        raise DataError(f"output must end in .jsonl, .jsonl.gz or .parquet (got '{path}')")
    return fmt


def read_samples(path: str | os.PathLike, batch_size: int = 4096) -> Iterator[Sample]:
    """Stream canonical samples from a jsonl/json/parquet file written by rmforge."""
    path = str(path)
    fmt = file_format(path)
    row_kind = "row" if fmt == "parquet" else "line"
    first = True
    for rec, row in iter_file(path, fmt, batch_size):
        if fmt == "parquet":
            rec = _parquet_record(rec, path, row)
        try:
            sample = Sample.model_validate(rec)
        except ValidationError as exc:
            field, msg = first_error(exc)
            hint = layout_hint(rec) if first else ""
            raise DataError(f"not a canonical rmforge sample: {msg}{hint}", file=path, line=row,
                            field=None if field == "sample" else field, row_kind=row_kind) from None
        first = False
        yield sample


def layout_hint(record: dict) -> str:
    """For a first record that is not canonical: how to read the file through a converter instead."""
    from rmforge.data.registry import CONVERTERS, load_plugins

    load_plugins()
    guess = guess_converter(record)
    names = ", ".join(sorted(CONVERTERS))
    return (f"; if the file has another layout, pass data.format={guess} (one of: {names}) to train/eval on it, "
            f"or convert it first: rmforge data convert --from {guess} FILE OUT.jsonl")


def guess_converter(record: dict) -> str:
    """The converter most likely to read ``record`` (a placeholder name when nothing fits)."""
    if "chosen" in record and "rejected" in record:
        chosen = record["chosen"]
        if isinstance(chosen, str) and "\n\nHuman:" in chosen and "prompt" not in record:
            return "hh-rlhf"
        return "preference"
    if "response" in record:
        return "pointwise"
    return "<name>"


_CONVERSATION_COLUMNS = ("prompt", "chosen", "rejected", "response")


def _parquet_record(row: dict, path: str, n: int) -> dict:
    """A parquet row as a record; a column of the wrong type is reported by name (not a TypeError)."""
    def bad(field: str, expected: str, value) -> DataError:
        from rmforge.data.records import json_type

        return DataError(f"not a canonical rmforge sample: expected {expected}, got {json_type(value)}",
                         file=path, line=n, field=field, row_kind="row")

    def conversation(value) -> bool:
        return isinstance(value, list) and all(isinstance(m, dict) for m in value)

    for key in _CONVERSATION_COLUMNS:
        if row.get(key) is not None and not conversation(row[key]):
            raise bad(key, "a list of messages", row[key])
    cands = row.get("candidates")
    if cands is not None and not (isinstance(cands, list) and all(conversation(c) for c in cands)):
        raise bad("candidates", "a list of conversations", cands)
    scores = row.get("scores")
    if scores is not None and not isinstance(scores, (list, dict)):
        raise bad("scores", "a map of attribute scores", scores)
    meta = row.get("metadata")
    if meta is not None and not isinstance(meta, str):
        raise bad("metadata", "JSON text", meta)
    if meta:
        try:
            json.loads(meta)
        except (ValueError, RecursionError) as exc:
            raise DataError(f"not a canonical rmforge sample: metadata is not valid JSON ({exc})", file=path,
                            line=n, field="metadata", row_kind="row") from None
    try:
        return row_to_record(row)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise DataError(f"not a canonical rmforge sample: {type(exc).__name__}: {exc}", file=path, line=n,
                        row_kind="row") from None


def load_samples(path: str | os.PathLike) -> list[Sample]:
    return list(read_samples(path))


def write_samples(path: str | os.PathLike, samples: Iterable[Sample], overwrite: bool = False,
                  batch_size: int = 4096) -> int:
    """Write samples atomically; returns the number written."""
    if output_format(path) == "jsonl":
        return write_records(path, (s.to_record() for s in samples), overwrite)
    import pyarrow.parquet as pq

    n = 0

    with atomic_path(path, overwrite) as tmp:
        with pq.ParquetWriter(tmp, ARROW_SCHEMA) as writer:
            for batch in _batched(samples, batch_size):
                writer.write_table(samples_to_table(batch))
                n += len(batch)
    return n


def write_records(path: str | os.PathLike, records: Iterable[dict], overwrite: bool = False, schema=None,
                  batch_size: int = 4096) -> int:
    """Write plain dict records (exports) atomically as jsonl or parquet."""
    fmt = output_format(path)
    n = 0
    if fmt == "jsonl":
        with atomic_text(path, overwrite) as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False))
                fh.write("\n")
                n += 1
        return n
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(path, overwrite) as tmp:
        writer = None
        try:
            for batch in _batched(records, batch_size):
                table = pa.Table.from_pylist(batch, schema=schema)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table)
                n += len(batch)
            if writer is None:
                pq.write_table(pa.table({}) if schema is None else schema.empty_table(), tmp)
        finally:
            if writer is not None:
                writer.close()
    return n


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
