"""Server management without Label Studio: executable lookup, port checks, start failures, saved connection."""

import socket
import stat

import pytest

from rmforge.annotate.client import resolve_connection
from rmforge.annotate.server import (LabelStudioError, LocalServer, create_user, find_label_studio, prepare,
                                     write_connection)


def fake_exe(tmp_path, body):
    path = tmp_path / "label-studio"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_find_label_studio_order(tmp_path, monkeypatch):
    exe = fake_exe(tmp_path, "exit 0")
    monkeypatch.setenv("RMFORGE_LABEL_STUDIO_BIN", exe)
    assert find_label_studio() == exe
    assert find_label_studio(exe) == exe
    with pytest.raises(LabelStudioError, match="from --label-studio-bin is not an executable file"):
        find_label_studio(tmp_path / "nope")


def test_start_refuses_a_busy_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(LabelStudioError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalServer(fake_exe(tmp_path, "exit 0"), tmp_path, port).start()


def test_start_reports_an_early_exit_with_the_log(tmp_path):
    from rmforge.annotate.server import free_port

    srv = LocalServer(fake_exe(tmp_path, "echo 'migration exploded'; exit 3"), tmp_path, free_port())
    with pytest.raises(LabelStudioError, match=r"exited with status 3 before it was ready(.|\n)*migration exploded"):
        srv.start(timeout=30)


def test_init_failure_and_short_token(tmp_path):
    exe = fake_exe(tmp_path, "echo 'no such table'; exit 1")
    with pytest.raises(LabelStudioError, match=r"label-studio init failed \(exit 1\):\nno such table"):
        prepare(exe, tmp_path / "d")
    with pytest.raises(LabelStudioError, match="at least 6 characters"):
        create_user(exe, tmp_path / "d", "a@b.c", "pw", "short")
    assert not (tmp_path / "d" / "rmforge-connection.json").exists()


def test_saved_connection_is_used_when_no_url_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    write_connection(tmp_path, {"url": "http://127.0.0.1:9999", "token": "saved-token"})
    assert resolve_connection(None, None, tmp_path) == ("http://127.0.0.1:9999", "saved-token")
    assert resolve_connection("http://h:1/", "t", tmp_path) == ("http://h:1", "t")
    assert oct((tmp_path / "rmforge-connection.json").stat().st_mode & 0o777) == "0o600"
