"""Metric sinks: metrics.jsonl and TensorBoard hold the same scalars; resume trims the log."""

import json

import pytest

from rmforge.errors import RmforgeError
from rmforge.train.metrics import MetricsLog, read_metrics


def test_tensorboard_mirrors_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, ["jsonl", "tensorboard"])
    for step in (1, 2, 3):
        log.write({"step": step, "loss": 1.0 / step, "lr": 1e-4 * step, "note": "text is not a scalar"})
    log.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["loss", "lr"]
    rows = read_metrics(tmp_path)
    for tag in ("loss", "lr"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([r[tag] for r in rows], rel=1e-6)


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path, ["jsonl"])
    for step in range(1, 6):
        log.write({"step": step, "loss": float(step)})
    log.close()
    MetricsLog(tmp_path, ["jsonl"], resume_step=3).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_non_finite_values_become_null(tmp_path):
    log = MetricsLog(tmp_path, ["jsonl"])
    log.write({"step": 1, "grad_norm": float("nan"), "validation": {"margin": float("inf"), "n": [1.0, float("nan")]}})
    log.close()
    row = json.loads((tmp_path / "metrics.jsonl").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert row == {"step": 1, "grad_norm": None, "validation": {"margin": None, "n": [1.0, None]}}


def test_missing_backend_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(RmforgeError, match="pip install wandb"):
        MetricsLog(tmp_path, ["wandb"])
