"""Atomic output files and folders, safe replacement of outputs, and compressed-input opening.

Every stage that writes files goes through here, so three rules hold everywhere:

- **No partial output**: files and folders are written under a temporary name next to the target and
  renamed over it only on success.
- **Normal permissions**: ``tempfile`` creates files 0600 and folders 0700; outputs are set to what a
  plain ``open``/``mkdir`` would give under the process umask (0644/0755 under umask 022), so workers
  running as another user can read exports, parquet files, verl job folders and manifests.
- **Only rmforge's own folders are replaced**: ``--overwrite`` / ``overwrite=true`` removes a non-empty
  folder only when rmforge created it (it holds :data:`MARKER` or a run's ``manifest.json``), and never
  the current folder, one of its parents, ``$HOME`` or ``/``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

from rmforge.errors import OutputExistsError, OutputPathError

MARKER = ".rmforge-output"
"""File rmforge writes into every output folder it creates; ``overwrite`` may replace such a folder."""

_umask_lock = threading.Lock()


def umask() -> int:
    """The process umask (read without changing it where /proc allows, else set-and-restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        old = os.umask(0o022)
        os.umask(old)
    return old


def normal_mode(path: str | os.PathLike, is_dir: bool | None = None) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have given it (0666/0777 minus umask)."""
    is_dir = os.path.isdir(path) if is_dir is None else is_dir
    os.chmod(path, (0o777 if is_dir else 0o666) & ~umask())


def normal_modes(folder: str | os.PathLike) -> None:
    """Umask permissions for ``folder`` and everything under it (``save_pretrained`` writes weights 0600);
    executable files (a job's ``launch.sh``) stay executable."""
    mask = umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir() or path.stat().st_mode & 0o111:
            os.chmod(path, 0o777 & ~mask)
        else:
            os.chmod(path, 0o666 & ~mask)


def temp_file(dir: str | os.PathLike, prefix: str, suffix: str = ".tmp") -> Path:
    """An empty temporary file in ``dir`` with normal permissions (``mkstemp`` makes 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
    os.close(fd)
    try:
        normal_mode(tmp, is_dir=False)
    except OSError:  # e.g. a mount that refuses chmod: leave no temporary (or probe) file behind
        os.unlink(tmp)
        raise
    return Path(tmp)


def temp_dir(dir: str | os.PathLike, prefix: str) -> Path:
    """An empty temporary folder in ``dir`` with normal permissions (``mkdtemp`` makes 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    try:
        normal_mode(tmp, is_dir=True)
    except OSError:  # leave no temporary folder behind
        tmp.rmdir()
        raise
    return tmp


def writable_parent(path: str | os.PathLike) -> Path:
    """Create ``path``'s parent folder and check, by writing, that files can be created there.

    An OutputPathError when the parent is a file, cannot be created or is not writable; returns ``path``.
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputPathError(f"cannot write {path}: {_first_file(parent)} is a file, not a folder") from None
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: cannot create folder {parent} ({exc.strerror})") from None
    try:  # a real write: os.access says yes to root, on read-only mounts and under some ACLs
        temp_file(parent, prefix=".rmforge-probe-").unlink()
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: folder {parent} is not writable ({exc.strerror})") from None
    return path


def _first_file(path: Path) -> Path:
    """The first component of ``path`` that exists and is not a folder (for error messages)."""
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
    return path


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Check that ``path`` can be written as a file and create its parent folder.

    Refuses (before any long work) an existing file without ``overwrite``, a path that is a folder,
    and a parent that is a file or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; give a file path for this output")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite (or overwrite=true) or choose a new path")
    writable_parent(path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success."""
    path = check_output(path, overwrite)
    tmp_path = temp_file(path.parent, prefix=f".{path.name}.")
    try:
        yield tmp_path
        if tmp_path.exists():
            normal_mode(tmp_path, is_dir=False)  # writers that recreate the file keep the umask too
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


def mark_output_dir(path: str | os.PathLike) -> None:
    """Write :data:`MARKER` into ``path`` so a later ``overwrite`` may replace the folder."""
    from rmforge import __version__

    (Path(path) / MARKER).write_text(json.dumps({"created_by": "rmforge", "version": __version__}) + "\n",
                                     encoding="utf-8")


def is_rmforge_output(path: str | os.PathLike) -> bool:
    """True for a folder rmforge created: it holds :data:`MARKER`, it is a marked run's ``checkpoints/X``,
    or it holds an rmforge run's ``manifest.json`` (one with ``rmforge_version``, as runs of earlier versions
    do). Any other folder that merely lies inside a marked one is the user's (not replaceable)."""
    path = Path(path).resolve()
    if (path / MARKER).is_file():
        return True
    if path.parent.name == "checkpoints" and (path.parent.parent / MARKER).is_file():
        return True  # a run's checkpoints/step-N or best (earlier versions marked only the run folder)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "rmforge_version" in manifest


def _protected(path: Path) -> str | None:
    """Why ``path`` may never be replaced (None when it may)."""
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor):
        return "it is the file-system root"
    if real == Path.home().resolve():
        return "it is your home folder"
    if real == cwd or real in cwd.parents:
        return "it is the current folder or one of its parents"
    return None


def check_replaceable(path: str | os.PathLike, overwrite: bool, what: str = "output folder") -> Path:
    """Refuse to replace ``path`` unless it is empty, or ``overwrite`` is set and rmforge created it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is a file, not a folder")
    if not path.exists() or not any(path.iterdir()):
        return path
    if not overwrite:
        raise OutputExistsError(f"{what} {path} already exists and is not empty; pass --overwrite "
                                "(or overwrite=true) or choose a new path")
    why = _protected(path)
    if why is None and not is_rmforge_output(path):
        why = f"rmforge did not create it (no {MARKER} or manifest.json in it)"
    if why is not None:
        raise OutputPathError(f"refusing to replace {what} {path}: {why}; remove it yourself or choose a new path")
    return path


def prepare_output_dir(path: str | os.PathLike, overwrite: bool, what: str = "output folder") -> Path:
    """Create ``path`` (clearing it first when ``overwrite`` allows, see :func:`check_replaceable`) and mark it."""
    path = check_replaceable(path, overwrite, what)
    writable_parent(path)
    if path.exists() and any(path.iterdir()):
        if path.is_symlink():  # rmtree refuses links (an OSError); say why instead
            raise OutputPathError(f"refusing to replace {what} {path}: it is a symbolic link; "
                                  "give the folder it points to, or a new path")
        shutil.rmtree(path)
    path.mkdir(exist_ok=True)
    mark_output_dir(path)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = True, what: str = "output folder") -> Iterator[Path]:
    """Yield a marked temporary folder next to ``path``; on success it replaces ``path``.

    An existing ``path`` is replaced only under the rules of :func:`check_replaceable` (it is checked
    before the caller's work starts and again before the swap).
    """
    path = Path(path)
    check_replaceable(path, overwrite, what)
    why = _protected(path) if path.is_dir() else None
    if why is not None:  # even empty: the swap would move the current folder (or ~) away
        raise OutputPathError(f"refusing to replace {what} {path}: {why}; choose a new path")
    writable_parent(path)
    tmp = temp_dir(path.parent, prefix=f".{path.name}.")
    try:
        mark_output_dir(tmp)
        yield tmp
        normal_modes(tmp)
        if path.exists():
            check_replaceable(path, overwrite, what)
            old = temp_dir(path.parent, prefix=f".{path.name}.old-")
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
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
    """Strict UTF-8 text view of a binary stream; a leading BOM is dropped (invalid bytes raise UnicodeDecodeError)."""
    return io.TextIOWrapper(fh, encoding="utf-8-sig", errors="strict", newline="")
