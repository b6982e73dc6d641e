"""Training metrics: a running window over steps and the sinks (metrics.jsonl, TensorBoard, W&B)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rmforge.errors import RmforgeError


def peak_memory_mb() -> float:
    """Peak GPU memory when on GPU, else the process's peak resident set size."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Window:
    """Sums per-micro-batch statistics between two log lines (reduced across processes)."""

    KEYS = ("loss_sum", "samples", "pairs", "correct", "margin_sum", "nway", "top1", "tokens", "r_sum", "r_count")

    def __init__(self) -> None:
        self.totals = dict.fromkeys(self.KEYS, 0.0)
        self.r_min, self.r_max, self.steps, self.grad_norm = math.inf, -math.inf, 0, float("nan")

    def add(self, stats: dict) -> None:
        for k in self.KEYS:
            self.totals[k] += stats.get(k, 0)
        self.r_min = min(self.r_min, stats.get("r_min", math.inf))
        self.r_max = max(self.r_max, stats.get("r_max", -math.inf))

    def summary(self, engine, elapsed: float) -> dict:
        t = dict(zip(self.KEYS, engine.sum([self.totals[k] for k in self.KEYS])))
        out = {"loss": t["loss_sum"] / max(t["samples"], 1), "grad_norm": self.grad_norm,
               "tokens_per_s": t["tokens"] / max(elapsed, 1e-9), "samples_per_s": t["samples"] / max(elapsed, 1e-9),
               "reward_mean": t["r_sum"] / max(t["r_count"], 1), "reward_min": self.r_min, "reward_max": self.r_max}
        if t["pairs"]:
            out.update(accuracy=t["correct"] / t["pairs"], margin=t["margin_sum"] / t["pairs"],
                       pairs_per_s=t["pairs"] / max(elapsed, 1e-9))
        if t["nway"]:
            out["top1_accuracy"] = t["top1"] / t["nway"]
        return out


class MetricsLog:
    """Appends to RUN_DIR/metrics.jsonl and mirrors scalars to TensorBoard / W&B when asked."""

    def __init__(self, out: Path, report_to: list[str], enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        path = out / "metrics.jsonl"
        if resume_step is not None and path.exists():  # drop rows logged after the checkpoint we resume from
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            path.write_text("".join(line + "\n" for line in keep))
        self.fh = open(path, "a", encoding="utf-8")
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RmforgeError("logging.report_to has tensorboard but the package is missing: "
                                   "pip install tensorboard") from None
            self.tb = SummaryWriter(str(out / "tensorboard"))
        if "wandb" in report_to:
            try:
                import wandb
            except ImportError:
                raise RmforgeError("logging.report_to has wandb but the package is missing: pip install wandb "
                                   "(WANDB_MODE=offline works without a network)") from None
            self.wandb = wandb.init(dir=str(out), project="rmforge", name=out.name, reinit=True)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        self.fh.write(json.dumps(_finite(row), default=_jsonable, allow_nan=False) + "\n")
        self.fh.flush()
        step = row.get("step", 0)
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None and scalars:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if not self.enabled:
            return
        self.fh.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _jsonable(value):
    return str(value)


def _finite(value):
    """Strict JSON: NaN / inf (at any depth) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All rows of a run's metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
