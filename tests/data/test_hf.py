"""Hugging Face sources: save_to_disk folders, packaged builders with local data_files, offline hub errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import datasets
import pytest
from huggingface_hub import constants as hub_constants

from rmforge.data import sources
from rmforge.data.registry import register_converter
from rmforge.data.schema import Sample, assistant
from rmforge.data.sources import SourceConfig, load_source, open_records
from rmforge.errors import DataError


@register_converter("test-hf-pairs")
def _pairs(rec, ctx):
    """chosen/rejected columns -> pair."""
    return Sample(id=f"r{ctx.row}", chosen=[assistant(ctx.get(rec, "chosen"))],
                  rejected=[assistant(ctx.get(rec, "rejected"))], source=ctx.source)


ROWS = [{"chosen": f"good {i}", "rejected": f"bad {i}", "n": i} for i in range(1, 11)]


def load(**kw) -> list[Sample]:
    return list(load_source(SourceConfig(converter="test-hf-pairs", **kw)))


@pytest.fixture(autouse=True)
def quiet_datasets(tmp_path, monkeypatch):
    """No progress bars, and a throwaway cache for non-streaming loads."""
    datasets.disable_progress_bars()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    yield
    datasets.enable_progress_bars()


# ---------------------------------------------------------------- save_to_disk folders

def test_saved_dataset(tmp_path):
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    samples = load(path=str(tmp_path / "ds"), batch_size=3)
    assert [s.chosen[0].content for s in samples] == [r["chosen"] for r in ROWS]
    stream = open_records(SourceConfig(path=str(tmp_path / "ds")))
    assert stream.row_kind == "row" and [r for _, r in stream.records] == list(range(1, 11))


def test_saved_dataset_dict(tmp_path):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                               "test": datasets.Dataset.from_list(ROWS[:3])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(load(path=str(tmp_path / "dd"))) == 10
    assert len(load(path=str(tmp_path / "dd"), hf_split="test")) == 3
    with pytest.raises(DataError) as exc:
        load(path=str(tmp_path / "dd"), hf_split="validation")
    assert "split 'validation' not found (available splits: train, test)" in str(exc.value)
    assert str(tmp_path / "dd") in str(exc.value)


def test_saved_dataset_error_location(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[6]["rejected"] = None
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'ds'}, row 7, field 'rejected': missing required field$"):
        load(path=str(tmp_path / "ds"), batch_size=4)


# ---------------------------------------------------------------- packaged builders + data_files

@pytest.fixture
def data_files(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    parquet = tmp_path / "a.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(parquet))
    return {"json": str(jsonl), "parquet": str(parquet)}


@pytest.mark.parametrize("builder", ["json", "parquet"])
@pytest.mark.parametrize("streaming", [True, False])
def test_data_files(data_files, builder, streaming):
    samples = load(hf=builder, data_files=data_files[builder], streaming=streaming, limit=4)
    assert [s.chosen[0].content for s in samples] == ["good 1", "good 2", "good 3", "good 4"]


def test_data_files_list_and_errors(data_files, tmp_path):
    assert len(load(hf="json", data_files=[data_files["json"], data_files["json"]])) == 20
    with pytest.raises(DataError, match="cannot load Hugging Face dataset 'json'.*test"):
        load(hf="json", data_files=data_files["json"], hf_split="test")
    with pytest.raises(DataError, match="cannot load Hugging Face dataset 'json'.*missing.jsonl"):
        load(hf="json", data_files=str(tmp_path / "missing.jsonl"))


# ---------------------------------------------------------------- the hub, offline

HUB_ID = "rmforge-tests/no-such-dataset"


def test_hub_offline_mode_message():
    """HF_HUB_OFFLINE=1 must be set before the HF libraries are imported, hence a subprocess."""
    code = textwrap.dedent(f"""
        from rmforge.data.registry import register_converter
        from rmforge.data.sources import SourceConfig, load_source
        register_converter("noop")(lambda rec, ctx: None)
        try:
            list(load_source(SourceConfig(hf="{HUB_ID}", converter="noop")))
        except Exception as exc:
            print(type(exc).__name__ + ": " + str(exc))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    msg = out.stdout.strip()
    assert msg.startswith("DataError: "), out.stdout + out.stderr
    assert f"'{HUB_ID}'" in msg and "HF_HUB_OFFLINE" in msg and "point `path` at them" in msg


def test_hub_unreachable_fails_fast(monkeypatch):
    """A real call: on a machine without network it must fail within seconds, naming the dataset."""
    if hub_constants.HF_HUB_OFFLINE:
        pytest.skip("offline mode is on in this environment (covered by the test above)")
    start = time.monotonic()
    with pytest.raises(DataError) as exc:
        load(hf=HUB_ID)
    assert time.monotonic() - start < 30
    msg = str(exc.value)
    assert f"'{HUB_ID}'" in msg
    if "unreachable" in msg:
        assert "without the hub" in msg and "point `path` at them" in msg


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections but never answers (like a black-holed proxy)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


def test_hub_probe_times_out(monkeypatch, silent_server):
    monkeypatch.setattr(hub_constants, "ENDPOINT", silent_server)
    monkeypatch.setattr(sources, "HUB_PROBE_TIMEOUT", 0.5)
    monkeypatch.setattr(sources, "_hub_offline_mode", lambda: False)
    start = time.monotonic()
    with pytest.raises(DataError) as exc:
        load(hf="Anthropic/hh-rlhf", hf_config="harmless-base")
    assert time.monotonic() - start < 5
    msg = str(exc.value)
    assert msg.startswith("cannot load Hugging Face dataset 'Anthropic/hh-rlhf': the Hugging Face hub is unreachable")
    assert silent_server in msg and "point `path` at them" in msg


def test_hub_probe_refused(monkeypatch, silent_server):
    srv_port = int(silent_server.rsplit(":", 1)[1])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert free != srv_port
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{free}")
    assert "refused" in sources.hub_unreachable(timeout=1).lower()


# ---------------------------------------------------------------- a mistyped local path is not a hub id

@pytest.mark.parametrize("name, is_path", [
    ("Anthropic/hh-rlhf", False), ("json", False), ("allenai/reward-bench-2", False), ("org/data.v2", False),
    ("data/trian.jsonl", True), ("trian.jsonl", True), ("out/x.parquet.gz", True), ("./data", True),
    ("../data", True), ("/abs/data", True), ("~/data", True), ("a/b/c", True), ("C:\\data\\x", True),
])
def test_looks_like_path(name, is_path):
    assert sources.looks_like_path(name) is is_path


def test_looks_like_path_when_the_first_folder_exists(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert sources.looks_like_path("data/train") and not sources.looks_like_path("nodata/train")


@pytest.mark.parametrize("name", ["data/trian.jsonl", "./train", "/no/such/folder"])
def test_missing_local_path_is_file_not_found_not_hub_unreachable(monkeypatch, name):
    """Before: a typo was sent to the hub and reported as 'the Hugging Face hub is unreachable'."""
    def no_probe(*a, **k):
        raise AssertionError("the hub must not be contacted for a local path")

    monkeypatch.setattr(sources, "hub_unreachable", no_probe)
    with pytest.raises(DataError) as exc:
        load(hf=name)
    assert str(exc.value) == (f"{name}: file not found (it looks like a local path, so it was not looked up as "
                              "a Hugging Face dataset id)")


def test_train_data_typo_says_file_not_found(tmp_path, monkeypatch):
    """`train bt data.train=TYPO data.format=preference` (read_any sends a missing path to ``hf``)."""
    from typer.testing import CliRunner

    from rmforge.cli import app

    monkeypatch.setattr(sources, "hub_unreachable", lambda *a, **k: "probe must not run")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["train", "bt", "data.train=data/trian.jsonl", "data.format=preference",
                                   f"output_dir={tmp_path / 'run'}"])
    assert res.exit_code == 1, res.output
    assert res.stderr.strip() == ("error: data/trian.jsonl: file not found (it looks like a local path, so it was not "
                                  "looked up as a Hugging Face dataset id)")
    assert not (tmp_path / "run").exists()
