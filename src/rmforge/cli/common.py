"""Console objects and the error guard shared by every CLI verb."""

from __future__ import annotations

from typing import Callable

import typer
from rich.console import Console

from rmforge.errors import RmforgeError

console = Console()
err_console = Console(stderr=True)


def run_guarded(fn: Callable[[], object]) -> object:
    """Run ``fn``; print rmforge errors as one red line on stderr and exit with their status."""
    try:
        return fn()
    except RmforgeError as exc:
        from rich.text import Text

        err_console.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def parse_pairs(items: list[str] | None, what: str) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    from rmforge.errors import ConfigError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} '{item}' is not of the form key=value")
        out[key] = yaml.safe_load(value) if value else ""
    return out
