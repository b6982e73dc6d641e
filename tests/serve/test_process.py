"""Real `rmforge serve` processes: the ready line, auth, client/grader parity over HTTP, graceful
shutdown (exit 0) with a request in flight, a bounded soak test (64 concurrent clients), --allow-from by
TCP peer, slow clients (half head, half body, unauthenticated big body), the connection cap, and a
corrupted model refused at start-up."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from rmforge.cli import app
from rmforge.serve import RewardClient, RewardModelGrader, ServeError
from rmforge.serve.server import default_threads

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def server(run_dir, serve_process):
    with serve_process(run_dir, "--port", "0", "--token", TOKEN, "--max-wait-ms", "2") as srv:
        yield srv


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(re.search(r"VmRSS:\s+(\d+)", fh.read()).group(1))


def test_ready_line_auth_and_client(server, run_dir, demo):
    assert re.fullmatch(r"serving on http://127\.0\.0\.1:\d+\n", server.first_line)
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    with pytest.raises(ServeError) as no_token:
        RewardClient(server.url).score(["hi"], ["hello"])
    assert no_token.value.status == 401
    with pytest.raises(ServeError) as wrong:
        RewardClient(server.url, "wrong").score(["hi"], ["hello"])
    assert wrong.value.status == 403
    prompts = [[m.model_dump(exclude_none=True) for m in s.prompt] for s in demo[40:46]]
    responses = [[m.model_dump(exclude_none=True) for m in s.chosen] for s in demo[40:46]]
    with RewardClient(server.url, TOKEN) as client:
        remote = client.score(prompts, responses)
        info = client.info()
        assert info["run_dir"] == str(run_dir) and info["normalization"]["std"] > 0
        assert info["torch_threads"] == default_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
        with pytest.raises(ServeError) as bad:
            client.score(["hi"], [" "])
        assert bad.value.status == 422 and "empty" in str(bad.value)
    local = RewardModelGrader(str(run_dir), device="cpu")
    assert remote == pytest.approx(local.score(prompts, responses), abs=1e-5)
    over_http = RewardModelGrader(server.url, token=TOKEN, normalize=True)
    norm = RewardModelGrader(str(run_dir), device="cpu", normalize=True)
    assert over_http(prompts=prompts, completions=responses) == pytest.approx(norm(prompts, responses), abs=1e-5)
    graded = asyncio.run(over_http.aevaluate(query=prompts[0], response=responses[0]))
    assert graded.raw == pytest.approx(remote[0], abs=1e-6)
    assert graded.score == pytest.approx(norm.score(prompts[:1], responses[:1])[0], abs=1e-5)


def test_soak_64_clients(server):
    """64 concurrent clients for a bounded time: every request answered 200, bounded memory growth."""
    body = {"items": [{"prompt": "How do I bake bread?", "response": "Mix flour and water, then bake it."}]}
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def soak(seconds: float):
        stats = {"sent": 0, "ok": 0, "bad": []}
        end = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30, limits=limits) as http:
            async def worker(i: int):
                while time.monotonic() < end:
                    stats["sent"] += 1
                    resp = await http.post("/score", json=body)
                    if resp.status_code == 200 and len(resp.json()["rewards"]) == 1:
                        stats["ok"] += 1
                    else:
                        stats["bad"].append((resp.status_code, resp.text[:200]))

            await asyncio.gather(*(worker(i) for i in range(64)))
        return stats

    asyncio.run(soak(1.0))  # warm-up: allocator and tokenizer caches settle
    before = _rss_kb(server.proc.pid)
    stats = asyncio.run(soak(4.0))
    growth_mb = (_rss_kb(server.proc.pid) - before) / 1024
    assert stats["bad"] == [] and stats["ok"] == stats["sent"] > 64
    assert growth_mb < 100, f"RSS grew by {growth_mb:.0f} MB over {stats['sent']} requests"
    metrics = httpx.get(server.url + "/metrics", headers=headers).text
    merged = re.search(r"rmforge_batch_requests_count (\S+)", metrics)
    total = re.search(r'rmforge_requests_total\{endpoint="/score",status="200"\} (\S+)', metrics)
    assert float(merged.group(1)) < float(total.group(1))  # requests were merged into fewer steps


@pytest.mark.slow  # its own server process (~15 s on a shared 2-core CPU)
def test_graceful_shutdown_finishes_in_flight(run_dir, serve_process):
    """SIGTERM with 8 requests in flight: every one answered 200, then exit status 0 (was 143)."""
    with serve_process(run_dir, "--port", "0", "--no-auth", "--max-wait-ms", "1500") as srv:
        results = []

        def call():
            results.append(httpx.post(srv.url + "/score", json={"items": [{"prompt": "a", "response": "b"}]},
                                      timeout=30))

        workers = [threading.Thread(target=call) for _ in range(8)]
        for worker in workers:
            worker.start()
        time.sleep(0.5)  # the requests wait in the batcher (max wait 1.5 s)
        srv.terminate()
        for worker in workers:
            worker.join(30)
        assert [r.status_code for r in results] == [200] * 8 and all(len(r.json()["rewards"]) == 1 for r in results)
        assert srv.proc.wait(30) == 0  # a graceful stop is a success (uvicorn alone re-raises: 143)
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/health")


@pytest.mark.parametrize("argv,message", [
    (["serve", "m"], "a bearer token is required"),
    (["serve", "m", "--no-auth", "--host", "0.0.0.0"], "only allowed on a loopback host"),
    (["serve", "m", "--no-auth", "--token", "x"], "either --token or --no-auth"),
    (["serve", "m", "--no-auth", "--bogus"], "unexpected arguments: --bogus"),
    (["serve", "m", "--allow-from", "10.0.0.0/33"], "--allow-from '10.0.0.0/33' is not an IP address or network"),
    (["serve", "m", "--allow-from", "0.0.0.0/0", "--host", "0.0.0.0"], "--allow-from 0.0.0.0/0 admits every client"),
    (["serve", "m", "--allow-from", "10.0.0.0/8", "--no-auth"], "either --allow-from or --no-auth"),
])
def test_cli_refuses_unsafe_or_unknown(argv, message, monkeypatch):
    monkeypatch.delenv("RMFORGE_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1 and message in result.output, result.output


def test_cli_refuses_a_corrupted_model(nan_run_dir):
    """NaN weights behind a valid safetensors header: one forward at start-up refuses it, exit 1, one line."""
    result = CliRunner().invoke(app, ["serve", str(nan_run_dir), "--no-auth", "--port", "0"])
    assert result.exit_code == 1 and "non-finite" in result.output and "corrupted" in result.output, result.output
    assert "Traceback" not in result.output and "serving on" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_missing_model_exit_1(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope"), "--no-auth"])
    assert result.exit_code == 1 and "not found" in result.output


# ------------------------------------------------------------------ --allow-from and slow clients
@pytest.fixture(scope="module")
def guarded(run_dir, serve_process):
    """Token + allow-list of 127.0.0.2 (another loopback source address), short read deadline, 6 connections."""
    with serve_process(run_dir, "--port", "0", "--token", TOKEN, "--allow-from", "127.0.0.2/32",
                       "--read-timeout", "2", "--max-connections", "6") as srv:
        yield srv


def _post_raw(url: str, head: str, body: bytes = b"", source: str = "127.0.0.1") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    sock.sendall(head.encode() + body)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_allow_from_real_peer_address(guarded):
    """OpenRLHF's client (no Authorization header) from an allowed address gets rewards; from any other
    address it needs the token, and X-Forwarded-For changes nothing (the TCP peer decides)."""
    body = {"query": ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>"]}
    allowed = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    resp = allowed.post(guarded.url + "/get_reward", json=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200 and len(resp.json()["rewards"]) == 1
    other = httpx.post(guarded.url + "/get_reward", json=body, headers={"X-Forwarded-For": "127.0.0.2"})
    assert other.status_code == 401 and "bearer token" in other.json()["detail"]
    with_token = httpx.post(guarded.url + "/get_reward", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert with_token.json()["rewards"] == pytest.approx(resp.json()["rewards"], abs=1e-6)


def test_slow_clients_are_cut_off(guarded):
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    start = time.monotonic()
    half_head = _post_raw(guarded.url, "POST /score HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
    stalled = _post_raw(guarded.url, f"POST /score HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json"
                                     "\r\nContent-Length: 400\r\n\r\n", b'{"items": [' + b" " * 100)
    answer = _read_all(stalled)  # half the body, then nothing: 408 at the deadline, connection closed
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request body not received within 2 s" in answer
    assert b"connection: close" in answer.lower()
    assert _read_all(half_head) == b""  # closed without an answer
    assert time.monotonic() - start < 8


def test_unauthenticated_big_body_is_refused_unread(guarded):
    """401 from the head alone, while the client is still sending: the server never buffers the body."""
    before = _rss_kb(guarded.proc.pid)
    head = "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n"
    start = time.monotonic()
    for _ in range(5):
        sock = _post_raw(guarded.url, head, b"[" + b" " * 65535)  # 64 KB of 8 MB sent
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"connection: close" in answer, answer[:200]
        try:
            for _ in range(32):
                sock.sendall(b" " * 65536)  # the rest: refused, the server closed the connection
        except OSError:
            pass
        sock.close()
    assert time.monotonic() - start < 2  # answered long before the 2 s read deadline
    assert (_rss_kb(guarded.proc.pid) - before) / 1024 < 5


def test_connection_cap_503(guarded):
    idle = [_post_raw(guarded.url, "") for _ in range(5)]
    try:
        time.sleep(0.2)
        capped = httpx.get(guarded.url + "/health")
        assert capped.status_code == 503 and capped.text == "Service Unavailable"
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(guarded.url + "/health").status_code == 200
