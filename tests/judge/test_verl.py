"""verl backend: compute_score, the job folder (parquet, reward module, launch.sh) and its validation by verl."""

import importlib.util
import json
import math
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from rmforge.config import load_config
from rmforge.errors import RmforgeError
from rmforge.judge.verl import compute_score
from rmforge.train.judge import train_judge
from rmforge.train.judge_config import JudgeConfig


def test_compute_score_dicts_have_fixed_keys():
    r = compute_score("d", "<think>x</think><preference>B</preference>", "B", {"task": "pairwise"})
    assert r == {"score": 1.0, "acc": 1.0, "parse_ok": 1.0, "pred": 1.0}
    bad = compute_score("d", "B", "B", {"task": "pairwise"})
    assert set(bad) == set(r) and bad["score"] == 0.0
    p = compute_score("d", "<score>2</score>", "3", {"task": "pointwise", "scale_min": 0.0, "scale_max": 4.0})
    assert p["score"] == pytest.approx(math.exp(-0.5)) and p["abs_error"] == 1.0
    q = compute_score("d", "nothing", "3", {"task": "pointwise", "scale_min": 0.0, "scale_max": 4.0})
    assert set(q) == set(p) and q["score"] == 0.0 and q["abs_error"] is None and q["pred"] is None
    assert compute_score("d", "<preference>A</preference>", "A", None, format_weight=0.5)["score"] == 1.5


def _verl_mean(var_vals):
    """verl 0.9.1 ``process_validation_metrics`` (verl/trainer/ppo/metric_utils.py), per variable:
    ``var_vals = [value for value in var_vals if value is not None]``, skip empty or string lists,
    then ``mean@N = float(np.mean(var_vals))``."""
    import numpy as np

    var_vals = [value for value in var_vals if value is not None]
    if not var_vals or isinstance(var_vals[0], str):
        return None
    return float(np.mean(var_vals))


def test_parse_failure_extras_survive_verl_validation_means():
    """One unparsable pointwise answer must not turn verl's validation means into NaN (issue 16, 5a)."""
    extra = {"task": "pointwise", "scale_min": 0.0, "scale_max": 4.0}
    results = [compute_score("d", answer, "3", extra) for answer in ("<score>2</score>", "<score>3</score>", "nothing")]
    # the reward loop (NaiveRewardManager.run_single) copies every key of the dict into reward_extra_info
    infos = {key: [r[key] for r in results] for key in results[0]}
    means = {key: _verl_mean(values) for key, values in infos.items()}
    assert means["abs_error"] == pytest.approx(0.5) and means["pred"] == pytest.approx(2.5)
    assert means["score"] == pytest.approx((math.exp(-0.5) + 1.0) / 3) and means["parse_ok"] == pytest.approx(2 / 3)
    assert all(math.isfinite(v) for v in means.values())
    # the old NaN placeholder poisons the same expression
    assert math.isnan(_verl_mean([1.0, 0.0, float("nan")]))


@pytest.fixture
def pairwise_file(tmp_path):
    rows = [{"input": [{"role": "user", "content": f"which is better {i}"}],
             "output": f"<preference>{'AB'[i % 2]}</preference>",
             "metadata": {"id": f"p{i}", "chosen_position": "AB"[i % 2]}} for i in range(6)]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(tmp_path, data, *extra):
    from rmforge.train.tiny import tiny_model

    model = tiny_model("llama", tmp_path / "m")
    return load_config(None, [f"model={model}", f"data.train={data}", f"output_dir={tmp_path / 'job'}",
                              "backend=verl", "train.batch_size=4", *extra], cls=JudgeConfig)


def test_job_folder(tmp_path, pairwise_file):
    summary = train_judge(_cfg(tmp_path, pairwise_file, "verl.n_gpus_per_node=2", "lora.enabled=true"))
    job = tmp_path / "job"
    assert summary["train_rows"] == 6 and sorted(p.name for p in job.iterdir()) == \
        [".rmforge-output", "job.json", "launch.sh", "reward.py", "train.parquet", "val.parquet"]
    rows = pq.read_table(job / "train.parquet").to_pylist()
    assert rows[1]["reward_model"] == {"style": "rule", "ground_truth": "B"} and rows[1]["extra_info"]["task"] == "pairwise"
    launch = (job / "launch.sh").read_text()
    for item in ("algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=4",
                 'reward.custom_reward_function.path="$JOB/reward.py"', "reward.custom_reward_function.name=compute_score",
                 "actor_rollout_ref.actor.use_kl_loss=True", "actor_rollout_ref.model.lora_rank=16",
                 "trainer.n_gpus_per_node=2", "data.train_batch_size=4"):
        assert item in launch
    assert "\n  custom_reward_function" not in launch  # the legacy top-level key is ignored by verl 0.9
    spec = importlib.util.spec_from_file_location("reward_mod", job / "reward.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.compute_score("x", "<preference>B</preference>", "B", rows[1]["extra_info"])["score"] == 1.0
    with pytest.raises(RmforgeError, match="already exists"):
        train_judge(_cfg(tmp_path, pairwise_file))


def test_launch_sh_fails_fast_without_gpu(tmp_path, pairwise_file):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    train_judge(_cfg(tmp_path, pairwise_file))
    proc = subprocess.run(["bash", str(tmp_path / "job" / "launch.sh")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "verl cannot train on a CPU-only machine" in proc.stderr
    with pytest.raises(RmforgeError, match="CPU-only machine"):
        train_judge(_cfg(tmp_path, pairwise_file, "overwrite=true", "verl.run=true"))


def test_check_without_verl_is_a_clear_error(tmp_path, pairwise_file):
    if importlib.util.find_spec("verl") is not None:
        pytest.skip("verl is installed")
    with pytest.raises(RmforgeError, match="check=true needs verl"):
        train_judge(_cfg(tmp_path, pairwise_file, "check=true"))


verl_needed = pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="verl is not installed")


@verl_needed
def test_parse_failure_extras_through_verls_own_validation_metrics():
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    extra = {"task": "pointwise", "scale_min": 0.0, "scale_max": 4.0}
    results = [compute_score("d", answer, "3", extra) for answer in ("<score>2</score>", "nothing", "<score>3</score>")]
    infos = {key: [r[key] for r in results] for key in results[0]}
    metrics = process_validation_metrics(["d"] * 3, ["u0", "u0", "u1"], infos)["d"]
    assert metrics["abs_error"]["mean@1"] == pytest.approx(0.5)  # u0: 1.0 (the failure dropped), u1: 0.0
    assert metrics["pred"]["mean@1"] == pytest.approx(2.5)
    assert all(math.isfinite(v) for var in metrics.values() for v in var.values())


@verl_needed
def test_check_validates_against_installed_verl(tmp_path, pairwise_file):
    summary = train_judge(_cfg(tmp_path, pairwise_file, "check=true"))
    assert summary["valid"] and summary["sample_scores"] == [1.0] * 4
    assert summary["reward_function"] == str((tmp_path / "job" / "reward.py").resolve())


@verl_needed
def test_check_rejects_bad_override_and_broken_reward_module(tmp_path, pairwise_file):
    with pytest.raises(RmforgeError, match="verl rejects the job config"):
        train_judge(_cfg(tmp_path, pairwise_file, "check=true", "verl.extra_overrides=[actor_rollout_ref.rollout.nn=3]"))
    train_judge(_cfg(tmp_path, pairwise_file, "overwrite=true"))
    (tmp_path / "job" / "reward.py").write_text("import no_such_module_rmforge\n")
    with pytest.raises(RmforgeError, match="reward function .* does not load"):
        train_judge(_cfg(tmp_path, pairwise_file, "check=true"))


@pytest.mark.slow
@verl_needed
def test_cli_check_exits_zero(tmp_path, pairwise_file):
    cfg = _cfg(tmp_path, pairwise_file)
    proc = subprocess.run([sys.executable, "-m", "rmforge", "train", "judge", f"model={cfg.model}",
                           f"data.train={pairwise_file}", f"output_dir={tmp_path / 'cli'}", "backend=verl",
                           "check=true", "train.batch_size=4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "is valid: config composes and validates" in " ".join(proc.stdout.split())
