"""``rmforge train sft`` and ``rmforge train judge`` (issue 7; registered onto ``rmforge train``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the generative-judge commands to the ``train`` group (none yet)."""
