"""``rmforge annotate``: Label Studio server, push/pull of tasks, agreement (issue 8; not yet available)."""

from __future__ import annotations

import typer

from rmforge.cli.common import err_console

app = typer.Typer(no_args_is_help=True, help="(annotate: not yet available)")


def _not_yet(args: list[str] = typer.Argument(None)) -> None:
    from rmforge import __version__

    err_console.print(f"[red]error:[/] 'rmforge annotate' is not yet available in rmforge {__version__}")
    raise typer.Exit(2)


for _verb in ("server", "push", "pull", "agreement"):
    app.command(_verb, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_not_yet)
