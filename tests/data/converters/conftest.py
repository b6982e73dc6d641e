"""Helpers for the converter tests: run a built-in converter over a fixture file."""

from pathlib import Path

import pytest

from rmforge.data.records import iter_file
from rmforge.data.registry import convert_records

CONVERTER_ASSETS = Path(__file__).resolve().parents[2] / "assets" / "converters"


@pytest.fixture
def convert():
    """``convert(name, path, **kw)`` -> list of samples (relative paths resolve in tests/assets/converters)."""

    def run(name, path, **kw):
        path = Path(path)
        if not path.is_absolute():
            path = CONVERTER_ASSETS / path
        return list(convert_records(iter_file(path), name, file=str(path), **kw))

    return run
