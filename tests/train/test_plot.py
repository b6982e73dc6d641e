"""Training plots: PNG files from hand-written run directories, the CLI verb, and one real tiny run (slow)."""

import json
import math

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("matplotlib")

from matplotlib.image import imread

from rmforge.cli.plot import plot
from rmforge.errors import RmforgeError
from rmforge.train.plot import (
    VALIDATION_REWARDS,
    plot_run,
    read_validation_rewards,
    save_validation_rewards,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CURVES = ["loss.png", "accuracy.png", "margin.png", "lr.png"]
runner = CliRunner()


def _cli() -> typer.Typer:
    """A Typer app with the ``plot`` verb registered the way rmforge.cli does it."""
    app = typer.Typer(add_completion=False)
    app.callback()(lambda: None)
    app.command("plot")(plot)
    return app


def _write_run(run_dir, steps=10, eval_every=3, nan_at=(), lines=()):
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"event": "start", "step": 0, "total_steps": steps}]
    for s in range(1, steps + 1):
        loss = float("nan") if s in nan_at else 0.7 - 0.03 * s
        rows.append({"step": s, "loss": loss, "accuracy": min(1.0, 0.5 + 0.04 * s), "margin": 0.1 * s,
                     "lr": 1e-5 * (1 - s / (steps + 1)), "grad_norm": None if s in nan_at else 2.0 / s,
                     "pairs_per_s": 12.0, "epoch": s / steps})
        if eval_every and s % eval_every == 0:
            rows.append({"event": "eval", "step": s, "eval_loss": 0.72 - 0.02 * s,
                         "eval_accuracy": 0.5 + 0.03 * s, "eval_margin": 0.08 * s})
    rows.append({"event": "end", "steps": steps})
    text = "".join(json.dumps(r) + "\n" for r in rows) + "".join(lines)
    (run_dir / "metrics.jsonl").write_text(text)
    return run_dir


def _assert_png(path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_all_figures_written_as_pngs(tmp_path):
    run = _write_run(tmp_path / "run")
    save_validation_rewards(run, [1.0, 0.5, 2.0, 0.1], [0.2, 0.7, -1.0, 0.0], ["a", "b", "c", "d"])
    files = plot_run(run)
    assert [f.name for f in files] == CURVES + ["rewards.png"]
    for f in files:
        assert f.parent == run / "plots"
        _assert_png(f)
    assert not [p for p in (run / "plots").iterdir() if p.suffix != ".png"]  # no temporary files left


def test_train_rows_only_and_missing_rewards(tmp_path):
    run = _write_run(tmp_path / "run", eval_every=0)
    notes = []
    files = plot_run(run, out_dir=tmp_path / "figs", note=notes.append)
    assert [f.name for f in files] == CURVES
    _assert_png(tmp_path / "figs" / "loss.png")
    assert any("rewards.png" in n and VALIDATION_REWARDS in n for n in notes)


def test_single_step_nan_and_junk_lines(tmp_path):
    run = _write_run(tmp_path / "one", steps=1, eval_every=1, lines=['{"step": 2, "loss": 0.'])
    notes = []
    assert [f.name for f in plot_run(run, note=notes.append)] == CURVES
    assert any("unreadable" in n for n in notes)
    run = _write_run(tmp_path / "nan", steps=4, nan_at=(1, 2, 3, 4))  # loss all NaN, metrics still plotted
    names = [f.name for f in plot_run(run)]
    assert "loss.png" in names  # the eval loss is finite
    for name in names:
        _assert_png(run / "plots" / name)


def test_no_training_rows_skips_with_notes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"event": "start", "step": 0}) + "\n")
    notes = []
    assert plot_run(run, note=notes.append) == []
    assert len(notes) == 5


def test_rewards_in_memory_and_nonfinite(tmp_path):
    run = _write_run(tmp_path / "run", steps=0)  # no training rows: only the rewards figure is drawn
    files = plot_run(run, validation_rewards=([1.0, float("nan"), 3.0], [0.0, 1.0, 3.0]))
    assert [f.name for f in files] == ["rewards.png"]
    _assert_png(files[0])
    notes = []
    files = plot_run(run, validation_rewards=([float("nan")], [1.0]), note=notes.append)
    assert "rewards.png" not in [f.name for f in files] and any("no finite" in n for n in notes)


def test_save_validation_rewards_roundtrip(tmp_path):
    path = save_validation_rewards(tmp_path, [1.5, float("inf")], [0.5, -2.0], ["x", "y"])
    assert path == tmp_path / VALIDATION_REWARDS
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"id": "x", "chosen": 1.5, "rejected": 0.5}, {"id": "y", "chosen": None, "rejected": -2.0}]
    chosen, rejected = read_validation_rewards(path)
    assert chosen[0] == 1.5 and math.isnan(chosen[1]) and rejected == [0.5, -2.0]
    with pytest.raises(ValueError, match="differ in length"):
        save_validation_rewards(tmp_path, [1.0], [], ["x"])
    assert [p.name for p in tmp_path.iterdir()] == [VALIDATION_REWARDS]


def test_not_a_run_dir(tmp_path):
    with pytest.raises(RmforgeError, match="has no metrics.jsonl: is it an rmforge run directory?"):
        plot_run(tmp_path)
    result = runner.invoke(_cli(), ["plot", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "has no metrics.jsonl: is it an rmforge run directory?" in result.output


def test_cli_lists_files(tmp_path):
    run = _write_run(tmp_path / "run")
    result = runner.invoke(_cli(), ["plot", str(run), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    for name in CURVES:
        assert str(tmp_path / "o" / name) in result.output
    assert "note:" in result.output and "4 plot(s) written" in result.output


@pytest.mark.slow
def test_tiny_training_run_then_plot(tmp_path):
    from rmforge.cli import app
    from rmforge.data.demo import write_demo
    from rmforge.train.tiny import tiny_model

    model = tiny_model("bert", save_dir=tmp_path / "model")
    write_demo(tmp_path / "data")
    out = tmp_path / "run"
    train = runner.invoke(app, ["train", "bt", f"model={model}", f"data.train={tmp_path / 'data' / 'train.jsonl'}",
                                f"data.validation={tmp_path / 'data' / 'test.jsonl'}", "data.limit=40",
                                f"output_dir={out}", "train.max_steps=6", "logging.every_steps=1",
                                "eval.every_steps=2", "logging.progress=false"])
    assert train.exit_code == 0, train.output
    if not (out / VALIDATION_REWARDS).exists():  # until the trainer saves them itself
        save_validation_rewards(out, [0.3, 0.1, 0.9], [0.2, 0.4, -0.1], ["p1", "p2", "p3"])
    result = runner.invoke(_cli(), ["plot", str(out)])
    assert result.exit_code == 0, result.output
    for name in CURVES + ["rewards.png"]:
        _assert_png(out / "plots" / name)


def _labels(fig):
    return fig.axes[0].get_legend_handles_labels()[1]


def test_saved_step_is_marked(tmp_path):
    """The step the final model comes from is drawn on the loss, accuracy and margin figures: a dashed line
    labelled from the end row's ``saved`` record, and a star on the validation curve at that step."""
    from rmforge.train.plot import figures

    run = _write_run(tmp_path / "run", steps=10, eval_every=3)
    rows = (run / "metrics.jsonl").read_text().splitlines()
    rows[-1] = json.dumps({"event": "end", "steps": 10, "best_step": 6,
                           "saved": {"step": 6, "of": 10, "choice": "best", "why": "best validation accuracy"}})
    (run / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    built = figures(run)
    for name in ("loss.png", "accuracy.png", "margin.png"):
        fig = built[name]()
        assert "saved model: best validation step 6 of 10" in _labels(fig), name
        ax = fig.axes[0]
        stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
        assert len(stars) == 1 and list(stars[0].get_xdata()) == [6]
        vlines = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [6, 6]]
        assert len(vlines) == 1 and vlines[0].get_linestyle() == "--"
    eval_loss_at_6 = 0.72 - 0.02 * 6
    assert [ln for ln in built["loss.png"]().axes[0].get_lines()
            if ln.get_marker() == "*"][0].get_ydata()[0] == pytest.approx(eval_loss_at_6)
    assert [f.name for f in plot_run(run)] == CURVES


def test_saved_step_of_older_runs_and_unfinished_runs(tmp_path):
    from rmforge.train.plot import figures

    old = _write_run(tmp_path / "old", steps=10)
    rows = (old / "metrics.jsonl").read_text().splitlines()
    rows[-1] = json.dumps({"event": "end", "steps": 10, "best_step": 9})  # earlier versions: best_step only
    (old / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    assert "saved model: step 9 of 10" in _labels(figures(old)["loss.png"]())
    unfinished = _write_run(tmp_path / "unfinished", steps=4)
    rows = (unfinished / "metrics.jsonl").read_text().splitlines()[:-1]  # killed: no end row
    (unfinished / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    assert not [label for label in _labels(figures(unfinished)["loss.png"]()) if label.startswith("saved model")]


def test_cli_paths_with_brackets_are_printed_as_they_are(tmp_path):
    run = _write_run(tmp_path / "run [v2]")
    result = runner.invoke(_cli(), ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert str(run / "plots" / "loss.png") in result.output.replace("\n", "")
