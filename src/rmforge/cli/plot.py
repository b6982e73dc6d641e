"""``rmforge plot RUN_DIR``: PNG training curves of a run (registered in rmforge.cli as ``plot``)."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, run_guarded


def plot(run_dir: str = typer.Argument(..., help="run directory written by 'rmforge train' (has metrics.jsonl)"),
         out: str = typer.Option(None, "--out", help="folder for the PNG files (default RUN_DIR/plots)")) -> None:
    """Plot loss, accuracy, margin, learning rate and validation reward distributions as PNG files."""

    def run() -> None:
        from rich.markup import escape

        from rmforge.train.plot import plot_run

        files = plot_run(run_dir, out_dir=out, note=lambda msg: console.print(f"[yellow]note:[/] {escape(msg)}"))
        for path in files:
            console.print(escape(str(path)), highlight=False, soft_wrap=True)
        console.print(f"{len(files)} plot(s) written")

    run_guarded(run)
