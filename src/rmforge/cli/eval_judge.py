"""``rmforge eval judge MODEL DATA mode=pointwise|pairwise [key=value ...] [--json OUT.json]`` (onto ``rmforge eval``)."""

from __future__ import annotations

import typer
from rich.markup import escape

from rmforge.cli.common import console, err_console, parse_pairs, run_guarded

OPTIONS = {"mode": "pairwise", "limit": None, "batch_size": 16, "max_new_tokens": 64, "k": 2.0,
           "enable_thinking": None, "template": None, "scale": None, "seed": 0}
"""key=value options of ``rmforge eval judge`` and their defaults."""


def _options(items: list[str] | None) -> dict:
    from rmforge.errors import ConfigError

    given = parse_pairs(items, "option")
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    opts = {**OPTIONS, **given}
    if opts["mode"] not in ("pointwise", "pairwise"):
        raise ConfigError(f"mode must be pointwise or pairwise, not {opts['mode']!r}")
    if opts["scale"] is not None:
        opts["scale"] = tuple(float(x) for x in opts["scale"])
    return opts


def _table(metrics: dict):
    from rich.table import Table

    table = Table(title=escape(f"{metrics['mode']} judge: {metrics['model']}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(escape(key), f"{value:.4f}")
        elif key not in ("model", "data", "mode"):
            table.add_row(escape(key), "-" if value is None else escape(str(value)))
    return table


def register(app: typer.Typer) -> None:
    """Add the judge evaluation command to the ``eval`` group."""

    @app.command("judge", context_settings={"allow_extra_args": True})
    def judge(model: str = typer.Argument(..., help="causal LM: run directory, folder or embedded name"),
              data: str = typer.Argument(..., help="judge data: pointwise/pairwise/verl export, or canonical samples"),
              options: list[str] = typer.Argument(None, help=f"key=value: {', '.join(OPTIONS)}"),
              json_out: str = typer.Option(None, "--json", help="write metrics and per-example verdicts here"),
              overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file")) -> None:
        """Generate verdicts and report accuracy / MAE / Spearman, parse failures, position consistency."""

        def run() -> None:
            from rmforge.cli.eval import _write_json, check_outputs
            from rmforge.evaluate.judge import evaluate_judge

            opts = _options(options)
            check_outputs(json_out, None, overwrite)
            metrics, rows = evaluate_judge(model, data, **opts)
            console.print(_table(metrics))
            if json_out:
                _write_json(json_out, {"metrics": metrics, "examples": rows}, overwrite)
                err_console.print(f"result written to {escape(json_out)}")

        run_guarded(run)
