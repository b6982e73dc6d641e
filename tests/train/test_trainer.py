"""The Bradley-Terry trainer end to end on tiny random models (fp32, CPU)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from rmforge.config import load_config
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.errors import ConfigError, RmforgeError
from rmforge.train.config import BTConfig
from rmforge.train.metrics import read_metrics
from rmforge.train.tiny import tiny_model
from rmforge.train.trainer import train_bt

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bt")
    tiny_model("llama", root / "tiny")
    demo = generate_demo(200, seed=0)
    write_samples(root / "train.jsonl", demo[:40])
    write_samples(root / "val.jsonl", demo[100:116])
    return root


def cfg(root, out, *extra):
    return load_config(None, [f"model={root / 'tiny'}", f"data.train={root / 'train.jsonl'}",
                              f"data.validation={root / 'val.jsonl'}", f"output_dir={out}", "train.max_steps=4",
                              "train.batch_size=8", "train.precision=fp32", "train.lr=1e-3", "logging.every_steps=1",
                              "logging.progress=false", "seed=0", *extra], cls=BTConfig)


def losses(out):
    return [r["loss"] for r in read_metrics(out) if "loss" in r and "event" not in r]


def test_golden_losses_and_outputs(setup, tmp_path):
    summary = train_bt(cfg(setup, tmp_path / "run"))
    got = losses(tmp_path / "run")
    assert len(got) == 4
    assert got == pytest.approx([0.6997231245040894, 0.7867090702056885, 0.7671329379081726, 0.6645411849021912],
                                abs=1e-5)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "manifest.json", "config.yaml", "metrics.jsonl"):
        assert (tmp_path / "run" / name).exists(), name
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["pad_token_id"] != manifest["eos_token_id"]
    assert manifest["data"]["train"]["kept"] == 40 and manifest["normalization"]["std"] > 0
    assert summary["steps"] == 4


def test_saved_model_scores_like_training(setup, tmp_path):
    """Plain from_pretrained + the shared encoder reproduces the trainer's validation rewards."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmforge.data.io import load_samples
    from rmforge.reward_model.forward import score_samples
    from rmforge.train.scoring import pair_eval_metrics
    from rmforge.reward_model.tokenize import RewardEncoder

    out = tmp_path / "run"
    summary = train_bt(cfg(setup, out))
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    enc, _ = RewardEncoder(tok, 384).encode_dataset(load_samples(setup / "val.jsonl"))
    rewards = score_samples(model, enc, tok.pad_token_id, batch_size=3)
    assert pair_eval_metrics(enc, rewards)["accuracy"] == summary["validation"]["accuracy"]
    saved = [json.loads(line) for line in (out / "validation_rewards.jsonl").read_text().splitlines()]
    assert [r["id"] for r in saved] == [s.id for s in load_samples(setup / "val.jsonl")]
    assert [r["chosen"] for r in saved] == pytest.approx([r[0] for r in rewards], abs=1e-5)
    with torch.no_grad():  # unbatched forward gives the same rewards
        one = [model(torch.tensor([e.input_ids])).logits[0, 0].item() for e in enc[0].encodings]
    assert one == pytest.approx(rewards[0], abs=1e-5)


def test_micro_batching_does_not_change_results(setup, tmp_path):
    train_bt(cfg(setup, tmp_path / "a"))
    train_bt(cfg(setup, tmp_path / "b", "train.micro_batch_size=2"))
    assert losses(tmp_path / "b") == pytest.approx(losses(tmp_path / "a"), abs=1e-5)


CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # the gloo/CPU path CI runs, also on a one-GPU machine


def test_nproc_beyond_visible_gpus_is_refused():
    from rmforge.cli.train import check_nproc

    check_nproc(2, 0)  # no GPU: gloo on the CPU
    check_nproc(2, 2)
    with pytest.raises(ConfigError, match=r"launcher.nproc=2 but only 1 GPU\(s\) are visible: set "
                                          r"launcher.nproc<=1, or hide the GPUs \(CUDA_VISIBLE_DEVICES=\)"):
        check_nproc(2, 1)


def _run(args, env=None):
    return subprocess.run([sys.executable, "-m", "rmforge", "train", "bt", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def base_args(root, out, steps=8):
    return [f"model={root / 'tiny'}", f"data.train={root / 'train.jsonl'}", f"data.validation={root / 'val.jsonl'}",
            f"output_dir={out}", f"train.max_steps={steps}", "train.batch_size=4", "train.precision=fp32",
            "train.lr=1e-3", "logging.every_steps=1", "logging.progress=false", "seed=0", "checkpoint.every_steps=3"]


def test_resume_after_sigkill_matches_uninterrupted(setup, tmp_path):
    ref = _run(base_args(setup, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-2000:]
    killed = _run(base_args(setup, tmp_path / "run"), env={"RMFORGE_KILL_AT_STEP": "5"})
    assert killed.returncode == -9  # SIGKILL mid-epoch (10 batches per epoch), after the step-3 checkpoint
    assert not (tmp_path / "run" / "manifest.json").exists()
    resumed = _run(base_args(setup, tmp_path / "run") + ["resume=auto"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert losses(tmp_path / "run") == pytest.approx(losses(tmp_path / "ref"), abs=1e-6)
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(setup, tmp_path):
    args = [a for a in base_args(setup, tmp_path / "ddp", steps=4) if not a.startswith("checkpoint")]
    ddp = _run(args + ["launcher.nproc=2", "train.batch_size=8"], env=CPU_ONLY)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = _run([a.replace("/ddp", "/single") for a in args] + ["train.batch_size=8"])
    assert single.returncode == 0
    end = [r for r in read_metrics(tmp_path / "ddp") if r.get("event") == "end"][0]
    assert len(end["rank_param_checksums"]) == 2
    assert end["rank_param_checksums"][0] == end["rank_param_checksums"][1]  # replicas identical
    got, want = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert got == pytest.approx(want, abs=1e-5)  # same global batch -> same loss curve


def test_bad_inputs_fail_before_training(setup, tmp_path):
    with pytest.raises(RmforgeError, match="model 'nope/nope/x' not found"):
        train_bt(cfg(setup, tmp_path / "a", "model=nope/nope/x"))
    pointwise = tmp_path / "pw.jsonl"
    pointwise.write_text(json.dumps({"id": "x", "response": [{"role": "assistant", "content": "a"}],
                                     "scores": {"s": 1.0}, "scale": {"min": 0, "max": 4}}) + "\n")
    with pytest.raises(RmforgeError, match="holds pointwise samples.*use rmforge train pointwise"):
        train_bt(cfg(setup, tmp_path / "b", f"data.train={pointwise}"))
    with pytest.raises(RmforgeError, match="no training sample is left.*raise max_length"):
        train_bt(cfg(setup, tmp_path / "c", "max_length=8"))
    with pytest.raises(RmforgeError, match="not found"):
        train_bt(cfg(setup, tmp_path / "d", f"data.train={tmp_path / 'missing.jsonl'}"))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_text("x")
    with pytest.raises(RmforgeError, match="already exists and is not empty; set overwrite=true"):
        train_bt(cfg(setup, tmp_path / "e"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "pw.jsonl"]  # failed runs left no folder


def test_pointwise_multi_attribute(setup, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rmforge.data.schema import Sample, assistant, user
    from rmforge.train.config import PointwiseConfig

    samples = [Sample(id=str(i), prompt=[user(f"q {i}")], response=[assistant("word " * (i % 5 + 1))],
                      scores={"helpfulness": float(i % 5), "verbosity": float((i * 3) % 5)},
                      scale={"min": 0, "max": 4}) for i in range(30)]
    write_samples(tmp_path / "pw.jsonl", samples)
    args = [f"model={setup / 'tiny'}", f"data.train={tmp_path / 'pw.jsonl'}", "data.validation_fraction=0.2",
            f"output_dir={tmp_path / 'run'}", "train.max_steps=40", "train.precision=fp32", "logging.progress=false", "train.batch_size=6",
            "attribute_weights={helpfulness: 0.75, verbosity: 0.25}", "train.lr=1e-3", "logging.every_steps=1"]
    summary = train_bt(load_config(None, args, cls=PointwiseConfig))
    assert {"mse", "mae", "mae_helpfulness", "mae_verbosity"} <= set(summary["validation"])
    saved = summary["saved"]
    assert saved["choice"] == "best" and saved["why"] == "best validation loss, ties by later step"
    assert saved["validation"] == {"mse": summary["validation"]["mse"], "mae": summary["validation"]["mae"]}
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")
    assert model.config.num_labels == 2 and model.config.rmforge_reward_weights == [0.75, 0.25]
    first = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r and "event" not in r]
    assert sum(first[-5:]) < sum(first[:5])  # regression learns
    with pytest.raises(RmforgeError, match="holds pair samples.*use rmforge train bt"):
        train_bt(load_config(None, args[:1] + [f"data.train={setup / 'train.jsonl'}", f"output_dir={tmp_path / 'x'}"],
                             cls=PointwiseConfig))


def test_no_validation_data_records_no_normalization(setup, tmp_path):
    """Without validation data the manifest says there is no normalisation (it used to claim mean 0 / std 1
    'from validation rewards'); a reader looking for ``mean`` finds none."""
    from rmforge.train.selection import reward_normalization

    out = tmp_path / "run"
    train_bt(cfg(setup, out, "data.validation=null"))
    norm = json.loads((out / "manifest.json").read_text())["normalization"]
    assert norm == {"source": "none", "reason": "no validation data: mean and std of the rewards are unknown"}
    assert "mean" not in norm and "std" not in norm
    assert reward_normalization([1.0, 3.0, float("nan")]) == {"mean": 2.0, "std": 1.0, "source": "validation rewards",
                                                              "count": 2}


def test_non_finite_loss_stops_training_with_a_clear_error(setup, tmp_path):
    """An absurd learning rate without clipping makes the step-2 loss NaN: training stops before that step's
    update with the step, the value and hints; no final model, manifest or best checkpoint from the broken
    state; the CLI exits 1 with the one-line message."""
    from typer.testing import CliRunner

    from rmforge.cli import app
    from rmforge.errors import NonFiniteLossError

    args = ["train.lr=1e30", "train.max_grad_norm=null", "train.warmup_ratio=0", "eval.every_steps=1",
            "train.max_steps=6"]
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as info:
        train_bt(cfg(setup, out, *args))
    assert str(info.value) == ("training stopped at step 2 of 6: the loss is nan (not finite), so no model was saved "
                               "from this state. Try: lower train.lr (now 1e+30); set train.max_grad_norm (now off, "
                               "e.g. 1.0)")
    assert not (out / "model.safetensors").exists() and not (out / "manifest.json").exists()
    rows = read_metrics(out)
    assert rows[-1] == {"event": "non_finite_loss", "step": 2, "loss": "nan"}
    assert [r["step"] for r in rows if r.get("event") == "eval"] == [1]  # the best is step 1, before the NaN
    result = CliRunner().invoke(app, ["train", "bt", f"model={setup / 'tiny'}", f"data.train={setup / 'train.jsonl'}",
                                      f"output_dir={tmp_path / 'cli'}", "train.precision=fp32", "seed=0",
                                      "train.batch_size=8", "logging.progress=false", *args])
    assert result.exit_code == 1
    assert "error: training stopped at step 2 of 6: the loss is nan (not finite)" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "cli" / "manifest.json").exists()


def test_accuracy_ties_go_to_the_lower_validation_loss(setup, tmp_path):
    """Steps 2, 4 and 6 share the best validation accuracy (7/16); step 4 has the lowest validation loss, so it
    is the saved model (the old rule kept the earliest, step 2). The CLI, manifest and end row say so."""
    from typer.testing import CliRunner

    from rmforge.cli import app

    out = tmp_path / "run [a]"  # square brackets are printed, not taken as markup
    args = [f"model={setup / 'tiny'}", f"data.train={setup / 'train.jsonl'}", f"data.validation={setup / 'val.jsonl'}",
            f"output_dir={out}", "train.max_steps=12", "train.batch_size=8", "train.precision=fp32", "train.lr=1e-3",
            "logging.progress=false", "seed=0", "eval.every_steps=2"]
    result = CliRunner().invoke(app, ["train", "bt", *args])
    assert result.exit_code == 0, result.output
    evals = {r["step"]: (r["eval_accuracy"], r["eval_loss"]) for r in read_metrics(out) if r.get("event") == "eval"}
    assert [evals[s][0] for s in (2, 4, 6)] == [0.4375] * 3 and max(a for a, _ in evals.values()) == 0.4375
    assert min((evals[s][1], s) for s in (2, 4, 6))[1] == 4
    saved = json.loads((out / "manifest.json").read_text())["summary"]["saved"]
    assert saved == {"step": 4, "of": 12, "choice": "best",
                     "why": "best validation accuracy, ties by lower loss, then later step",
                     "validation": {"accuracy": 0.4375, "loss": pytest.approx(evals[4][1], abs=1e-6)}}
    assert f"saved model: best validation step 4 of 12 (accuracy 0.4375, loss {evals[4][1]:.4f})" in result.output
    assert [r for r in read_metrics(out) if r.get("event") == "end"][0]["saved"]["step"] == 4
    assert f"model saved to {out}\n" in result.output


def test_best_evaluation_rule():
    from rmforge.train.selection import compare_to_best, describe_saved

    best = {"best": 0.5, "best_loss": 0.7, "best_step": 2}
    assert compare_to_best("accuracy", {"accuracy": 0.5, "loss": 0.69}, best) == "better"
    assert compare_to_best("accuracy", {"accuracy": 0.5, "loss": 0.7}, best) == "tie"  # the later step wins
    assert compare_to_best("accuracy", {"accuracy": 0.5, "loss": 0.71}, best) == "worse"
    assert compare_to_best("accuracy", {"accuracy": 0.55, "loss": 9.0}, best) == "better"
    assert compare_to_best("accuracy", {"accuracy": float("nan"), "loss": 0.1}, best) is None
    assert compare_to_best("loss", {"loss": 0.5}, {"best": 0.5}) == "tie"
    assert compare_to_best("loss", {"loss": 0.4}, {"best": 0.5}) == "better"
    assert compare_to_best("accuracy", {"accuracy": 0.1}, {"best": None}) == "better"
    assert describe_saved({"step": 12, "of": 12, "choice": "last", "why": "no validation data",
                           "validation": {}}) == "saved model: last step 12 of 12 (no validation data)"


def test_overwrite_replaces_only_runs_rmforge_wrote(setup, tmp_path, monkeypatch):
    """overwrite=true clears a previous run, but refuses a folder rmforge did not create and the current
    folder, before any training and with the files untouched; a file as output_dir is refused too."""
    from rmforge.errors import OutputPathError

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(OutputPathError, match=f"refusing to replace run folder {foreign}: rmforge did not create it"):
        train_bt(cfg(setup, foreign, "overwrite=true"))
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    monkeypatch.chdir(foreign)
    with pytest.raises(OutputPathError, match="it is the current folder or one of its parents"):
        train_bt(cfg(setup, ".", "overwrite=true"))
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        train_bt(cfg(setup, tmp_path / "file"))
    run = tmp_path / "run"
    train_bt(cfg(setup, run, "train.max_steps=1"))
    assert (run / ".rmforge-output").is_file()
    (run / "stale.txt").write_text("from the first run")
    train_bt(cfg(setup, run, "train.max_steps=3", "overwrite=true", "eval.every_steps=1", "checkpoint.every_steps=1"))
    assert not (run / "stale.txt").exists() and json.loads((run / "manifest.json").read_text())["summary"]["steps"] == 3
    assert oct((run / "manifest.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    for path in [run / "model.safetensors", *(run / "checkpoints").rglob("*")]:  # save_pretrained writes 0600
        assert oct(path.stat().st_mode & 0o777) == oct((0o777 if path.is_dir() else 0o666) & ~_umask()), path


def _umask():
    from rmforge.fileio import umask

    return umask()


def test_report_to_tensorboard_through_accelerate(setup, tmp_path):
    """logging.report_to=[tensorboard]: Accelerate's tracker writes an events file holding the training loss
    of every logged step (the same values as metrics.jsonl); an unknown tracker fails before any output."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rmforge.errors import ConfigError

    out = tmp_path / "run"
    train_bt(cfg(setup, out, "logging.report_to=[tensorboard]", "train.max_steps=3"))
    events = list((out / "trackers" / "rmforge").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(out / "trackers" / "rmforge"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3]
    assert [e.value for e in acc.Scalars("loss")] == pytest.approx(losses(out), rel=1e-6)
    assert [e.step for e in acc.Scalars("eval_accuracy")] == [3]
    with pytest.raises(ConfigError, match="unknown tracker 'tb'"):
        train_bt(cfg(setup, tmp_path / "bad", "logging.report_to=[tb]"))
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_two_process_early_stop_stops_every_rank(setup, tmp_path):
    """Early stopping is decided on the main process and shared: both ranks leave the loop at the same step
    (before, rank 1 kept training and the run hung in the next all-reduce)."""
    args = [a for a in base_args(setup, tmp_path / "ddp", steps=8) if not a.startswith("checkpoint")]
    ddp = _run(args + ["launcher.nproc=2", "train.batch_size=8", "eval.every_steps=1",
                       "eval.early_stopping_patience=1"], env=CPU_ONLY)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    rows = read_metrics(tmp_path / "ddp")
    assert [r["step"] for r in rows if r.get("event") == "early_stop"] == [5]
    end = [r for r in rows if r.get("event") == "end"][0]
    assert end["steps"] == 5 and end["saved"]["step"] == 4
    assert end["rank_param_checksums"][0] == end["rank_param_checksums"][1]


def test_damaged_checkpoint_is_a_clear_error(setup, tmp_path):
    out = tmp_path / "run"
    train_bt(cfg(setup, out, "checkpoint.every_steps=2"))
    weights = out / "checkpoints" / "step-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RmforgeError, match=r"cannot resume from .*step-2 \(SafetensorError: Error while deserializing "
                                           r"header.*\): the checkpoint is damaged or from another model"):
        train_bt(cfg(setup, tmp_path / "again", f"resume={out / 'checkpoints' / 'step-2'}"))
    assert not (tmp_path / "again").exists()


def test_saved_model_reason_when_the_best_checkpoint_is_elsewhere():
    """Resumed from another folder's checkpoint (resume=PATH, new output_dir), the best step's weights are not in
    this folder, so the last step is saved: the reason says so (it used to claim 'no finite validation accuracy')."""
    from types import SimpleNamespace

    from rmforge.train.selection import saved_model

    cfg = SimpleNamespace(kind="train-bt", eval=SimpleNamespace(metric="auto"),
                          checkpoint=SimpleNamespace(save_best=True))
    metrics = {"accuracy": 0.5, "loss": 0.7}
    saved = saved_model(cfg, {"step": 6, "best_step": 2}, False, True, metrics)
    assert (saved["step"], saved["choice"]) == (6, "last")
    assert saved["why"] == "the best validation step 2 has no checkpoints/best in this run folder"
    assert saved_model(cfg, {"step": 6, "best_step": None}, False, True, metrics)["why"] == \
        "no finite validation accuracy"


def test_non_finite_loss_seen_on_another_process_is_named(tmp_path):
    """Under DDP the main process may see a finite loss while another sees inf: every process stops, and the
    message gives the other process's kind of value (it always said nan)."""
    from types import SimpleNamespace

    from rmforge.errors import NonFiniteLossError
    from rmforge.train.selection import check_finite_loss

    class Engine:
        world, precision = 2, "fp32"

        def __init__(self, others):
            self.others = others

        def sum(self, values):
            return [a + b for a, b in zip(values, self.others)]

    class Log:
        def __init__(self):
            self.rows = []

        def write(self, row):
            self.rows.append(row)

        def close(self):
            pass

    cfg = SimpleNamespace(train=SimpleNamespace(lr=1.0, max_grad_norm=1.0))
    check_finite_loss(Engine([0.0, 0.0]), cfg, None, 3, 9, tmp_path, Log())  # nobody saw one: no stop
    for others, value in (([1.0, 0.0], "inf"), ([1.0, 1.0], "nan")):
        log = Log()
        with pytest.raises(NonFiniteLossError, match=f"training stopped at step 3 of 9: the loss is {value} "):
            check_finite_loss(Engine(others), cfg, None, 3, 9, tmp_path, log)
        assert log.rows[-1] == {"event": "non_finite_loss", "step": 3, "loss": value}


def test_early_stop_evaluates_its_step_once(setup, tmp_path):
    """An early stop at step 5 ends the run at step 5, which was just evaluated: the final evaluation reuses that
    pass (it ran the validation set again and logged a second eval row for step 5, to the trackers too)."""
    out = tmp_path / "run"
    summary = train_bt(cfg(setup, out, "train.max_steps=12", "eval.every_steps=1", "eval.early_stopping_patience=1"))
    rows = read_metrics(out)
    evals = [r["step"] for r in rows if r.get("event") == "eval"]
    assert evals == [1, 2, 3, 4, 5]
    assert [r["step"] for r in rows if r.get("event") == "early_stop"] == [5]
    assert summary["steps"] == 5 and summary["saved"]["step"] == 4
    step4 = [r for r in rows if r.get("event") == "eval" and r["step"] == 4][0]
    assert summary["validation"]["loss"] == pytest.approx(step4["eval_loss"], abs=1e-6)  # the best step's weights


def test_read_only_output_folder_fails_before_the_model_loads(setup, read_only_dir, monkeypatch):
    """A probe write decides whether output_dir can be created (os.access says yes to root on a read-only mount,
    so the run used to load data and model and fail later)."""
    from rmforge.errors import OutputPathError
    from rmforge.train import trainer

    ro = read_only_dir
    monkeypatch.setattr(trainer, "prepare", lambda *a, **k: pytest.fail("data and model loaded"))
    with pytest.raises(OutputPathError) as err:
        train_bt(cfg(setup, ro / "run"))
    assert str(err.value) == (f"cannot create run folder {ro / 'run'}: folder {ro} is not writable "
                              "(Read-only file system)")
    assert list(ro.iterdir()) == []
