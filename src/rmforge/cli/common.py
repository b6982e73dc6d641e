"""Console objects and the error guard shared by every CLI verb."""

from __future__ import annotations

import errno
import os
from typing import Callable, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from rmforge.errors import RmforgeError

console = Console()
err_console = Console(stderr=True)

__all__ = ["console", "err_console", "escape", "fail", "fault_message", "parse_pairs", "probe_writable", "run_guarded"]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` as exactly one red line on stderr (no markup parsing) and exit ``code``."""
    from rich.text import Text

    line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    err_console.print(Text("error: ", style="bold red") + Text(line), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_guarded(fn: Callable[[], object]) -> object:
    """Run ``fn``; print expected failures as one red line on stderr and exit with their status.

    - :class:`~rmforge.errors.RmforgeError`: its message, its ``exit_code``;
    - anticipated faults of bad input or an unusable path (:func:`fault_message`): one line naming the
      path, exit 1;
    - anything else is a bug: the traceback is shown.

    ``RMFORGE_DEBUG=1`` shows the traceback of anticipated faults too (a RecursionError or
    UnicodeError that is a bug rather than bad input would otherwise read as bad input).
    """
    try:
        return fn()
    except RmforgeError as exc:
        fail(str(exc), exc.exit_code)
    except (OSError, UnicodeError, RecursionError, EOFError) as exc:
        message = fault_message(exc)
        if message is None or os.environ.get("RMFORGE_DEBUG"):
            raise
        fail(message, 1)
    except Exception as exc:
        import zlib

        if not isinstance(exc, zlib.error):
            raise
        fail(f"corrupt gzip data ({exc})", 1)


def fault_message(exc: BaseException) -> str | None:
    """One line for an anticipated fault of the input or the output path; None for anything else (a bug)."""
    import gzip

    if isinstance(exc, gzip.BadGzipFile):
        return f"input is not gzip-compressed although its name ends in .gz ({exc})"
    if isinstance(exc, EOFError):
        return "input ended early (a truncated .gz file?)"
    if isinstance(exc, RecursionError):
        return "input nested too deeply (more levels than Python's recursion limit)"
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not valid UTF-8 (byte {exc.start}: {exc.reason})"
    if isinstance(exc, UnicodeEncodeError):
        return f"text cannot be written as UTF-8 (character {exc.start}: {exc.reason}; a lone surrogate?)"
    if not isinstance(exc, OSError) or exc.filename is None:
        return None  # a socket, a subprocess, a bug: keep the traceback
    path = _shown_path(os.fsdecode(exc.filename))
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return f"{path}: permission denied ({exc.strerror})"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a folder, not a file"
    if isinstance(exc, NotADirectoryError):
        return f"{path}: a part of this path is a file, not a folder"
    if isinstance(exc, FileNotFoundError):
        return f"{path}: file or folder not found"
    if isinstance(exc, FileExistsError):
        return f"{path}: already exists"
    return f"{path}: {exc.strerror or exc}"


def _shown_path(path: str) -> str:
    """A temporary sibling rmforge writes first (``.name.XXXX.tmp``) is reported as its folder."""
    name = os.path.basename(path)
    if name.startswith(".") and (name.endswith(".tmp") or ".old-" in name or name.count(".") >= 2):
        return os.path.dirname(path) or "."
    return path


def probe_writable(path: str | os.PathLike) -> None:
    """Create and remove a temporary file where ``path`` (a file or folder output) will be written.

    ``os.access`` says yes to root, on read-only mounts and under some ACLs; a real write before the
    long work turns a late PermissionError (results lost) into an early one-line error.
    """
    from pathlib import Path

    from rmforge.fileio import temp_file

    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir():
        temp_file(folder, prefix=".rmforge-probe-").unlink()


def parse_pairs(items: list[str] | None, what: str) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    from rmforge.errors import ConfigError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} '{item}' is not of the form key=value")
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key] = value
    return out
