"""``rmforge eval judge`` (issue 7; registered onto ``rmforge eval``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the judge evaluation command to the ``eval`` group (none yet)."""
