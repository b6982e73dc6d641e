"""``rmforge quickstart``: demo data -> train -> evaluate -> report, in one command."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, run_guarded


def quickstart(overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. model=smollm2-135m "
                                                                 "output_dir=runs/qs data=PATH")) -> None:
    """Train and evaluate a reward model end to end on data that ships with rmforge (no network needed)."""

    def run() -> None:
        from rmforge.config import load_config
        from rmforge.quickstart import QuickstartConfig, run_quickstart

        cfg = load_config(None, overrides or [], cls=QuickstartConfig)
        report = run_quickstart(cfg, console)
        console.print(f"report: {cfg.output_dir}/report.md")
        print(f"held-out accuracy: {report['accuracy']:.3f} (untrained: {report['untrained_accuracy']:.3f})")

    run_guarded(run)
