"""``python -m rmforge`` == the ``rmforge`` command."""

from rmforge.cli import main

main()
