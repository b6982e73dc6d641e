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


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch) -> Path:
    """A folder in which creating a file fails with EROFS, as on a read-only mount (tests run as root,
    which ignores 0555 modes and passes os.access, so the failure is simulated at tempfile.mkstemp)."""
    import tempfile

    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == ro.resolve():
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return ro
