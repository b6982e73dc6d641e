"""Training metrics: a running window over steps, metrics.jsonl, and Accelerate's experiment trackers."""

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
               "reward_mean": t["r_sum"] / max(t["r_count"], 1), "reward_min": self.r_min, "reward_max": self.r_max,
               "tokens": int(t["tokens"]), "elapsed_s": elapsed}
        if t["pairs"]:
            out.update(accuracy=t["correct"] / t["pairs"], margin=t["margin_sum"] / t["pairs"],
                       pairs_per_s=t["pairs"] / max(elapsed, 1e-9))
        if t["nway"]:
            out["top1_accuracy"] = t["top1"] / t["nway"]
        return out


PACKAGES = {"aim": "aim", "clearml": "clearml", "comet_ml": "comet-ml", "dvclive": "dvclive", "mlflow": "mlflow",
            "swanlab": "swanlab", "tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}
"""pip package of each tracker."""


class MetricsLog:
    """Appends to RUN_DIR/metrics.jsonl (always) and sends the scalars of training and eval rows to
    Accelerate's experiment trackers named in ``report_to`` (files of local trackers under RUN_DIR/trackers)."""

    def __init__(self, out: Path, report_to: list[str], enabled: bool = True, resume_step: int | None = None,
                 config: dict | None = None, project: str = "rmforge", tracker_options: dict | None = None):
        self.enabled, self.trackers, self.fh = enabled, [], None
        if not enabled:
            return
        path = out / "metrics.jsonl"
        if resume_step is not None and path.exists():  # drop rows logged after the checkpoint we resume from
            keep = [line for line in path.read_text().splitlines() if _step_of(line, resume_step) <= resume_step]
            path.write_text("".join(line + "\n" for line in keep))
        names = [n for n in report_to if n not in ("jsonl", "none")]
        self.trackers = start_trackers(names, out, project, config, tracker_options or {}, resume_step)
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        if not self.enabled or self.fh is None:
            return
        self.fh.write(json.dumps(_finite(row), default=_jsonable, allow_nan=False) + "\n")
        self.fh.flush()
        if row.get("event") not in (None, "eval"):
            return  # start / end / early stop rows: metrics.jsonl only
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k != "step"}
        if scalars:
            for tracker in self.trackers:  # as Accelerator.log does
                tracker.log(scalars, step=row.get("step", 0))

    def close(self) -> None:
        """Close metrics.jsonl and finish the trackers (as Accelerator.end_training does, without tearing
        down the process group); a second call does nothing."""
        if not self.enabled or self.fh is None:
            return
        self.fh.close()
        self.fh = None
        for tracker in self.trackers:
            tracker.finish()


def start_trackers(names: list[str], out: Path, project: str = "rmforge", config: dict | None = None,
                   options: dict | None = None, resume_step: int | None = None) -> list:
    """Accelerate trackers built and started the way ``Accelerator.init_trackers(project, config,
    init_kwargs=options)`` does, with logging_dir RUN_DIR/trackers. Local files default into the run
    folder (W&B ``dir``, dvclive ``dir``); ``options`` override. A run resumed from step ``resume_step``
    starts TensorBoard with ``purge_step=resume_step + 1``, so the steps logged after that checkpoint
    by the interrupted run are hidden, not shown twice. ConfigError for an unknown name, a clear
    RmforgeError for a tracker whose package is missing."""
    if not names:
        return []
    check_trackers(names)
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    logging_dir = out / "trackers"
    defaults = {"wandb": {"dir": str(out), "name": out.name}, "mlflow": {"run_name": out.name},
                "dvclive": {"dir": str(logging_dir / "dvclive")}}
    if resume_step is not None:
        defaults["tensorboard"] = {"purge_step": resume_step + 1}
    trackers, flat = [], flat_config(config) if config is not None else None
    for name in names:
        cls = LOGGER_TYPE_TO_CLASS[name]
        kwargs = {**defaults.get(name, {}), **(options or {}).get(name, {})}
        try:
            if cls.requires_logging_directory:
                logging_dir.mkdir(parents=True, exist_ok=True)
                tracker = cls(project, str(logging_dir), **kwargs)
            else:
                tracker = cls(project, **kwargs)
            if hasattr(tracker, "start"):  # accelerate >= 1.2 starts trackers lazily; older ones in __init__
                tracker.start()
            if flat is not None:
                tracker.store_init_configuration(flat)
        except Exception as exc:  # noqa: BLE001 - e.g. no W&B login, an unreachable MLflow server, a bad option
            for started in trackers:
                started.finish()
            first = (str(exc).strip().splitlines() or [""])[0]
            raise RmforgeError(f"logging.report_to: the {name} tracker could not start ({type(exc).__name__}: "
                               f"{first}); check its login/server, or logging.tracker_options.{name}") from None
        trackers.append(tracker)
    return trackers


def check_trackers(names: list[str]) -> None:
    """Before any output is written: ConfigError for a name Accelerate does not know, RmforgeError for a
    tracker whose package is not installed."""
    names = [n for n in names if n not in ("jsonl", "none")]
    if not names:
        return
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    from rmforge.errors import ConfigError

    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise ConfigError(f"logging.report_to: unknown tracker '{name}'; choose from "
                              f"{', '.join(sorted(LOGGER_TYPE_TO_CLASS))} (or none)")
    available = {str(t) for t in get_available_trackers()}
    missing = [n for n in names if n not in available]
    if missing:
        raise RmforgeError(f"logging.report_to has {missing[0]} but its package is missing: pip install "
                           f"{PACKAGES.get(missing[0], missing[0])}" +
                           (" (WANDB_MODE=offline works without a network)" if missing[0] == "wandb" else ""))


def flat_config(config: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 1e-5}}`` -> ``{"train.lr": 1e-5}``: hyperparameters as trackers take them
    (bool/int/float/str; lists as JSON text; nulls left out)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is not None:
            flat[name] = json.dumps(value, default=str)
    return flat


def _step_of(line: str, resume_step: int) -> float:
    """The ``step`` of a metrics.jsonl line (0 when it has none). Counted as after ``resume_step``, so
    dropped: a blank or unreadable line, such as one cut short when the process was killed mid-write,
    and an ``end`` row (it has no step; the run it closed is being continued, so it no longer says
    which model was saved)."""
    try:
        row = json.loads(line)
        if not isinstance(row, dict) or row.get("event") == "end":
            return resume_step + 1
        return float(row.get("step", 0))
    except (ValueError, TypeError):
        return resume_step + 1


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


def open_run_log(out: Path, cfg, *, resume_from, resume_step: int, enabled: bool = True) -> MetricsLog:
    """The run's :class:`MetricsLog` with its trackers (``cfg.logging``); when a tracker cannot start, the
    folder just made for a fresh run is removed again before the error goes up (BT and SFT trainers)."""
    from rmforge.train import checkpoint as ckpt_io

    try:
        return MetricsLog(out, cfg.logging.report_to, enabled=enabled,
                          resume_step=resume_step if resume_from is not None else None,
                          config=cfg.model_dump(mode="json"), project=cfg.logging.project,
                          tracker_options=cfg.logging.tracker_options)
    except RmforgeError:
        if resume_from is None:
            ckpt_io.discard_new_run_dir(out)
        raise
