"""``rmforge export``: turn a training run into a plain model folder."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, escape, run_guarded

app = typer.Typer(no_args_is_help=True, help="Export trained models.")


@app.callback()
def _export() -> None:
    """Export trained models."""


@app.command("merge")
def merge(
    run_dir: str = typer.Argument(..., help="run or checkpoint folder (with adapter/ or adapter_config.json, "
                                  "or a full model)"),
    out_dir: str = typer.Argument(..., help="output folder for the plain model"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT_DIR if it exists"),
) -> None:
    """Merge a LoRA run's adapter (and trained head) into its base model: a plain checkpoint loadable
    with AutoModelForSequenceClassification, no peft needed. A run without an adapter is copied."""

    def run() -> None:
        from rmforge.train.lora import merge_run

        info = merge_run(run_dir, out_dir, overwrite=overwrite)
        if info["mode"] == "merged":
            console.print(escape(f"merged {info['adapter']} onto {info['base_model']} -> {info['output']}"),
                          soft_wrap=True)
        else:
            console.print(escape(f"{run_dir} holds a full model (no adapter): copied -> {info['output']}"),
                          soft_wrap=True)

    run_guarded(run)
