"""Atomic output files and compressed-input opening, used by every stage that writes files."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from rmforge.errors import OutputExistsError


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite``; create the parent folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite (or overwrite=true) or choose a new path")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success."""
    path = check_output(path, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike, overwrite: bool = False) -> Iterator[IO[str]]:
    """Open a text file for writing atomically (gzip when the name ends in .gz)."""
    with atomic_path(path, overwrite) as tmp:
        raw = gzip.open(tmp, "wt", encoding="utf-8") if str(path).endswith(".gz") else open(tmp, "w", encoding="utf-8")
        with raw as fh:
            yield fh


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` (an existing one is removed)."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, transparently decompressing .gz."""
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def strip_compression(path: str | os.PathLike) -> str:
    """``data.jsonl.gz`` -> ``data.jsonl``: the name whose suffix tells the format."""
    name = str(path)
    return name[:-3] if name.endswith(".gz") else name


def file_format(path: str | os.PathLike) -> str:
    """Format named by a path's extension: jsonl, json, parquet or csv."""
    suffix = Path(strip_compression(path)).suffix.lower().lstrip(".")
    return {"ndjson": "jsonl", "pq": "parquet", "tsv": "csv"}.get(suffix, suffix)


def text_reader(fh: IO[bytes]) -> io.TextIOWrapper:
    """Strict UTF-8 text view of a binary stream (invalid bytes raise UnicodeDecodeError)."""
    return io.TextIOWrapper(fh, encoding="utf-8", errors="strict", newline="")
