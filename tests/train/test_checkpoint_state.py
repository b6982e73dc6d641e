"""Training state that survives sharding: checkpoints written and read through Accelerate by every process
(two gloo processes, DDP and FSDP2 on the CPU), mismatched weights refused, the earlier layout still read."""

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rmforge.config import load_config
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.errors import RmforgeError
from rmforge.train.config import BTConfig
from rmforge.train.metrics import read_metrics
from rmforge.train.tiny import tiny_model
from rmforge.train.trainer import train_bt

REPO = Path(__file__).resolve().parents[2]
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # the gloo/CPU path, also on a GPU machine


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckstate")
    tiny_model("llama", root / "tiny")
    demo = generate_demo(200, seed=0)
    write_samples(root / "train.jsonl", demo[:40])
    write_samples(root / "val.jsonl", demo[100:116])
    return root


def args(root, out, *extra):
    """8 steps of 4 pairs, dropout on (a resume must restore each process's RNG), checkpoints at 3 and 6."""
    return [f"model={root / 'tiny'}", f"data.train={root / 'train.jsonl'}", f"data.validation={root / 'val.jsonl'}",
            f"output_dir={out}", "train.max_steps=8", "train.batch_size=4", "train.precision=fp32", "train.lr=1e-3",
            "model_options.dropout=0.1", "logging.every_steps=1", "logging.progress=false", "seed=0",
            "checkpoint.every_steps=3", *extra]


def losses(out):
    return [r["loss"] for r in read_metrics(out) if "loss" in r and "event" not in r]


def same_weights(a, b, atol=0.0):
    x, y = load_file(Path(a) / "model.safetensors"), load_file(Path(b) / "model.safetensors")
    return x.keys() == y.keys() and all(torch.allclose(x[k], y[k], rtol=0, atol=atol) for k in x)


def _port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cli, env=None):
    done = subprocess.run(cli, capture_output=True, text=True, env={**os.environ, **CPU_ONLY, **(env or {})},
                          timeout=300, cwd=REPO)
    return done


def ddp(root, out, *extra, env=None):
    return run([sys.executable, "-m", "rmforge", "train", "bt", *args(root, out, *extra), "launcher.nproc=2"], env)


def fsdp(root, out, *extra, env=None):
    """The shipped configs/accelerate/fsdp.yaml on two CPU processes (RMFORGE_FSDP_ON_CPU: Accelerate turns
    FSDP on only for GPUs, torch's FSDP2 runs over gloo)."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/fsdp.yaml",
              "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_port())]
    return run(launch + ["-m", "rmforge", "train", "bt", *args(root, out, *extra)],
               {"RMFORGE_FSDP_ON_CPU": "1", **(env or {})})


@pytest.fixture(scope="module")
def reference(setup):
    """An uninterrupted two-process DDP run: the golden losses and weights."""
    out = setup / "reference"
    done = ddp(setup, out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def kill_and_resume(launch, setup, out):
    killed = launch(setup, out, env={"RMFORGE_KILL_AT_STEP": "5"})
    assert killed.returncode != 0  # every process SIGKILLed itself after step 5, after the step-3 checkpoint
    assert not (out / "manifest.json").exists()
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step-")] == ["step-3"]
    resumed = launch(setup, out, "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["resumed_from"] for r in read_metrics(out) if r.get("event") == "start"][-1].endswith("step-3")


@pytest.mark.slow
def test_two_process_kill_and_resume_matches_uninterrupted(setup, reference, tmp_path):
    out = tmp_path / "run"
    kill_and_resume(ddp, setup, out)
    step = out / "checkpoints" / "step-6"  # written by the resumed run: each process its own RNG state
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl", "random_states_1.pkl", "model.safetensors",
            "trainer_state.json"} <= {p.name for p in step.iterdir()}
    assert losses(out) == pytest.approx(losses(reference), abs=1e-6)
    assert same_weights(out, reference, atol=1e-6)


@pytest.mark.slow
def test_fsdp2_kill_and_resume_matches_uninterrupted(setup, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "run"
    done = fsdp(setup, reference)  # its own golden run: the model loads on the meta device off rank 0 (the shipped
    assert done.returncode == 0, done.stderr[-3000:]  # config's cpu_ram_efficient_loading), so RNG draws differ
    kill_and_resume(fsdp, setup, out)
    step = out / "checkpoints" / "step-6"
    optim = torch.load(step / "optimizer.bin", weights_only=True)
    assert "model.layers.0.self_attn.q_proj.weight" in optim["state"]  # FSDP's gathered optimizer state (by name)
    end = [r for r in read_metrics(out) if r.get("event") == "end"][0]
    assert end["rank_param_checksums"][0] == end["rank_param_checksums"][1]
    assert losses(out) == pytest.approx(losses(reference), abs=1e-6)
    assert same_weights(out, reference, atol=1e-6)
    assert same_weights(step, out / "checkpoints" / "step-6")  # the gathered checkpoint is plain from_pretrained
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(step)
    assert set(model.state_dict()) >= set(load_file(step / "model.safetensors"))


def cfg(root, out, *extra):
    return load_config(None, [a for a in args(root, out, *extra)], cls=BTConfig)


def test_resume_from_a_checkpoint_of_the_earlier_layout(setup, tmp_path):
    """optimizer.pt / scheduler.pt / rng.pt + trainer_state.json (rmforge before Accelerate's state) still resume."""
    ref = tmp_path / "ref"
    train_bt(cfg(setup, ref))
    old = tmp_path / "old-step-3"
    new = ref / "checkpoints" / "step-3"
    old.mkdir()
    for f in new.iterdir():
        if f.suffix not in (".bin", ".pkl"):
            (old / f.name).write_bytes(f.read_bytes())
    torch.save(torch.load(new / "optimizer.bin", weights_only=False), old / "optimizer.pt")
    torch.save(torch.load(new / "scheduler.bin", weights_only=False), old / "scheduler.pt")
    rng = torch.load(new / "random_states_0.pkl", weights_only=False)
    torch.save({"python": rng["random_state"], "numpy": rng["numpy_random_seed"], "torch": rng["torch_manual_seed"]},
               old / "rng.pt")
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # restored from rng.pt, not left as they are
    out = tmp_path / "resumed"
    train_bt(cfg(setup, out, f"resume={old}"))
    assert losses(out) == pytest.approx(losses(ref)[3:], abs=1e-6)
    assert same_weights(out, ref, atol=1e-6)


def test_resume_refuses_mismatched_weights(setup, tmp_path):
    ref = tmp_path / "ref"
    train_bt(cfg(setup, ref, "train.max_steps=4"))
    step = ref / "checkpoints" / "step-3"
    weights = load_file(step / "model.safetensors")
    weights["extra.weight"] = weights.pop("score.weight")
    save_file(weights, step / "model.safetensors")
    with pytest.raises(RmforgeError, match=r"^\S*step-3/model.safetensors does not match the model: 1 missing key\(s\), "
                                           r"first \['score.weight'\]; 1 unexpected key\(s\), first \['extra.weight'\]"):
        train_bt(cfg(setup, tmp_path / "again", f"resume={step}"))
    assert not (tmp_path / "again").exists()


def test_best_model_reload_refuses_mismatched_weights(setup, tmp_path):
    """The final model is the best evaluation's: its reload used strict=False and took any file silently."""
    from rmforge.train import checkpoint as ckpt_io
    from rmforge.train.engine import Engine
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(setup / "tiny", num_labels=1)
    engine = Engine("fp32")
    best = tmp_path / "best"
    ckpt_io.save_model(engine, model, best)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.score.weight.add_(1.0)
    ckpt_io.load_model(engine, model, best)  # a good file: back to the saved weights
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    weights = load_file(best / "model.safetensors")
    weights["model.layers.9.mlp.up_proj.weight"] = weights.pop("model.norm.weight")
    save_file(weights, best / "model.safetensors")
    with pytest.raises(RmforgeError, match=r"best/model.safetensors does not match the model: 1 missing key\(s\), "
                                           r"first \['model.norm.weight'\]; 1 unexpected key\(s\)"):
        ckpt_io.load_model(engine, model, best)


def test_checkpoint_folder_is_plain_from_pretrained_and_scores_like_training(setup, tmp_path):
    """checkpoints/step-N holds the whole model, tokenizer and trainer state; loaded with plain from_pretrained it
    gives the validation metrics the run logged at that step."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmforge.data.io import load_samples
    from rmforge.reward_model.forward import score_samples
    from rmforge.reward_model.tokenize import RewardEncoder
    from rmforge.train.scoring import pair_eval_metrics

    out = tmp_path / "run"
    config = cfg(setup, out, "train.max_steps=4", "eval.every_steps=3")
    train_bt(config)
    step = out / "checkpoints" / "step-3"
    assert json.loads((step / "trainer_state.json").read_text())["step"] == 3
    model = AutoModelForSequenceClassification.from_pretrained(step).eval()
    tok = AutoTokenizer.from_pretrained(step)
    enc, _ = RewardEncoder(tok, config.max_length).encode_dataset(load_samples(setup / "val.jsonl"))
    got = pair_eval_metrics(enc, score_samples(model, enc, tok.pad_token_id, batch_size=4))
    logged = [r for r in read_metrics(out) if r.get("event") == "eval" and r["step"] == 3][0]
    assert got["accuracy"] == logged["eval_accuracy"]
    assert got["loss"] == pytest.approx(logged["eval_loss"], abs=1e-5)
