"""``rmforge data build``: one YAML recipe drives load -> process -> split -> validate -> export.

Output folder layout (written into a temporary sibling folder, renamed at the end, so a
failed build never leaves partial files)::

    OUTPUT_DIR/
      recipe.yaml            resolved recipe
      summary.json           counts per stage, step reports, export reports
      validation.json        validation report
      samples/{split}.{fmt}  canonical samples per split
      {export}/{split}.{fmt} one folder per export target (bt, sft, pointwise, pairwise, verl)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from rmforge.config import ConfigModel, dump_config, register_config
from rmforge.data.process import ProcessStep, apply_steps
from rmforge.data.sources import SourceConfig, load_source
from rmforge.data.split import SplitConfig, split_samples
from rmforge.errors import DataError
from rmforge.fileio import atomic_dir, check_replaceable


class ValidateConfig(ConfigModel):
    """What to do with the validation report."""

    enabled: bool = True
    """Run the validator on the processed, split samples."""
    fail_on_error: bool = True
    """Stop the build (exit 1, nothing written) when the report holds errors."""


class ExportTarget(ConfigModel):
    """One exported training file per split."""

    to: Literal["bt", "sft", "pointwise", "pairwise", "verl"]
    """Training approach: Bradley-Terry, SFT, generative pointwise/pairwise judge, verl RL parquet."""
    format: Literal["jsonl", "parquet"] = "parquet"
    """File format of the exported files."""
    splits: list[str] = Field(default_factory=lambda: ["train", "validation", "test"])
    """Splits to export (missing splits are skipped)."""
    options: dict = Field(default_factory=dict)
    """Exporter options (see ``rmforge data export``)."""


@register_config("data")
class DataRecipe(ConfigModel):
    """A data recipe (``kind: data``)."""

    kind: Literal["data"] = "data"
    name: str = "dataset"
    """Name shown in the summary."""
    sources: list[SourceConfig] = Field(min_length=1)
    """Where samples come from; several sources are concatenated in order."""
    process: list[ProcessStep] = Field(default_factory=list)
    """Processing steps applied in order (length_filter, dedup, filter, sample, swap)."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """Train/validation/test split."""
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    """Validation settings."""
    exports: list[ExportTarget] = Field(default_factory=lambda: [ExportTarget(to="bt")])
    """Training files to write."""
    output_dir: str = "out/data"
    """Folder for everything the build writes."""
    sample_format: Literal["jsonl", "parquet"] = "parquet"
    """Format of the canonical per-split files under samples/."""
    seed: int = 42
    """Seed for every random step that has no seed of its own."""
    plugins: list[str] = Field(default_factory=list)
    """Modules to import for extra converters/loaders."""

    model_config = ConfigModel.model_config | {"populate_by_name": True}


def build_dataset(cfg: DataRecipe, overwrite: bool = False, console=None) -> dict:
    """Run the recipe and return the summary dict (also saved as summary.json)."""
    from rich.console import Console

    from rmforge.data.export import export_samples
    from rmforge.data.io import write_samples
    from rmforge.data.validate import validate_samples

    console = console or Console()
    out = Path(cfg.output_dir)
    check_replaceable(out, overwrite, "dataset folder")  # before any long work

    samples, loaded = [], []
    for src in cfg.sources:
        before = len(samples)
        samples.extend(_progress(load_source(src, plugins=cfg.plugins), desc=f"load {_source_label(src)}"))
        loaded.append({"source": _source_label(src), "converter": src.converter, "samples": len(samples) - before})
    if not samples:
        raise DataError("the recipe's sources produced no samples")

    samples, step_reports = apply_steps(samples, cfg.process, seed=cfg.seed)
    splits = split_samples(samples, cfg.split)

    summary: dict = {"name": cfg.name, "loaded": loaded, "steps": [_as_dict(r) for r in step_reports],
                     "splits": {k: len(v) for k, v in splits.items()}, "exports": []}
    report = None
    if cfg.validate_.enabled:
        report = validate_samples(s for part in splits.values() for s in part)
        report.render(console)
        summary["validation_ok"] = report.ok
        if not report.ok and cfg.validate_.fail_on_error:
            raise DataError(f"validation found errors in recipe '{cfg.name}'; nothing was written "
                            "(fix the data, add a filter step, or set validate.fail_on_error=false)")

    with atomic_dir(out, overwrite, "dataset folder") as tmp:
        (tmp / "recipe.yaml").write_text(dump_config(cfg), encoding="utf-8")
        if report is not None:
            report.to_json(str(tmp / "validation.json"))
        for split, part in splits.items():
            write_samples(tmp / "samples" / f"{split}.{cfg.sample_format}", part)
        for target in cfg.exports:
            for split in target.splits:
                if split not in splits:
                    continue
                path = tmp / target.to / f"{split}.{target.format}"
                rep = export_samples(splits[split], target.to, path, options=target.options)
                summary["exports"].append({"to": target.to, "split": split, "path": str(out / path.relative_to(tmp)),
                                           "rows": rep.rows_written, "skipped": dict(rep.skipped)})
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    _print_summary(console, cfg, summary)
    return summary


def _source_label(src: SourceConfig) -> str:
    return src.path or src.hf or f"{src.sql_url} {src.sql_table or 'query'}"


def _as_dict(report) -> dict:
    if hasattr(report, "model_dump"):
        return report.model_dump()
    from dataclasses import asdict, is_dataclass

    return asdict(report) if is_dataclass(report) else dict(report)


def _progress(items, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=" samples", disable=None, mininterval=1.0)


def _print_summary(console, cfg: DataRecipe, summary: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"rmforge data build: {cfg.name}"), show_lines=False)
    table.add_column("stage")
    table.add_column("rows", justify="right")
    table.add_column("details")
    for item in summary["loaded"]:
        table.add_row("load", str(item["samples"]), escape(f"{item['source']} ({item['converter']})"))
    for step in summary["steps"]:
        counts = ", ".join(f"{k}: {v}" for k, v in step.get("counts", {}).items())
        table.add_row(escape(str(step.get("step", "step"))), f"{step.get('rows_in')} -> {step.get('rows_out')}",
                      escape(counts))
    table.add_row("split", str(sum(summary["splits"].values())),
                  ", ".join(f"{k}: {v}" for k, v in summary["splits"].items()))
    for exp in summary["exports"]:
        skipped = ", ".join(f"{k}: {v}" for k, v in exp["skipped"].items())
        table.add_row(f"export {exp['to']}", str(exp["rows"]),
                      escape(exp["path"] + (f" (skipped {skipped})" if skipped else "")))
    console.print(table)
    console.print(f"wrote {escape(str(cfg.output_dir))}")
