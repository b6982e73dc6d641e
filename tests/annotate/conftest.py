"""Fixtures for the annotate tests: a real Label Studio server started through ``rmforge annotate server``.

The first run migrates a database with the admin user into ``$RMFORGE_LS_TEST_CACHE``
(default ``~/.cache/rmforge/label-studio-testdb``, ~1.5 min); later runs copy it and start in seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ADMIN_TOKEN = "rmforge-test-admin-token"
ANNOTATOR, ANNOTATOR_TOKEN = "bob@rmforge.local", "rmforge-test-bob-token"


def pytest_configure(config):
    config.addinivalue_line("markers", "labelstudio: needs the label-studio server executable (skipped when absent)")


@pytest.fixture(scope="session")
def label_studio_exe() -> str:
    from rmforge.annotate.server import LabelStudioError, find_label_studio

    try:
        return find_label_studio()
    except LabelStudioError as exc:
        pytest.skip(str(exc))


def _cached_database(exe: str) -> Path:
    from rmforge.annotate.server import DATABASE_FILE, prepare
    from rmforge.fileio import atomic_dir

    cache = Path(os.environ.get("RMFORGE_LS_TEST_CACHE", Path.home() / ".cache" / "rmforge" / "label-studio-testdb"))
    if not (cache / DATABASE_FILE).is_file():
        with atomic_dir(cache) as tmp:
            prepare(exe, tmp, token=ADMIN_TOKEN)
    return cache


@pytest.fixture(scope="module")
def label_studio(label_studio_exe, tmp_path_factory):
    """(url, admin token, annotator token) of a fresh server on a copy of the cached database."""
    from rmforge.annotate.server import free_port

    data_dir = tmp_path_factory.mktemp("ls") / "data"
    shutil.copytree(_cached_database(label_studio_exe), data_dir)
    port = free_port()
    cmd = [sys.executable, "-m", "rmforge", "annotate", "server", "--port", str(port), "--data-dir", str(data_dir),
           "--label-studio-bin", label_studio_exe, "--annotator", f"{ANNOTATOR}={ANNOTATOR_TOKEN}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"COLUMNS": "200"})
    lines, ready = [], None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if line.startswith("Label Studio ready at "):
            ready = line.split(" at ", 1)[1].strip()
        if ready and line.startswith("token: "):
            break
    if not ready:
        proc.kill()
        pytest.fail("rmforge annotate server did not start:\n" + "".join(lines))
    assert ready == f"http://127.0.0.1:{port}" and line.strip() == f"token: {ADMIN_TOKEN}"
    yield ready, ADMIN_TOKEN, ANNOTATOR_TOKEN
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
