"""Real `rmforge serve` processes: the ready line, auth, client/grader parity over HTTP, graceful
shutdown with a request in flight, and a bounded soak test (64 concurrent clients)."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from rmforge.cli import app
from rmforge.serve import RewardClient, RewardModelGrader, ServeError

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
    with serve_process(run_dir, "--port", "0", "--no-auth", "--max-wait-ms", "1500") as srv:
        result = {}

        def call():
            result["resp"] = httpx.post(srv.url + "/score", json={"items": [{"prompt": "a", "response": "b"}]},
                                        timeout=30)

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(0.5)  # the request waits in the batcher (max wait 1.5 s)
        srv.terminate()
        worker.join(30)
        assert result["resp"].status_code == 200 and len(result["resp"].json()["rewards"]) == 1
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/health")


@pytest.mark.parametrize("argv,message", [
    (["serve", "m"], "a bearer token is required"),
    (["serve", "m", "--no-auth", "--host", "0.0.0.0"], "only allowed on a loopback host"),
    (["serve", "m", "--no-auth", "--token", "x"], "either --token or --no-auth"),
    (["serve", "m", "--no-auth", "--bogus"], "unexpected arguments: --bogus"),
])
def test_cli_refuses_unsafe_or_unknown(argv, message, monkeypatch):
    monkeypatch.delenv("RMFORGE_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and message in result.output, result.output


def test_cli_missing_model_exit_1(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope"), "--no-auth"])
    assert result.exit_code == 1 and "not found" in result.output
