"""A local Label Studio server: find the executable, create users non-interactively, start, wait, stop.

Label Studio (``pip install label-studio``) pins versions that can clash with rmforge's
(pyarrow, for one), so it often lives in its own virtual environment; the executable is
looked up in this order: an explicit path, ``$RMFORGE_LABEL_STUDIO_BIN``, ``label-studio``
on ``PATH``, ``~/.cache/rmforge/label-studio-venv/bin/label-studio``.

Everything Label Studio writes goes under one data directory (``LABEL_STUDIO_BASE_DATA_DIR``):
its SQLite database, media, ``server.log`` and rmforge's ``rmforge-connection.json`` (URL,
admin e-mail and API token, mode 600). The first ``init`` runs the database migrations
(about a minute and a half on 2 CPU cores); later starts reuse the migrated database and take
seconds. Users get fixed API tokens through ``label-studio init --user-token`` with legacy
tokens enabled. The version check against PyPI and usage analytics are switched off.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from rmforge.errors import RmforgeError
from rmforge.fileio import atomic_text

ENV_BIN = "RMFORGE_LABEL_STUDIO_BIN"
DEFAULT_VENV_BIN = Path.home() / ".cache" / "rmforge" / "label-studio-venv" / "bin" / "label-studio"
DEFAULT_DATA_DIR = Path(".rmforge") / "label-studio"
CONNECTION_FILE = "rmforge-connection.json"
DATABASE_FILE = "label_studio.sqlite3"
ADMIN_EMAIL = "admin@rmforge.local"


class LabelStudioError(RmforgeError):
    """Label Studio is missing, unreachable, refused the token, or answered unexpectedly."""


def find_label_studio(explicit: str | os.PathLike | None = None) -> str:
    """Path of the ``label-studio`` executable (see the module docstring for the search order)."""
    candidates = [("--label-studio-bin", explicit), (ENV_BIN, os.environ.get(ENV_BIN)),
                  ("PATH", shutil.which("label-studio")), ("default venv", str(DEFAULT_VENV_BIN))]
    for origin, path in candidates:
        if not path:
            continue
        if Path(path).is_file() and os.access(path, os.X_OK):
            return str(path)
        if origin != "default venv":
            raise LabelStudioError(f"label-studio executable from {origin} is not an executable file: {path}")
    raise LabelStudioError(
        "label-studio is not installed: install it into its own environment "
        f"(python -m venv {DEFAULT_VENV_BIN.parents[1]} && {DEFAULT_VENV_BIN.parent}/pip install label-studio==1.23.2) "
        f"or set {ENV_BIN} to its executable")


def server_env(data_dir: Path) -> dict[str, str]:
    """Environment for every label-studio subprocess on ``data_dir``."""
    return os.environ | {"LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
                         "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                         "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
                         "PYTHONUNBUFFERED": "1"}


def _log_tail(text: str, n: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def create_user(exe: str, data_dir: str | os.PathLike, email: str, password: str, token: str,
                timeout: float = 900) -> None:
    """Create a user with a fixed API token (the first call also migrates the database)."""
    if len(token) < 6:
        raise LabelStudioError("the API token must be at least 6 characters long")
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "init", "--data-dir", str(data_dir), "--username", email, "--password", password,
           "--user-token", token, "--enable-legacy-api-token", "--quiet", "--no-browser"]
    try:
        out = subprocess.run(cmd, env=server_env(data_dir), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabelStudioError(f"label-studio init did not finish within {timeout:.0f} s") from None
    if out.returncode != 0 or "successfully initialized" not in out.stdout + out.stderr:
        raise LabelStudioError(f"label-studio init failed (exit {out.returncode}):\n{_log_tail(out.stdout + out.stderr)}")


def read_connection(data_dir: str | os.PathLike) -> dict | None:
    """The connection a previous ``rmforge annotate server`` saved in ``data_dir`` (or None)."""
    path = Path(data_dir) / CONNECTION_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_connection(data_dir: Path, info: dict) -> None:
    with atomic_text(data_dir / CONNECTION_FILE, overwrite=True) as fh:
        json.dump(info, fh, indent=2)
    os.chmod(data_dir / CONNECTION_FILE, 0o600)


def prepare(exe: str, data_dir: str | os.PathLike, token: str | None = None) -> dict:
    """Make ``data_dir`` ready to serve: admin user + token on first use; returns the saved connection."""
    data_dir = Path(data_dir).resolve()
    info = read_connection(data_dir)
    if info and (data_dir / DATABASE_FILE).is_file():
        if token and token != info["token"]:
            raise LabelStudioError(f"{data_dir} was initialised with another token; omit --token or use a new --data-dir")
        return info
    info = {"email": ADMIN_EMAIL, "password": secrets.token_urlsafe(12), "token": token or secrets.token_hex(20)}
    create_user(exe, data_dir, info["email"], info["password"], info["token"])
    write_connection(data_dir, info)
    return info


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """``label-studio start`` on 127.0.0.1:``port`` as a child process group (a context manager)."""

    def __init__(self, exe: str, data_dir: str | os.PathLike, port: int = 8080):
        self.exe, self.data_dir, self.port = exe, Path(data_dir).resolve(), port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    def start(self, timeout: float = 300) -> "LocalServer":
        if not port_free(self.port):
            raise LabelStudioError(f"port {self.port} on 127.0.0.1 is already in use; pass another --port")
        cmd = [self.exe, "start", "--data-dir", str(self.data_dir), "--internal-host", "127.0.0.1",
               "--port", str(self.port), "--no-browser"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=server_env(self.data_dir), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll ``/health`` until it answers ``UP``; fail early if the process exits."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabelStudioError(f"label-studio exited with status {self.proc.returncode} before it was ready; "
                                       f"{self.log_path}:\n{_log_tail(self.log_path.read_text(errors='replace'))}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json().get("status") == "UP":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise LabelStudioError(f"Label Studio at {self.url} did not answer /health within {timeout:.0f} s (log: {self.log_path})")

    def stop(self, grace: float = 15) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "LocalServer":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
