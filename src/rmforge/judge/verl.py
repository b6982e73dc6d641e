"""verl glue: the ``compute_score`` reward function and the GRPO job writer / checker (``backend=verl``).

:func:`compute_score` follows verl's custom reward signature
``(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict`` (``score`` plus the
logged extras ``acc``, ``parse_ok``, ``pred`` and, pointwise, ``abs_error``: the same keys for every sample).
A pointwise answer that does not parse has ``abs_error`` and ``pred`` None: verl's validation metrics
(``process_validation_metrics``) drop None values before averaging, whereas one NaN would make the
mean of every batch NaN.

:func:`write_job` writes, atomically, ``OUT/``: ``train.parquet`` / ``val.parquet`` (verl's RL layout,
the schema of ``rmforge data export --to verl``), ``reward.py`` (a reward module with this run's
settings), ``job.json`` (mode and the Hydra overrides) and ``launch.sh`` (``python3 -m
verl.trainer.main_ppo`` with those overrides; extra arguments are appended). verl 0.9 reads the
reward function from ``reward.custom_reward_function.path/name``: the legacy top-level
``custom_reward_function.*`` still composes but is ignored, so it is never written.

:func:`check_job` composes verl's own ``ppo_trainer`` config with the overrides, runs
``verl.utils.config.validate_config``, loads the reward function with
``verl.trainer.ppo.reward.get_custom_reward_fn`` and scores the first rows' labels as answers.
verl cannot train on a CPU-only machine: :func:`run_job` and ``launch.sh`` stop with a clear message.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from rmforge import __version__
from rmforge.errors import OutputExistsError, RmforgeError
from rmforge.judge.rewards import DEFAULT_K, JudgeReward

JOB_VAR = "${JOB}"
"""Placeholder for the job folder in the stored overrides (launch.sh sets JOB to its own folder)."""
FILES = ("train.parquet", "val.parquet", "reward.py", "job.json", "launch.sh")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, *, mode: str | None = None,
                  k: float = DEFAULT_K, format_weight: float = 0.0, **_) -> dict:
    """verl reward: ``{"score", "acc", "parse_ok", "pred"[, "abs_error"]}`` for one generated answer
    (``pred`` / ``abs_error`` None when a pointwise answer does not parse)."""
    extra = extra_info or {}
    mode = mode or extra.get("task") or ("pairwise" if str(ground_truth).strip().casefold() in ("a", "b", "tie")
                                         else "pointwise")
    result = JudgeReward(mode, k, format_weight).score(solution_str, ground_truth, extra.get("scale_min"),
                                                       extra.get("scale_max"))
    if mode == "pairwise":
        result.pop("abs_error")
    return result


REWARD_MODULE = '''"""verl reward function written by rmforge {version} for a {mode} judge.

verl loads it through reward.custom_reward_function.path / .name (see launch.sh). rmforge must be
importable on every worker (pip install rmforge). Reward: {formula}.
"""

from rmforge.judge.verl import compute_score as _compute_score

MODE = {mode!r}
K = {k!r}
FORMAT_WEIGHT = {format_weight!r}


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return _compute_score(data_source, solution_str, ground_truth, extra_info, mode=MODE, k=K,
                          format_weight=FORMAT_WEIGHT)
'''

LAUNCH = '''#!/usr/bin/env bash
# GRPO training of a {mode} judge with verl, written by rmforge {version}.
# Needs NVIDIA GPUs, verl >= 0.9 (with Ray and {rollout}) and rmforge on every node.
# Extra Hydra overrides may follow: ./launch.sh trainer.total_epochs=3
set -euo pipefail
JOB="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
python3 - <<'EOF'
import sys
try:
    import torch
except ImportError:
    sys.exit("verl needs PyTorch with CUDA; torch is not installed here")
if not torch.cuda.is_available():
    sys.exit("verl cannot train on a CPU-only machine: no CUDA GPU found. Run this job on a GPU node, "
             "or train locally on CPU with: rmforge train judge backend=local")
EOF
exec python3 -m verl.trainer.main_ppo \\
{overrides} \\
  "$@"
'''


def overrides(cfg, model_path: str, n_train: int) -> list[str]:
    """Hydra overrides for verl's ``ppo_trainer`` (paths under :data:`JOB_VAR`)."""
    opt, g, v = cfg.train, cfg.grpo, cfg.verl
    mini = v.ppo_mini_batch_size or opt.batch_size
    items = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "data.train_files": f"{JOB_VAR}/train.parquet",
        "data.val_files": f"{JOB_VAR}/val.parquet",
        "data.train_batch_size": opt.batch_size,
        "data.max_prompt_length": g.max_prompt_length,
        "data.max_response_length": g.max_completion_length,
        "data.filter_overlong_prompts": True,
        "data.truncation": "error",
        "data.seed": cfg.seed,
        "actor_rollout_ref.model.path": model_path,
        "actor_rollout_ref.model.use_remove_padding": True,
        "actor_rollout_ref.actor.optim.lr": opt.lr,
        "actor_rollout_ref.actor.ppo_mini_batch_size": mini,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": v.micro_batch_size_per_gpu,
        "actor_rollout_ref.actor.use_kl_loss": g.beta > 0,
        "actor_rollout_ref.actor.kl_loss_coef": g.beta,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.entropy_coeff": 0,
        "actor_rollout_ref.actor.clip_ratio": g.epsilon,
        "actor_rollout_ref.rollout.name": v.rollout,
        "actor_rollout_ref.rollout.n": g.num_generations,
        "actor_rollout_ref.rollout.temperature": g.temperature,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": v.tensor_parallel_size,
        "actor_rollout_ref.rollout.gpu_memory_utilization": v.gpu_memory_utilization,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": v.micro_batch_size_per_gpu,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": v.micro_batch_size_per_gpu,
        "reward.custom_reward_function.path": f"{JOB_VAR}/reward.py",
        "reward.custom_reward_function.name": "compute_score",
        "trainer.n_gpus_per_node": v.n_gpus_per_node,
        "trainer.nnodes": v.nnodes,
        "trainer.total_epochs": v.epochs,
        "trainer.project_name": v.project,
        "trainer.experiment_name": Path(cfg.output_dir).name or "judge",
        "trainer.logger": "[console]",
        "trainer.default_local_dir": f"{JOB_VAR}/checkpoints",
        "trainer.save_freq": cfg.checkpoint.every_steps or -1,
        "trainer.test_freq": cfg.eval.every_steps or -1,
        "trainer.val_before_train": True,
    }
    if opt.max_steps > 0:
        items["trainer.total_training_steps"] = opt.max_steps
    if cfg.lora.enabled:
        items.update({"actor_rollout_ref.model.lora_rank": cfg.lora.r, "actor_rollout_ref.model.lora_alpha": cfg.lora.alpha,
                      "actor_rollout_ref.model.target_modules": "all-linear"})
    if cfg.model_options.enable_thinking is not None:
        items["+data.apply_chat_template_kwargs.enable_thinking"] = cfg.model_options.enable_thinking
    return [f"{key}={value}" for key, value in items.items()] + list(v.extra_overrides)


def _shell_line(override: str) -> str:
    """One launch.sh argument: job paths become "$JOB/...", everything else is shell-quoted."""
    key, _, value = override.partition("=")
    rest = value[len(JOB_VAR):]
    if value.startswith(JOB_VAR) and re.fullmatch(r"[\w./-]*", rest):
        return f'  {key}="$JOB{rest}"'
    return "  " + shlex.quote(override)


def _verl_rows(examples, mode: str, split: str) -> list[dict]:
    return [{"data_source": f"rmforge-judge-{mode}", "prompt": [{"role": m["role"], "content": m["content"]}
                                                                 for m in ex.prompt],
             "ability": "reward_modeling", "reward_model": {"style": "rule", "ground_truth": ex.truth},
             "extra_info": {"split": split, "index": i, "id": ex.id, "subset": None, "task": mode,
                            "chosen_position": ex.position, "attribute": None, "scale_min": ex.scale_min,
                            "scale_max": ex.scale_max}}
            for i, ex in enumerate(examples)]


def job_exists(out: Path) -> bool:
    return (out / "job.json").is_file()


def write_job(cfg, train: list, val: list) -> Path:
    """Write the verl job folder (atomically); returns it."""
    from rmforge.data.export import VERL_SCHEMA
    from rmforge.data.io import write_records
    from rmforge.fileio import atomic_dir
    from rmforge.models import resolve_model

    out = Path(cfg.output_dir)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise OutputExistsError(f"{out} already exists; set overwrite=true or choose a new output_dir")
    if not val:
        val = train[: min(len(train), 64)]
    model_path = resolve_model(cfg.model)
    model_path = str(Path(model_path).resolve()) if Path(model_path).is_dir() else model_path
    ovr = overrides(cfg, model_path, len(train))
    formula = ("exp(-k |pred - truth| / (max - min)), 0 when the answer does not parse" if cfg.mode == "pointwise"
               else "1 for the correct verdict (A, B or tie), else 0")
    if cfg.grpo.format_weight:
        formula += f", plus {cfg.grpo.format_weight} when it parses"
    with atomic_dir(out, cfg.overwrite, "verl job folder") as tmp:
        write_records(tmp / "train.parquet", _verl_rows(train, cfg.mode, "train"), schema=VERL_SCHEMA)
        write_records(tmp / "val.parquet", _verl_rows(val, cfg.mode, "validation"), schema=VERL_SCHEMA)
        (tmp / "reward.py").write_text(REWARD_MODULE.format(version=__version__, mode=cfg.mode, k=cfg.grpo.k,
                                                            format_weight=cfg.grpo.format_weight, formula=formula))
        (tmp / "job.json").write_text(json.dumps({"rmforge_version": __version__, "mode": cfg.mode, "model": cfg.model,
                                                  "train_rows": len(train), "validation_rows": len(val),
                                                  "overrides": ovr}, indent=2))
        lines = " \\\n".join(_shell_line(o) for o in ovr)
        (tmp / "launch.sh").write_text(LAUNCH.format(mode=cfg.mode, version=__version__, rollout=cfg.verl.rollout,
                                                     overrides=lines))
        os.chmod(tmp / "launch.sh", 0o755)
    return out


def job_overrides(out: Path) -> list[str]:
    """The stored overrides with the job folder filled in."""
    job = json.loads((out / "job.json").read_text())
    return [o.replace(JOB_VAR, str(out.resolve())) for o in job["overrides"]]


def check_job(out: Path) -> dict:
    """Validate a written job against the installed verl (see the module docstring); RmforgeError if invalid."""
    out = Path(out)
    try:
        import verl  # noqa: F401
        from hydra import compose, initialize_config_dir
        from verl.trainer.ppo.reward import get_custom_reward_fn
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config
    except ImportError as exc:
        raise RmforgeError(f"check=true needs verl (>= 0.9) installed: {exc}. Install it where the job will run "
                           "(pip install verl) and check there") from None
    import pyarrow.parquet as pq

    missing = [f for f in FILES if not (out / f).is_file()]
    if missing:
        raise RmforgeError(f"{out}: not a complete verl job (missing {', '.join(missing)})")
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    ovr = job_overrides(out)
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            config = compose(config_name="ppo_trainer", overrides=ovr)
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    except Exception as exc:  # noqa: BLE001 - hydra / omegaconf / verl raise many types
        raise RmforgeError(f"{out}: verl rejects the job config: {type(exc).__name__}: {exc}") from None
    if config.get("custom_reward_function", {}).get("path"):
        raise RmforgeError(f"{out}: top-level custom_reward_function.path is ignored by verl >= 0.9; "
                           "use reward.custom_reward_function.path")
    try:
        fn = get_custom_reward_fn(config)
    except Exception as exc:  # noqa: BLE001 - import errors of the user's module surface here
        raise RmforgeError(f"{out}: the reward function {config.reward.custom_reward_function.path} does not "
                           f"load: {type(exc).__name__}: {exc}") from None
    if fn is None:
        raise RmforgeError(f"{out}: no reward function configured (reward.custom_reward_function.path)")
    rows = pq.read_table(out / "train.parquet").slice(0, 4).to_pylist()
    scored = []
    for row in rows:
        truth = row["reward_model"]["ground_truth"]
        tag = "score" if row["extra_info"]["task"] == "pointwise" else "preference"
        right = fn(data_source=row["data_source"], solution_str=f"<{tag}>{truth}</{tag}>", ground_truth=truth,
                   extra_info=row["extra_info"])
        broken = fn(data_source=row["data_source"], solution_str="no verdict", ground_truth=truth,
                    extra_info=row["extra_info"])
        if not (right["score"] >= 1.0 and right["parse_ok"] == 1.0 and broken["parse_ok"] == 0.0):
            raise RmforgeError(f"{out}: the reward function scores a correct answer {right} and a broken one {broken}")
        scored.append(right["score"])
    return {"backend": "verl", "output_dir": str(out), "valid": True, "overrides": len(ovr),
            "reward_function": str(config.reward.custom_reward_function.path), "sample_scores": scored}


def run_job(out: Path) -> None:
    """Start launch.sh (fails fast without a CUDA GPU)."""
    import torch

    if not torch.cuda.is_available():
        raise RmforgeError("verl cannot train on a CPU-only machine: no CUDA GPU found. The job is written to "
                           f"{out}; run {out}/launch.sh on a GPU node, or use backend=local to train on CPU")
    code = subprocess.call(["bash", str(Path(out) / "launch.sh")])
    if code:
        raise RmforgeError(f"verl exited with status {code}")
