"""A corrupted model gives a one-line error and exit status 1, never a traceback or accuracy 0.0000."""

import json
import shutil
import struct

import pytest
from typer.testing import CliRunner

from rmforge.cli import app
from rmforge.errors import ModelLoadError, NonFiniteRewardError
from rmforge.reward_model import scorer as scorer_mod
from rmforge.reward_model.scorer import check_finite_rewards, load_scorer, read_manifest
from rmforge.train.tiny import tiny_model

RB1 = "tests/assets/bench/rewardbench/filtered.jsonl"
runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model("llama", tmp_path_factory.mktemp("m") / "llama")


def copy(model, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(model, dst)
    return dst


def nan_weights(folder):
    """Overwrite every tensor's data with float32 NaN; the safetensors header stays valid."""
    path = folder / "model.safetensors"
    raw = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:start])
    assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")
    raw[start:] = struct.pack("<f", float("nan")) * ((len(raw) - start) // 4)
    path.write_bytes(bytes(raw))


def run_eval(model_dir):
    return runner.invoke(app, ["eval", "rewardbench", str(model_dir), RB1, "--n-boot", "10"])


def test_nan_weights_are_refused_at_load(model, tmp_path):
    bad = copy(model, tmp_path, "nan")
    nan_weights(bad)
    with pytest.raises(NonFiniteRewardError) as exc:
        load_scorer(str(bad))
    # 20 saved tensors are NaN; the 21st, the reward head, is new (tiny_model saves a base model)
    assert str(exc.value) == (f"model {bad} has non-finite weights (NaN/Inf) in 20 of 21 tensors "
                              f"(first: model.embed_tokens.weight): the weights may be corrupted")
    result = run_eval(bad)
    assert result.exit_code == 1 and "Traceback" not in result.output and "accuracy" not in result.output
    assert "has non-finite weights" in result.output


def test_nan_rewards_are_refused_exit_1(model, tmp_path, monkeypatch):
    # weights that pass the load check but still give NaN rewards: the rewards check stops the run
    bad = copy(model, tmp_path, "nan")
    nan_weights(bad)
    monkeypatch.setattr(scorer_mod, "check_finite_weights", lambda name, net: None)
    result = run_eval(bad)
    assert result.exit_code == 1, result.output
    assert (f"model {bad} produced non-finite rewards (NaN) for 11 of 11 items: the weights may be corrupted"
            in " ".join(result.output.split()))
    assert "Traceback" not in result.output and "0.0000" not in result.output


def test_check_finite_rewards_message():
    check_finite_rewards("m", [[1.0, 2.0], [0.0, -3.0]])
    with pytest.raises(NonFiniteRewardError, match=r"^model m produced non-finite rewards \(NaN/Inf\) for 2 of 3 "
                                                   r"items: the weights may be corrupted$"):
        check_finite_rewards("m", [[1.0, float("nan")], [0.0, 1.0], [float("inf"), 0.0]])
    with pytest.raises(NonFiniteRewardError, match=r"\(Inf\) for 1 of 1 items"):
        check_finite_rewards("m", [[float("-inf"), 0.0]])
    # under fp16 an overflow is as likely as corrupted weights (which the load check has already excluded)
    with pytest.raises(NonFiniteRewardError, match=r"\(Inf\) for 1 of 1 items: fp16 overflowed \(try --precision "
                                                   r"bf16 or fp32\) or the weights are corrupted$"):
        check_finite_rewards("m", [[float("inf"), 0.0]], "fp16")
    with pytest.raises(NonFiniteRewardError, match=r"items: the weights may be corrupted$"):
        check_finite_rewards("m", [[float("inf"), 0.0]], "bf16")


def test_truncated_safetensors_is_a_one_line_error(model, tmp_path):
    bad = copy(model, tmp_path, "trunc")
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError) as exc:
        load_scorer(str(bad))
    assert str(exc.value).startswith(f"{bad}: cannot read the model weights (model.safetensors: ")
    assert str(exc.value).endswith("): the file may be truncated or corrupted")
    result = run_eval(bad)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the file may be truncated or corrupted" in " ".join(result.output.split())


def fake_run(model, tmp_path, manifest_text):
    run = copy(model, tmp_path, "run")
    (run / "config.yaml").write_text("model: llama\n")
    (run / "manifest.json").write_text(manifest_text)
    return run


@pytest.mark.parametrize("text, message", [
    ('{"encoding": {"format": ', "corrupted run manifest: invalid JSON at line 1, column 25: Expecting value"),
    ("[1, 2]", "corrupted run manifest: expected a JSON object, got list"),
    ('{"kind": "train-bt"}', "the manifest has no 'encoding' section (not an rmforge run directory?)"),
])
def test_corrupted_manifest_is_a_one_line_error(model, tmp_path, text, message):
    run = fake_run(model, tmp_path, text)
    with pytest.raises(ModelLoadError) as exc:
        read_manifest(run / "manifest.json")
    assert str(exc.value) == f"{run / 'manifest.json'}: {message}"
    with pytest.raises(ModelLoadError, match="corrupted run manifest|no 'encoding'"):
        load_scorer(str(run))
    result = run_eval(run)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in " ".join(result.output.split())


def test_manifest_not_utf8(model, tmp_path):
    run = fake_run(model, tmp_path, "")
    (run / "manifest.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ModelLoadError, match=r"manifest.json: corrupted run manifest: not UTF-8 text \(byte 7\)$"):
        read_manifest(run / "manifest.json")
