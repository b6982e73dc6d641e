"""The CLI's error guard: expected failures are one line and an exit status; bugs keep their traceback."""

import errno
import gzip

import pytest
import typer
from typer.testing import CliRunner

from rmforge.cli.common import fault_message, run_guarded
from rmforge.errors import ConfigError, DataError, OutputPathError, RmforgeError


def run(fn):
    app = typer.Typer()

    @app.command()
    def main() -> None:
        run_guarded(fn)

    return CliRunner().invoke(app, [])


def raising(exc):
    def fn():
        raise exc
    return fn


@pytest.mark.parametrize("exc, code, line", [
    (RmforgeError("plain"), 1, "error: plain"),
    (ConfigError("a.yaml: seed: bad"), 1, "error: a.yaml: seed: bad"),
    (DataError("bad", file="d.jsonl", line=3, field="chosen"), 1, "error: d.jsonl, line 3, field 'chosen': bad"),
    (OutputPathError("out is a folder"), 1, "error: out is a folder"),
    (ConfigError("first\nsecond\n\nthird"), 1, "error: first; second; third"),  # always one line
    (DataError("unknown subset '[chat]' in [bold]x[/bold]"), 1, "error: unknown subset '[chat]' in [bold]x[/bold]"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/out.jsonl"), 1,
     "error: /ro/out.jsonl: permission denied (Permission denied)"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/.out.jsonl.k2j3.tmp"), 1,
     "error: /ro: permission denied (Permission denied)"),  # rmforge's temporary sibling: name the folder
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x"), 1, "error: /mnt/ro/x: permission denied (Read-only file system)"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "data"), 1, "error: data: is a folder, not a file"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.yaml"), 1, "error: x.yaml: file or folder not found"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/x"), 1, "error: f/x: a part of this path is a file, not a folder"),
    (OSError(errno.ENOSPC, "No space left on device", "big.parquet"), 1, "error: big.parquet: No space left on device"),
    (gzip.BadGzipFile("Not a gzipped file (b'{\"')"), 1,
     "error: input is not gzip-compressed although its name ends in .gz (Not a gzipped file (b'{\"'))"),
    (EOFError("Compressed file ended before the end-of-stream marker was reached"), 1,
     "error: input ended early (a truncated .gz file?)"),
    (RecursionError("maximum recursion depth exceeded"), 1,
     "error: input nested too deeply (more levels than Python's recursion limit)"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 1,
     "error: input is not valid UTF-8 (byte 0: invalid start byte)"),
])
def test_expected_failures_are_one_line(exc, code, line):
    res = run(raising(exc))
    assert res.exit_code == code and res.stderr.splitlines() == [line], res.output
    assert res.stdout == "" and "Traceback" not in res.output and isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("exc", [KeyError("x"), TypeError("bug"), ValueError("bug"),
                                 ConnectionResetError(errno.ECONNRESET, "reset"), OSError("no file name")])
def test_bugs_are_not_swallowed(exc):
    """A real bug (or an OS error that names no file) must propagate: the traceback is the report."""
    res = run(raising(exc))
    assert res.exception is exc
    assert fault_message(exc) is None


def test_success_passes_the_value_through():
    assert run_guarded(lambda: 42) == 42


def test_debug_shows_the_traceback_of_anticipated_faults(monkeypatch):
    """A RecursionError may be a bug, not deep input: RMFORGE_DEBUG=1 lets it through."""
    exc = RecursionError("maximum recursion depth exceeded")
    monkeypatch.setenv("RMFORGE_DEBUG", "1")
    assert run(raising(exc)).exception is exc
