"""Shared fixtures: paths to tests/assets and to the optional ../shared/data folder."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture
def assets() -> Path:
    return ASSETS


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real hh-rlhf and benchmark files); the test is skipped when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
