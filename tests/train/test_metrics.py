"""Metric sinks: metrics.jsonl and Accelerate's trackers (TensorBoard) hold the same scalars; resume trims the log."""

import json
from pathlib import Path

import pytest

from rmforge.errors import RmforgeError
from rmforge.train.metrics import MetricsLog, flat_config, read_metrics


def test_tensorboard_mirrors_jsonl(tmp_path):
    """Accelerate's TensorBoard tracker gets the scalars of training and eval rows (not start/end rows),
    under RUN_DIR/trackers/PROJECT, and the flattened config as hyperparameters."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, ["tensorboard"], config={"train": {"lr": 1e-4, "betas": [0.9, 0.99]}, "x": None})
    assert [type(t).__name__ for t in log.trackers] == ["TensorBoardTracker"]
    log.write({"event": "start", "step": 0, "total_steps": 3})
    for step in (1, 2, 3):
        log.write({"step": step, "loss": 1.0 / step, "lr": 1e-4 * step, "note": "text is not a scalar"})
    log.write({"event": "eval", "step": 3, "eval_loss": 0.25})
    log.close()
    log.close()  # a second close does nothing
    acc = EventAccumulator(str(tmp_path / "trackers" / "rmforge"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["eval_loss", "loss", "lr"]
    rows = [r for r in read_metrics(tmp_path) if "event" not in r]
    for tag in ("loss", "lr"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([r[tag] for r in rows], rel=1e-6)
    assert [(e.step, e.value) for e in acc.Scalars("eval_loss")] == [(3, 0.25)]
    assert flat_config({"train": {"lr": 1e-4, "betas": [0.9, 0.99]}, "x": None, "on": True}) == {
        "train.lr": 1e-4, "train.betas": "[0.9, 0.99]", "on": True}


def test_report_to_names_are_accelerates_trackers():
    """logging.report_to takes Accelerate's tracker names (accelerate.tracking.LOGGER_TYPE_TO_CLASS), none by
    default; ``none`` and the old ``jsonl`` mean no tracker (metrics.jsonl is always written)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    from rmforge.config import load_config
    from rmforge.errors import ConfigError
    from rmforge.train.config import TRACKERS, BTConfig

    assert TRACKERS == tuple(sorted(LOGGER_TYPE_TO_CLASS))
    assert load_config(None, [], cls=BTConfig).logging.report_to == []
    assert load_config(None, ["logging.report_to=[jsonl, tensorboard]"], cls=BTConfig).logging.report_to == [
        "tensorboard"]
    assert load_config(None, ["logging.report_to=none"], cls=BTConfig).logging.report_to == []
    assert load_config(None, ["logging.report_to=tensorboard,wandb"], cls=BTConfig).logging.report_to == [
        "tensorboard", "wandb"]
    with pytest.raises(ConfigError, match="logging.report_to: unknown tracker 'tensorbord'; choose from aim, "
                                          "clearml, comet_ml, dvclive, mlflow, swanlab, tensorboard, trackio, wandb"):
        load_config(None, ["logging.report_to=[tensorbord]"], cls=BTConfig)
    with pytest.raises(ConfigError, match="tracker_options has wandb, which is not in report_to"):
        load_config(None, ["logging.tracker_options={wandb: {entity: x}}"], cls=BTConfig)
    with pytest.raises(ConfigError, match="unknown tracker 'nope'"):
        MetricsLog(Path("/nonexistent"), ["nope"])


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path, ["jsonl"])
    for step in range(1, 6):
        log.write({"step": step, "loss": float(step)})
    log.write({"event": "end", "steps": 5, "saved": {"step": 5}})
    log.close()
    MetricsLog(tmp_path, ["jsonl"], resume_step=3).close()
    # the end row has no step: it was kept as "step 0", so the continued run's log began with the old run's
    # end row (the first end row readers and plots found described a model about to be replaced)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_non_finite_values_become_null(tmp_path):
    log = MetricsLog(tmp_path, ["jsonl"])
    log.write({"step": 1, "grad_norm": float("nan"), "validation": {"margin": float("inf"), "n": [1.0, float("nan")]}})
    log.close()
    row = json.loads((tmp_path / "metrics.jsonl").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert row == {"step": 1, "grad_norm": None, "validation": {"margin": None, "n": [1.0, None]}}


def test_missing_backend_is_a_clear_error(tmp_path):
    from accelerate.tracking import get_available_trackers

    if "wandb" in {str(t) for t in get_available_trackers()}:
        pytest.skip("wandb is installed")
    with pytest.raises(RmforgeError, match="logging.report_to has wandb but its package is missing: pip install wandb"):
        MetricsLog(tmp_path, ["wandb"])
    assert list(tmp_path.iterdir()) == []


def test_resume_drops_a_line_cut_short_by_a_kill(tmp_path):
    """A kill -9 in the middle of a write leaves half a JSON line: resuming drops it (it used to raise a
    JSONDecodeError traceback) and keeps the rows up to the checkpoint."""
    log = MetricsLog(tmp_path, ["jsonl"])
    for step in range(1, 5):
        log.write({"step": step, "loss": float(step)})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 5, "lo')
    MetricsLog(tmp_path, ["jsonl"], resume_step=3).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_resumed_tensorboard_does_not_show_steps_twice(tmp_path):
    """The interrupted run logged steps 1-4 to TensorBoard, the resumed run (checkpoint at step 2) logs 3-5:
    TensorBoard shows each step once, the resumed run's values (before: 3 and 4 twice, both runs' values)."""
    pytest.importorskip("tensorboard")
    import time

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, ["tensorboard"])
    for step in range(1, 5):
        log.write({"step": step, "loss": float(step)})
    log.close()
    time.sleep(1.1)  # TensorBoard names event files by the second
    log = MetricsLog(tmp_path, ["tensorboard"], resume_step=2)
    for step in range(3, 6):
        log.write({"step": step, "loss": 10.0 + step})
    log.close()
    acc = EventAccumulator(str(tmp_path / "trackers" / "rmforge"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0), (5, 15.0)]
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]


def test_a_tracker_that_cannot_start_is_one_line_and_leaves_no_run_folder(tmp_path, monkeypatch):
    """A tracker failing at start (no W&B login, an unreachable MLflow server) is a one-line RmforgeError naming
    it, the trackers already started are finished, and train bt removes the run folder it had just made (before:
    the tracker's own exception, a traceback, and an empty run folder left behind)."""
    pytest.importorskip("tensorboard")
    import accelerate.tracking as tracking

    from rmforge.config import load_config
    from rmforge.data.demo import generate_demo
    from rmforge.data.io import write_samples
    from rmforge.train.config import BTConfig
    from rmforge.train.tiny import tiny_model
    from rmforge.train.trainer import train_bt

    finished = []

    class Broken(tracking.TensorBoardTracker):
        def start(self):
            raise RuntimeError("api_key not configured (no-tty)\ncall wandb.login()")

    class Recorded(tracking.TensorBoardTracker):
        def finish(self):
            finished.append(self.run_name)
            super().finish()

    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, "tensorboard", Broken)
    with pytest.raises(RmforgeError) as err:
        MetricsLog(tmp_path / "a", ["tensorboard"])
    assert str(err.value) == ("logging.report_to: the tensorboard tracker could not start (RuntimeError: api_key not "
                              "configured (no-tty)); check its login/server, or logging.tracker_options.tensorboard")
    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, "aim", Broken)
    monkeypatch.setattr(tracking, "get_available_trackers", lambda: ["tensorboard", "aim"])
    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, "tensorboard", Recorded)
    from rmforge.train.metrics import start_trackers

    with pytest.raises(RmforgeError, match="the aim tracker could not start"):
        start_trackers(["tensorboard", "aim"], tmp_path / "b", project="p")
    assert finished == ["p"]  # the started TensorBoard tracker was finished

    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, "tensorboard", Broken)
    tiny_model("llama", tmp_path / "tiny")
    write_samples(tmp_path / "train.jsonl", generate_demo(16, seed=0))
    out = tmp_path / "run"
    with pytest.raises(RmforgeError, match="the tensorboard tracker could not start"):
        train_bt(load_config(None, [f"model={tmp_path / 'tiny'}", f"data.train={tmp_path / 'train.jsonl'}",
                                    f"output_dir={out}", "train.max_steps=1", "logging.progress=false",
                                    "logging.report_to=[tensorboard]"], cls=BTConfig))
    assert not out.exists()


def test_window_summary_counts_tokens_and_seconds():
    """Logged rows carry the tokens the model computed and the window's seconds (benchmarks and the GPU
    check read computed tokens per step from metrics.jsonl), not only their ratio."""
    from types import SimpleNamespace

    from rmforge.train.metrics import Window

    window = Window()
    for tokens in (300, 500):
        window.add({"loss_sum": 1.4, "samples": 2, "pairs": 2, "correct": 1, "margin_sum": 0.5, "tokens": tokens,
                    "r_sum": 0.2, "r_count": 4, "r_min": -1.0, "r_max": 1.0})
    row = window.summary(SimpleNamespace(sum=lambda values: values), 2.0)
    assert (row["tokens"], row["elapsed_s"], row["tokens_per_s"], row["pairs_per_s"]) == (800, 2.0, 400.0, 2.0)
