"""`rmforge quickstart` end to end on a tiny budget (tiny model, few pairs), offline."""

import json
import os
import subprocess
import sys

from transformers import AutoModelForSequenceClassification

from rmforge.train.tiny import tiny_model


def test_quickstart_tiny_end_to_end(tmp_path):
    model = tiny_model("llama", tmp_path / "tiny")
    out = tmp_path / "qs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "rmforge", "quickstart", f"model={model}", "demo_pairs=200",
                          "train.max_steps=3", f"output_dir={out}", "progress=false", "train.precision=fp32"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("held-out accuracy: ") and "(untrained: " in last
    for name in ("report.md", "metrics.jsonl", "manifest.json", "eval.json", "config.json", "quickstart.json"):
        assert (out / name).exists(), name
    assert (out / "data" / "samples" / "test.jsonl").exists()
    AutoModelForSequenceClassification.from_pretrained(out)
    report = json.loads((out / "quickstart.json").read_text())
    acc = float(last.split()[2])
    assert abs(acc - report["accuracy"]) < 1e-3
    assert report["train_steps"] == 3 and 100 < report["train_pairs"] < 200  # kept training pairs, not steps
    text = (out / "report.md").read_text()
    assert "| trained reward model |" in text and "arithmetic" in text and "longer wins" in text
    again = subprocess.run([sys.executable, "-m", "rmforge", "quickstart", f"model={model}", f"output_dir={out}"],
                           capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert again.returncode == 1 and "overwrite=true" in again.stderr


def test_quickstart_overwrite_never_deletes_a_foreign_folder(tmp_path, monkeypatch):
    """overwrite=true used to rmtree any folder; now only one rmforge created (checked before any work)."""
    import pytest
    from rich.console import Console

    from rmforge.errors import OutputPathError
    from rmforge.quickstart import QuickstartConfig, run_quickstart

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match=r"refusing to replace quickstart output folder .*notes: rmforge did not create it"):
        run_quickstart(QuickstartConfig(output_dir=str(mine), overwrite=True), Console(quiet=True))
    monkeypatch.chdir(mine)
    with pytest.raises(OutputPathError, match="it is the current folder or one of its parents"):
        run_quickstart(QuickstartConfig(output_dir=".", overwrite=True), Console(quiet=True))
    assert (mine / "todo.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # no staging folder either


def test_quickstart_keeps_an_empty_current_folder_and_refuses_a_link(tmp_path, monkeypatch):
    """An empty output folder passed the check and was rmtree'd even when it was the current folder;
    a link to a marked folder gave rmtree's bare OSError."""
    import pytest
    from rich.console import Console

    from rmforge.errors import OutputPathError, RmforgeError
    from rmforge.fileio import mark_output_dir
    from rmforge.quickstart import QuickstartConfig, run_quickstart

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = here.stat().st_ino
    with pytest.raises((RmforgeError, OSError)):  # the model does not exist: the run fails after the output check
        run_quickstart(QuickstartConfig(output_dir=str(here), model=str(tmp_path / "no-model"), demo_pairs=100),
                       Console(quiet=True))
    assert here.is_dir() and here.stat().st_ino == inode  # the current folder itself, not a new one
    real = tmp_path / "real"
    real.mkdir()
    mark_output_dir(real)
    (real / "keep.txt").write_text("x")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OutputPathError, match="symbolic link"):
        run_quickstart(QuickstartConfig(output_dir=str(tmp_path / "link"), overwrite=True), Console(quiet=True))
    assert (real / "keep.txt").read_text() == "x"
