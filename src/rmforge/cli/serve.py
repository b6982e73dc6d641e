"""``rmforge serve``: the reward-model scoring server (issue 6; not yet available)."""

from __future__ import annotations

import typer

from rmforge.cli.common import err_console


def serve(args: list[str] = typer.Argument(None)) -> None:
    """(serve: not yet available)"""
    from rmforge import __version__

    err_console.print(f"[red]error:[/] 'rmforge serve' is not yet available in rmforge {__version__}")
    raise typer.Exit(2)
