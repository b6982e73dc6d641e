"""fileio: atomic outputs keep normal permissions, only rmforge's own folders are replaced, clear path errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from rmforge.errors import OutputExistsError, OutputPathError
from rmforge.fileio import (MARKER, atomic_dir, atomic_path, atomic_text, check_output, check_replaceable,
                            is_rmforge_output, prepare_output_dir, text_reader, umask)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_umask_reads_without_changing():
    old = os.umask(0o027)
    try:
        assert umask() == 0o027
        assert umask() == 0o027
    finally:
        os.umask(old)


def test_atomic_files_and_folders_honour_umask(tmp_path, umask022):
    with atomic_text(tmp_path / "a.jsonl") as fh:
        fh.write("{}\n")
    with atomic_path(tmp_path / "b.parquet") as tmp:
        tmp.write_bytes(b"x")
    with atomic_dir(tmp_path / "job") as tmp:
        (tmp / "reward.py").write_text("x")
    assert mode(tmp_path / "a.jsonl") == 0o644  # mkstemp alone gives 0600
    assert mode(tmp_path / "b.parquet") == 0o644
    assert mode(tmp_path / "job") == 0o755  # mkdtemp alone gives 0700
    assert mode(tmp_path / "job" / "reward.py") == 0o644
    assert (tmp_path / "job" / MARKER).is_file()
    old = os.umask(0o077)
    try:
        with atomic_text(tmp_path / "c.jsonl") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "c.jsonl") == 0o600


def test_export_and_parquet_permissions(tmp_path, umask022):
    from rmforge.data.export import export_samples
    from rmforge.data.schema import Sample

    samples = [Sample(id="1", prompt=[{"role": "user", "content": "hi"}],
                      chosen=[{"role": "assistant", "content": "a"}], rejected=[{"role": "assistant", "content": "b"}])]
    export_samples(samples, "pairwise", tmp_path / "trl.jsonl")
    export_samples(samples, "verl", tmp_path / "trl.parquet")
    assert mode(tmp_path / "trl.jsonl") == 0o644
    assert mode(tmp_path / "trl.parquet") == 0o644


def test_check_output_errors(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputPathError, match=r"dir is a folder; give a file path for this output"):
        check_output(tmp_path / "dir", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        check_output(tmp_path / "f", overwrite=False)
    with pytest.raises(OutputPathError, match=r"cannot write .*f/out.jsonl: .*f is a file, not a folder"):
        check_output(tmp_path / "f" / "out.jsonl", overwrite=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_refused_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match=r"cannot write .*ro/out.jsonl: folder .*ro is not writable"):
            check_output(ro / "out.jsonl", overwrite=False)
    finally:
        ro.chmod(0o755)


def test_read_only_mount_is_refused_as_root_too(read_only_dir):
    """A real probe write decides (os.access says yes to root even on a read-only mount)."""
    with pytest.raises(OutputPathError, match=r"out.jsonl: folder .* is not writable \(Read-only file system\)"):
        check_output(read_only_dir / "out.jsonl", overwrite=False)


def test_overwrite_replaces_only_rmforge_folders(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="already exists and is not empty"):
        prepare_output_dir(user, overwrite=False)
    with pytest.raises(OutputPathError, match=r"refusing to replace output folder .*mine: rmforge did not create it"):
        prepare_output_dir(user, overwrite=True)
    with pytest.raises(OutputPathError, match="rmforge did not create it"):
        with atomic_dir(user, overwrite=True) as tmp:
            (tmp / "x").write_text("x")
    assert (user / "thesis.tex").read_text() == "precious"

    run = prepare_output_dir(tmp_path / "run", overwrite=False)
    (run / "model.safetensors").write_text("w")
    assert is_rmforge_output(run) and is_rmforge_output(run / "checkpoints" / "step-1")
    prepare_output_dir(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [MARKER]

    old_run = tmp_path / "old-run"  # a run from an earlier version: manifest with rmforge_version, no marker
    old_run.mkdir()
    (old_run / "manifest.json").write_text(json.dumps({"rmforge_version": "0.1.0"}))
    assert check_replaceable(old_run, overwrite=True) == old_run
    other = tmp_path / "webext"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"manifest_version": 3}))
    assert not is_rmforge_output(other)


def test_never_replaces_cwd_home_or_root(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / MARKER).write_text("{}")
    (work / "code.py").write_text("x")
    monkeypatch.chdir(work)
    with pytest.raises(OutputPathError, match="it is the current folder or one of its parents"):
        prepare_output_dir(".", overwrite=True)
    monkeypatch.chdir(work)
    inner = work / "sub"
    inner.mkdir()
    monkeypatch.chdir(inner)
    with pytest.raises(OutputPathError, match="it is the current folder or one of its parents"):
        check_replaceable(work, overwrite=True)
    monkeypatch.setenv("HOME", str(work))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputPathError, match="it is your home folder"):
        check_replaceable(work, overwrite=True)
    with pytest.raises(OutputPathError, match="it is the file-system root"):
        check_replaceable("/", overwrite=True)
    assert (work / "code.py").exists()


def test_failed_atomic_dir_leaves_target_untouched(tmp_path):
    target = prepare_output_dir(tmp_path / "out", overwrite=False)
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert (target / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind


def test_text_reader_drops_bom(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf{\"a\": 1}\n")
    with open(p, "rb") as fh:
        assert text_reader(fh).read() == '{"a": 1}\n'


def test_atomic_dir_normalises_private_files_and_keeps_executables(tmp_path, umask022):
    with atomic_dir(tmp_path / "model") as tmp:
        weights = tmp / "model.safetensors"
        weights.write_bytes(b"w")
        weights.chmod(0o600)  # what save_pretrained leaves
        (tmp / "sub").mkdir(mode=0o700)
        launch = tmp / "launch.sh"
        launch.write_text("#!/bin/sh\n")
        launch.chmod(0o700)
    assert mode(tmp_path / "model" / "model.safetensors") == 0o644
    assert mode(tmp_path / "model" / "sub") == 0o755
    assert mode(tmp_path / "model" / "launch.sh") == 0o755


def test_prepare_output_dir_refuses_a_symlink_to_a_marked_folder(tmp_path):
    """A link to an rmforge folder is refused with a clear error (rmtree raised a bare OSError); nothing is deleted."""
    from rmforge.errors import OutputPathError
    from rmforge.fileio import mark_output_dir
    real = tmp_path / "real"
    real.mkdir()
    mark_output_dir(real)
    (real / "keep.txt").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(OutputPathError, match="symbolic link"):
        prepare_output_dir(link, overwrite=True)
    assert (real / "keep.txt").read_text() == "x" and link.is_symlink()


def test_atomic_dir_never_swaps_out_an_empty_current_folder(tmp_path, monkeypatch):
    """An empty folder passed check_replaceable, so atomic_dir renamed the (empty) current folder away."""
    from rmforge.errors import OutputPathError

    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    with pytest.raises(OutputPathError, match="current folder"):
        with atomic_dir(str(here)) as tmp:
            (tmp / "f.txt").write_text("x")
    assert here.stat().st_ino == inode and list(here.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no temporary folder left


def test_writable_parent_probe_leaves_nothing_when_chmod_fails(tmp_path, monkeypatch):
    """The probe file was left behind when setting its mode failed after it was created."""
    from rmforge.errors import OutputPathError
    from rmforge.fileio import writable_parent

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(OutputPathError, match="not writable"):
        writable_parent(tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_leaves_no_temporary_folder_when_chmod_fails(tmp_path, monkeypatch):
    real_chmod = os.chmod

    def refuse_dirs(path, mode, *args, **kwargs):
        if os.path.isdir(path):
            raise PermissionError(1, "Operation not permitted")
        return real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", refuse_dirs)
    with pytest.raises(PermissionError):
        with atomic_dir(tmp_path / "job"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_user_folder_inside_a_marked_folder_is_not_replaceable(tmp_path):
    """Any folder under a marked one counted as rmforge's, so --overwrite deleted a user's folder put there."""
    from rmforge.errors import OutputPathError
    from rmforge.fileio import mark_output_dir

    run = tmp_path / "run"
    (run / "notes").mkdir(parents=True)
    mark_output_dir(run)
    (run / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match="rmforge did not create it"):
        prepare_output_dir(run / "notes", overwrite=True)
    assert (run / "notes" / "todo.txt").read_text() == "keep me"
    (run / "checkpoints" / "best").mkdir(parents=True)  # an earlier version's checkpoint: no marker of its own
    (run / "checkpoints" / "best" / "model.safetensors").write_text("x")
    assert is_rmforge_output(run / "checkpoints" / "best")
