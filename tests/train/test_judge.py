"""rmforge train judge (local backend): SFT warm-start then GRPO steps with TRL on a tiny model; rewards,
judge metrics and KL are logged; the run directory is complete; bad input fails before training."""

import json

import pytest

from rmforge.config import load_config
from rmforge.errors import ConfigError, DataError, RmforgeError
from rmforge.train.judge import train_judge
from rmforge.train.judge_config import JudgeConfig, SFTConfig
from rmforge.train.metrics import read_metrics
from rmforge.train.sft import train_sft


def _rows(path, n=16):
    rows = [{"input": [{"role": "user", "content": f"which is better {i // 2}"}],
             "output": f"<preference>{'AB'[i % 2]}</preference>",
             "metadata": {"id": f"p{i // 2}", "chosen_position": "AB"[i % 2], "subset": "xy"[i // 2 % 2]}}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A tiny llama SFT-ed on the judge rows, so that it answers in the verdict format."""
    from rmforge.train.tiny import tiny_model

    root = tmp_path_factory.mktemp("judge")
    data = _rows(root / "p.jsonl")
    model = tiny_model("llama", root / "m", seed=2)
    train_sft(load_config(None, [f"model={model}", f"data.train={data}", f"output_dir={root / 'sft'}",
                                 "train.max_steps=40", "train.batch_size=8", "train.lr=1e-2",
                                 "train.scheduler=constant", "logging.progress=false"], cls=SFTConfig))
    return root / "sft", data


def test_grpo_steps_log_rewards_and_judge_metrics(tmp_path, warm):
    model, data = warm
    cfg = load_config(None, [f"model={model}", f"data.train={data}", f"data.validation={data}",
                             f"output_dir={tmp_path / 'run'}", "mode=pairwise", "backend=local",
                             "train.max_steps=2", "train.batch_size=2", "train.lr=1e-5", "grpo.num_generations=4",
                             "grpo.max_completion_length=24", "grpo.beta=0.01", "logging.progress=false", "eval.every_steps=1",
                             "seed=1"], cls=JudgeConfig)
    summary = train_judge(cfg)
    steps = [r for r in read_metrics(tmp_path / "run") if "event" not in r and "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for row in steps:
        # TRL's mean reward and rmforge's judge statistics come from the same completions
        assert row["judge/reward_mean"] == pytest.approx(row["reward"], abs=1e-6)
        assert row["judge/parse_failure_rate"] < 1.0  # the SFT warm-start answers in the format
        for key in ("kl", "completions/mean_length", "judge/verdict_accuracy"):
            assert key in row
        groups = [row[k] for k in row if k.startswith("judge/accuracy/")]  # the step's 2 comparisons' subsets
        assert groups and all(0 <= x <= 1 for x in groups), row
    evals = [r for r in read_metrics(tmp_path / "run") if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [1, 2] and evals[-1]["eval_n"] == 16
    val = summary["validation"]
    assert val["n"] == 16 and val["pairs_in_both_orders"] == 8 and 0 <= val["accuracy"] <= 1
    for name in ("manifest.json", "config.yaml", "model.safetensors"):
        assert (tmp_path / "run" / name).exists()


def test_grpo_lora(tmp_path, warm):
    model, data = warm
    cfg = load_config(None, [f"model={model}", f"data.train={data}", f"output_dir={tmp_path / 'run'}",
                             "train.max_steps=1", "train.batch_size=2", "grpo.num_generations=2",
                             "grpo.max_completion_length=6", "lora.enabled=true", "lora.r=4",
                             "logging.progress=false"], cls=JudgeConfig)
    train_judge(cfg)
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_bad_input_fails_before_training(tmp_path, warm):
    model, data = warm
    base = [f"model={model}", f"output_dir={tmp_path / 'run'}", "logging.progress=false"]
    with pytest.raises(DataError, match="holds pairwise judge rows, but mode=pointwise"):
        train_judge(load_config(None, base + [f"data.train={data}", "mode=pointwise"], cls=JudgeConfig))
    tpl = tmp_path / "t.txt"
    tpl.write_text("{conversation} {response_a}")
    samples = tmp_path / "c.jsonl"
    samples.write_text(json.dumps({"id": "x", "prompt": [], "chosen": [{"role": "assistant", "content": "a"}],
                                   "rejected": [{"role": "assistant", "content": "b"}]}) + "\n")
    with pytest.raises(ConfigError, match=r"t.txt lacks the required placeholder\(s\) \{response_b\}"):
        train_judge(load_config(None, base + [f"data.train={samples}", f"data.template={tpl}"], cls=JudgeConfig))
    with pytest.raises(RmforgeError, match="check=true validates a verl job"):
        train_judge(load_config(None, base + [f"data.train={data}", "check=true"], cls=JudgeConfig))
    with pytest.raises(ConfigError, match="mode"):
        load_config(None, ["mode=listwise"], cls=JudgeConfig)
    assert not (tmp_path / "run").exists()


def test_grpo_resume_continues_from_the_last_checkpoint(tmp_path, warm):
    model, data = warm
    base = [f"model={model}", f"data.train={data}", f"output_dir={tmp_path / 'run'}", "train.batch_size=2",
            "grpo.num_generations=2", "grpo.max_completion_length=8", "checkpoint.every_steps=1",
            "logging.progress=false", "seed=3"]
    train_judge(load_config(None, base + ["train.max_steps=2"], cls=JudgeConfig))
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
    # the metrics of a crashed step 3 must not survive the resume
    with open(tmp_path / "run" / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 3, "reward": 123.0}) + "\n")
    summary = train_judge(load_config(None, base + ["train.max_steps=4", "resume=auto"], cls=JudgeConfig))
    assert summary["steps"] == 4
    rows = read_metrics(tmp_path / "run")
    starts = [r for r in rows if r.get("event") == "start"]
    assert starts[-1]["resumed_from"].endswith("checkpoint-2")
    assert [r["step"] for r in rows if "reward" in r and "event" not in r] == [1, 2, 3, 4]
    assert all(r["reward"] != 123.0 for r in rows if "reward" in r)


def test_grpo_pointwise_end_to_end(tmp_path):
    """Pointwise mode: SFT a tiny model on <score> answers, then GRPO; the distance reward and MAE are logged."""
    from rmforge.train.tiny import tiny_model

    rows = [{"id": f"s{i}", "input": [{"role": "user", "content": f"Rate response {i} on a scale from 0 to 4."}],
             "output": f"<score>{i % 5}</score>", "label": i % 5} for i in range(10)]
    data = tmp_path / "s.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = tiny_model("llama", tmp_path / "m", seed=2)
    train_sft(load_config(None, [f"model={model}", f"data.train={data}", f"output_dir={tmp_path / 'sft'}",
                                 "train.max_steps=40", "train.batch_size=5", "train.lr=1e-2",
                                 "train.scheduler=constant", "logging.progress=false"], cls=SFTConfig))
    summary = train_judge(load_config(None, [
        f"model={tmp_path / 'sft'}", f"data.train={data}", f"data.validation={data}", "mode=pointwise",
        f"output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.batch_size=2",
        "grpo.num_generations=4", "grpo.max_completion_length=8", "grpo.k=2", "logging.progress=false"],
        cls=JudgeConfig))
    steps = [r for r in read_metrics(tmp_path / "run") if "event" not in r and "reward" in r]
    assert len(steps) == 2
    for row in steps:
        assert row["judge/reward_mean"] == pytest.approx(row["reward"], abs=1e-6)
        assert row["judge/parse_failure_rate"] < 1.0 and "judge/mae" in row
        assert 0.0 <= row["reward"] <= 1.0  # exp(-k |d| / 4) in (0, 1], 0 on failure
    val = summary["validation"]
    assert val["n"] == 10 and val["mae"] is not None and val["mae"] <= 4


def test_shared_prompt_step_equals_trl_per_row_step(tmp_path, warm):
    """Prefix-shared log-probabilities change nothing in the step: same completions, loss and gradient norm."""
    model, data = warm
    rows = {}
    for share in ("true", "false"):
        train_judge(load_config(None, [
            f"model={model}", f"data.train={data}", f"output_dir={tmp_path / share}", "train.max_steps=1",
            "train.batch_size=4", "grpo.num_generations=4", "grpo.max_completion_length=24", "grpo.beta=0.05", "grpo.temperature=1.0", "train.precision=fp32",
            f"grpo.share_prompt={share}", "logging.progress=false", "seed=5"], cls=JudgeConfig))
        rows[share] = next(r for r in read_metrics(tmp_path / share) if "grad_norm" in r)
        assert read_metrics(tmp_path / share)[0]["share_prompt"] is (share == "true")
    on, off = rows["true"], rows["false"]
    assert on["reward"] == off["reward"] and on["completions/mean_length"] == off["completions/mean_length"]
    assert on["reward_std"] > 0 and on["grad_norm"] > 1e-3  # the step does learn something
    for key in ("grad_norm", "loss", "entropy", "kl"):
        assert on[key] == pytest.approx(off[key], rel=1e-3, abs=1e-6), key


def test_orders_together_keeps_both_orders_of_a_comparison_in_each_step():
    from rmforge.judge.data import JudgeExample
    from rmforge.train.judge import orders_together

    ex = [JudgeExample(f"p{i}@{pos}", [], pos, pair_id=f"p{i}", position=pos) for i in range(5) for pos in "BA"]
    out = orders_together(ex, 24, seed=0)
    assert len(out) == 30  # three shuffled passes cover 24 rows
    for step in range(0, 24, 4):  # 4 prompts a step = 2 whole comparisons
        batch = out[step:step + 4]
        assert sorted(e.pair_id for e in batch[:2]) == [batch[0].pair_id] * 2
        assert [e.position for e in batch] == ["A", "B", "A", "B"]
    assert [e.pair_id for e in out[:10]] != [e.pair_id for e in out[10:20]]  # a fresh shuffle per pass
    assert orders_together(ex, 24, seed=0) == out


def test_trl_private_method_contract():
    """train judge overrides TRL's private GRPOTrainer._get_per_token_logps_and_entropies: the installed TRL
    must still have the parameters the override takes and passes on, and return (logps, entropies, aux_loss)."""
    import inspect

    from trl import GRPOTrainer

    from rmforge.judge.rewards import JudgeReward
    from rmforge.train.judge import TRL_LOGPS_PARAMS, judge_trainer_class, trl_contract_problem

    assert trl_contract_problem(GRPOTrainer) is None
    trl_params = list(inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters.values())
    cls = judge_trainer_class(GRPOTrainer, JudgeReward("pairwise"), True, 0)
    ours = list(inspect.signature(cls._get_per_token_logps_and_entropies).parameters.values())
    assert [(p.name, p.default) for p in ours[:-1]] == [(p.name, p.default) for p in trl_params[:len(ours) - 1]] \
        == list(TRL_LOGPS_PARAMS)
    assert ours[-1].kind is inspect.Parameter.VAR_KEYWORD  # the multimodal rest: TRL's, all None for text
    assert all(p.default is None for p in trl_params[len(ours) - 1:])
    assert judge_trainer_class(GRPOTrainer, JudgeReward("pairwise"), False, 0)._get_per_token_logps_and_entropies \
        is GRPOTrainer._get_per_token_logps_and_entropies  # share_prompt=false leaves TRL's method alone

    class Trl16:  # trl 1.0-1.6: no compute_aux_loss, two return values
        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, pixel_values=None):
            pass

    assert trl_contract_problem(Trl16) == (
        "its parameters begin (self, model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, "
        "pixel_values), expected (self, model, input_ids, attention_mask, logits_to_keep, batch_size, "
        "compute_entropy, compute_aux_loss)")


def test_missing_trl_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from rmforge.cli import app

    data = _rows(tmp_path / "p.jsonl", n=4)
    monkeypatch.setitem(sys.modules, "trl", None)  # `from trl import ...` raises ModuleNotFoundError(name="trl")
    cfg = load_config(None, [f"data.train={data}", f"output_dir={tmp_path / 'run'}"], cls=JudgeConfig)
    with pytest.raises(RmforgeError) as err:
        train_judge(cfg)
    assert str(err.value) == "train judge needs TRL: pip install 'rmforge[judge]'"
    result = CliRunner().invoke(app, ["train", "judge", f"data.train={data}", f"output_dir={tmp_path / 'run'}"])
    assert result.exit_code == 1 and "train judge needs TRL: pip install 'rmforge[judge]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_grpo_warmup_is_whole_steps_of_the_ratio(tmp_path, warm):
    """warmup_ratio=0.5 of 4 steps warms up over 2 steps, with the default constant scheduler too (it used to
    reach TRL as warmup_steps=0.5: 0.5 steps on transformers 4.x, and transformers' constant ignores warmup)."""
    from rmforge.train.judge import scheduler_name, warmup_steps

    assert [warmup_steps(0.5, 4), warmup_steps(1.0, 7), warmup_steps(0.1, 3), warmup_steps(0.0, 9)] == [2, 7, 1, 0]
    assert scheduler_name("constant", 0.1) == "constant_with_warmup" and scheduler_name("constant", 0.0) == "constant"
    assert scheduler_name("cosine", 0.1) == "cosine"
    model, data = warm
    train_judge(load_config(None, [
        f"model={model}", f"data.train={data}", f"output_dir={tmp_path / 'run'}", "train.max_steps=4",
        "train.batch_size=2", "grpo.num_generations=2", "grpo.max_completion_length=4", "train.lr=0.01",
        "train.warmup_ratio=0.5", "logging.progress=false"], cls=JudgeConfig))
    lrs = [r["learning_rate"] for r in read_metrics(tmp_path / "run") if "learning_rate" in r]
    # the rate each step trained with: 0/2 and 1/2 of the peak, then the peak (before: 0.01 from step 1)
    assert lrs == pytest.approx([0.0, 0.005, 0.01, 0.01])


def test_report_to_reaches_trl_and_keeps_metrics_jsonl(tmp_path, warm):
    """logging.report_to goes to TRL's GRPOConfig.report_to (it was hard-wired to "none"): TRL's own TensorBoard
    rows (train/reward, the judge statistics, eval/...) land in OUT/trackers/PROJECT, metrics.jsonl stays complete."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from trl import GRPOConfig

    from rmforge.train.judge import grpo_config, trl_report_to

    model, data = warm
    base = [f"model={model}", f"data.train={data}", f"output_dir={tmp_path / 'run'}", "train.max_steps=2",
            "train.batch_size=2", "grpo.num_generations=2", "grpo.max_completion_length=4", "logging.progress=false"]
    cfg = load_config(None, base + [f"data.validation={data}", "data.validation_limit=4", "eval.every_steps=1",
                                    "logging.report_to=[jsonl,tensorboard]"], cls=JudgeConfig)
    args = grpo_config(GRPOConfig, cfg, tmp_path / "run", epochs=1, shuffle=True, precision="fp32", template_kwargs=None)
    assert args.report_to == ["tensorboard"] and args.run_name == "run"
    default = load_config(None, base, cls=JudgeConfig)
    assert grpo_config(GRPOConfig, default, tmp_path, epochs=1, shuffle=True, precision="fp32",
                       template_kwargs=None).report_to in ("none", ["none"], [])
    train_judge(cfg)
    events = list((tmp_path / "run" / "trackers" / "rmforge").rglob("events.out.tfevents.*"))
    assert events
    tags = set()
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/reward", "train/judge/verdict_accuracy", "train/kl", "eval/accuracy"} <= tags, sorted(tags)
    # the final validation (step 2) is logged before the trackers close at the end of training: into the same
    # TensorBoard file as the training rows (it reopened a closed writer; MLflow would start a new run, and
    # Trackio, finished, would fail the run after training and before the model was saved)
    per_file = []
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        if "eval/accuracy" in acc.Tags()["scalars"]:
            per_file.append(([e.step for e in acc.Scalars("eval/accuracy")], "train/reward" in acc.Tags()["scalars"]))
    assert per_file == [([1, 2], True)]
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows if "reward" in r and "event" not in r] == [1, 2]
    assert [r["step"] for r in rows if r.get("event") == "eval"] == [1, 2]  # once each, not echoed back
    assert trl_report_to(["jsonl", "tensorboard", "tensorboard"]) == ["tensorboard"] and trl_report_to(["jsonl"]) == []
    with pytest.raises(RmforgeError, match="TRL, whose trainer has no tracker aim"):
        trl_report_to(["aim"])
    with pytest.raises(RmforgeError, match="logging.tracker_options is not supported by train judge"):
        train_judge(load_config(None, base + ["output_dir=" + str(tmp_path / "opts"), "logging.report_to=[tensorboard]",
                                              "logging.tracker_options={tensorboard: {flush_secs: 1}}"], cls=JudgeConfig))
    assert not (tmp_path / "opts").exists()


def test_failed_judge_run_leaves_no_run_folder(tmp_path):
    """train judge creates its run folder only after the model loads (a model that cannot load used to leave an
    empty folder); a non-empty folder without overwrite is still refused before the model is loaded."""
    pytest.importorskip("trl")
    data = _rows(tmp_path / "p.jsonl", n=4)
    with pytest.raises(RmforgeError):
        train_judge(load_config(None, [f"model={tmp_path / 'no-such-model'}", f"data.train={data}",
                                       f"output_dir={tmp_path / 'run'}"], cls=JudgeConfig))
    assert not (tmp_path / "run").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("x")
    with pytest.raises(RmforgeError, match="already exists and is not empty"):
        train_judge(load_config(None, [f"model={tmp_path / 'no-such-model'}", f"data.train={data}",
                                       f"output_dir={tmp_path / 'used'}"], cls=JudgeConfig))


def test_trl_bound_in_messages_is_the_judge_extras():
    """The version train judge tells users to install is the one pyproject's judge extra pins (the message said
    trl>=1.7,<2 while the extra allows <1.17: a 1.17 with another signature would be told to install itself)."""
    import tomllib
    from pathlib import Path

    from rmforge.train.judge import TRL_SUPPORTED

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert TRL_SUPPORTED in extras["judge"]
    assert TRL_SUPPORTED in extras["dev"]


def test_trl_that_does_not_import_is_one_line(monkeypatch):
    """TRL installed against an incompatible transformers raises a multi-line ImportError: one line is printed."""
    import sys
    import types

    from rmforge.train.judge import import_trl

    broken = types.ModuleType("trl")

    def fail(name):
        raise ImportError("cannot import name 'X' from 'transformers'\nupgrade transformers", name="transformers")

    broken.__getattr__ = fail
    monkeypatch.setitem(sys.modules, "trl", broken)
    with pytest.raises(RmforgeError) as err:
        import_trl()
    assert str(err.value) == ("TRL is installed but does not import: cannot import name 'X' from 'transformers' "
                              "upgrade transformers (train judge needs trl>=1.7,<1.17)")
