"""HTTP behaviour in-process (FastAPI TestClient, real tiny backend): auth, --allow-from by peer address,
auth before the body, body deadline, limits, validation, metrics, non-finite rewards; 503/504 with a
blocking stand-in backend (the real-process paths are in test_process.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from rmforge.errors import ConfigError, RmforgeError
from rmforge.serve.app import create_app, probe_backend
from rmforge.serve.backend import ScalarBackend
from rmforge.serve.config import ServeConfig, check_auth, parse_networks

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ONE = {"items": [{"prompt": "hi", "response": "hello"}]}


@pytest.fixture(scope="module")
def backend(bert_dir):
    return ScalarBackend.load(str(bert_dir), device="cpu", max_length=32, length_policy="truncate_prompt")


@pytest.fixture(scope="module")
def client(backend):
    cfg = ServeConfig(max_items=8, max_body_bytes=4096)
    with TestClient(create_app(backend, cfg, TOKEN)) as c:
        yield c


def test_auth(client):
    assert client.get("/health").status_code == 200  # no token needed
    missing = client.post("/score", json=ONE)
    assert missing.status_code == 401 and "bearer token" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/score", json=ONE, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "invalid token"
    for path in ("/info", "/metrics"):
        assert client.get(path).status_code == 401
    ok = client.post("/score", json=ONE, headers=AUTH)
    assert ok.status_code == 200 and len(ok.json()["rewards"]) == 1


def test_limits_413(client):
    big = client.post("/score", content=b'{"items": [' + b" " * 5000 + b"]}", headers=AUTH)
    assert big.status_code == 413 and "4096 bytes" in big.json()["detail"]

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(10):
            yield b" " * 1000

    chunked = client.post("/score", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert chunked.status_code == 413
    many = client.post("/score", json={"items": ONE["items"] * 9}, headers=AUTH)
    assert many.status_code == 413 and "9 responses in one request; the limit is 8" in many.json()["detail"]
    long = client.post("/score", headers=AUTH, json={"items": [ONE["items"][0],
                                                               {"prompt": "hi", "response": "word " * 100}]})
    assert long.status_code == 413 and long.json()["detail"].startswith("items[1]: does not fit max_length=32")
    text = client.post("/get_reward", headers=AUTH, json={"query": ["hi " * 100]})
    assert text.status_code == 413 and text.json()["detail"].startswith("query[0]:")
    long_prompt = client.post("/score", headers=AUTH, json={"items": [{"prompt": "word " * 100, "response": "ok"}]})
    assert long_prompt.status_code == 200  # truncate_prompt: the prompt is cut, the response kept


@pytest.mark.parametrize("body,where", [
    ({"items": [{"prompt": "hi", "response": "   "}]}, "the response is empty"),
    ({"items": [{"prompt": "hi", "response": []}]}, "at least one message"),
    ({"items": []}, "at least 1 item"),
    ({"items": [{"prompt": [{"role": "robot", "content": "x"}], "response": "y"}]}, "role"),
    ({"pairs": [{"a": "x"}]}, "Field required"),
    ({"query": ["a", " "]}, "query[1] is empty"),
    ({"query": ["a"], "prompts": ["a", "b"]}, "'prompts' has 2 entries for 1 queries"),
])
def test_validation_422(client, body, where):
    path = "/compare" if "pairs" in body else "/get_reward" if "query" in body else "/score"
    resp = client.post(path, json=body, headers=AUTH)
    assert resp.status_code == 422 and where in resp.text, resp.text
    assert client.post("/score", json=ONE, headers=AUTH).status_code == 200  # still serving


def test_malformed_json_422(client):
    resp = client.post("/score", content=b"{bad", headers={**AUTH, "content-type": "application/json"})
    assert resp.status_code == 422 and "JSON decode error" in resp.text


def test_info_and_metrics(client):
    info = client.get("/info", headers=AUTH).json()
    assert info["backend"] == "scalar" and info["encoding"]["format"] == "pair" and info["auth"] is True
    assert info["limits"]["max_items"] == 8 and info["normalization"] is None
    client.post("/score", json=ONE, headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert 'rmforge_requests_total{endpoint="/score",status="200"}' in text
    assert "rmforge_batch_rows_bucket" in text and "rmforge_request_seconds_bucket" in text


class BlockingBackend:
    """Stand-in backend whose steps wait for ``release`` (to fill the queue deterministically)."""

    name, kind, normalization = "blocking", "scalar", None

    def __init__(self):
        self.release, self.started = threading.Event(), threading.Event()

    def run(self, jobs):
        self.started.set()
        self.release.wait(10)
        return [[[0.0]] * len(job) for job in jobs]

    def info(self):
        return {"backend": self.kind}


def test_queue_full_503_and_timeout_504():
    fake = BlockingBackend()
    cfg = ServeConfig(max_queue_rows=2, max_wait_ms=0, timeout_s=30)
    with TestClient(create_app(fake, cfg)) as client:
        results = {}

        def post(key, n):
            results[key] = client.post("/score", json={"items": ONE["items"] * n})

        first = threading.Thread(target=post, args=("first", 1))
        first.start()
        assert fake.started.wait(10)  # the first request is being scored; the queue is empty
        second = threading.Thread(target=post, args=("second", 2))
        second.start()
        deadline = time.monotonic() + 10
        while client.app.state.batcher.queued_rows < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        full = client.post("/score", json=ONE)
        assert full.status_code == 503 and "queue full" in full.json()["detail"]
        assert full.headers["retry-after"] == "1"
        fake.release.set()
        first.join(10)
        second.join(10)
        assert results["first"].status_code == 200 and results["second"].status_code == 200
    slow = BlockingBackend()
    with TestClient(create_app(slow, ServeConfig(timeout_s=0.2, max_wait_ms=0))) as client:
        resp = client.post("/score", json=ONE)
        slow.release.set()
        assert resp.status_code == 504 and "not scored within 0.2 s" in resp.json()["detail"]


# ---------------------------------------------------------------- allow-list, auth before body, timeouts
NETS = parse_networks(["10.0.0.0/8", "fd00::/8"])


def test_allow_from_uses_the_peer_address(backend):
    """OpenRLHF sends no Authorization header: clients in --allow-from need none, others still do.
    The rule reads the ASGI peer (scope["client"]), never X-Forwarded-For."""
    app = create_app(backend, ServeConfig(), TOKEN, NETS)
    for peer in ("10.1.2.3", "::ffff:10.0.0.7", "fd00::5"):
        with TestClient(app, client=(peer, 40000)) as c:
            resp = c.post("/get_reward", json={"query": ["hi there"]})  # OpenRLHF's body, no header
            assert resp.status_code == 200 and len(resp.json()["rewards"]) == 1, peer
    with TestClient(app, client=("192.168.0.9", 40000)) as c:
        spoofed = c.post("/get_reward", json={"query": ["hi"]}, headers={"X-Forwarded-For": "10.1.2.3",
                                                                         "X-Real-IP": "10.1.2.3"})
        assert spoofed.status_code == 401 and spoofed.headers["www-authenticate"] == "Bearer"
        assert c.post("/get_reward", json={"query": ["hi"]}, headers=AUTH).status_code == 200
        assert c.get("/health").status_code == 200
    only_list = create_app(backend, ServeConfig(), None, NETS)  # --allow-from without --token
    with TestClient(only_list, client=("192.168.0.9", 40000)) as c:
        outside = c.post("/score", json=ONE, headers=AUTH)
        assert outside.status_code == 403
        assert outside.json()["detail"] == "client address 192.168.0.9 is not allowed (--allow-from)"
        info = TestClient(only_list, client=("10.9.9.9", 1)).get("/info").json()
        assert info["auth"] is True and info["allow_from"] == ["10.0.0.0/8", "fd00::/8"]


def test_parse_networks_and_check_auth():
    assert [str(n) for n in parse_networks(["10.1.2.3/8", "192.168.1.7"])] == ["10.0.0.0/8", "192.168.1.7/32"]
    with pytest.raises(ConfigError, match=r"--allow-from 'ten' is not an IP address or network"):
        parse_networks(["ten"])
    with pytest.raises(ConfigError, match=r"--allow-from ::/0 admits every client"):
        parse_networks(["::/0"])
    check_auth("0.0.0.0", None, False, ["10.0.0.0/8"])  # allow-list alone protects a public host
    with pytest.raises(ConfigError, match="either --allow-from or --no-auth"):
        check_auth("127.0.0.1", None, True, ["10.0.0.0/8"])


def test_allow_from_ipv4_mapped_network_admits_its_ipv4_peers(backend):
    """Peers are compared as IPv4 (::ffff:10.0.0.7 is 10.0.0.7), so an IPv4-mapped --allow-from network is
    read as its IPv4 network (it matched no peer at all before); ::ffff:0:0/96 admits every IPv4 client."""
    nets = parse_networks(["::ffff:10.0.0.0/104"])
    assert [str(n) for n in nets] == ["10.0.0.0/8"]
    app = create_app(backend, ServeConfig(), TOKEN, nets)
    for peer in ("10.1.2.3", "::ffff:10.0.0.7"):
        with TestClient(app, client=(peer, 40000)) as c:
            assert c.post("/get_reward", json={"query": ["hi there"]}).status_code == 200, peer
    with TestClient(app, client=("11.0.0.1", 40000)) as c:
        assert c.post("/get_reward", json={"query": ["hi there"]}).status_code == 401
    with pytest.raises(ConfigError, match="admits every client"):
        parse_networks(["::ffff:0:0/96"])


def _asgi(app, method, path, headers, chunks, hang=False):
    """Call the ASGI app directly; returns (status, headers, body, receive calls)."""
    calls, sent = [], []

    async def receive():
        calls.append(1)
        if len(calls) <= len(chunks):
            return {"type": "http.request", "body": chunks[len(calls) - 1],
                    "more_body": hang or len(calls) < len(chunks)}
        await asyncio.sleep(3600)  # a client that stalls mid-body

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "client": ("1.2.3.4", 5),
             "server": ("127.0.0.1", 8000), "scheme": "http", "http_version": "1.1", "root_path": ""}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, len(calls)


def test_auth_is_checked_before_the_body_is_read(backend):
    app = create_app(backend, ServeConfig(), TOKEN)
    big = {"content-length": str(8 * 1024 * 1024), "content-type": "application/json"}
    for headers, code in ((big, 401), ({**big, "authorization": "Bearer nope"}, 403)):
        status, resp_headers, body, reads = _asgi(app, "POST", "/score", headers, [b"x" * 65536] * 128)
        assert (status, reads) == (code, 0)  # answered from the head alone: not one body chunk read
        assert resp_headers[b"connection"] == b"close"  # the unread rest is never taken in


def test_half_sent_body_gets_408(backend):
    app = create_app(backend, ServeConfig(read_timeout_s=0.3), TOKEN)
    start = time.monotonic()
    status, headers, body, reads = _asgi(app, "POST", "/score", {**AUTH, "content-length": "400"},
                                         [b'{"items": [' + b" " * 100], hang=True)
    assert status == 408 and json.loads(body)["detail"] == "request body not received within 0.3 s"
    assert headers[b"connection"] == b"close" and time.monotonic() - start < 2


# ---------------------------------------------------------------- non-finite rewards
class NaNBackend(BlockingBackend):
    """Stand-in for a corrupted model: every reward is NaN."""

    name = "nan-model"

    def run(self, jobs):
        return [[[float("nan")] * len(g.responses) for g in job] for job in jobs]


def test_non_finite_reward_is_a_500_not_null():
    with TestClient(create_app(NaNBackend(), ServeConfig(max_wait_ms=0))) as client:
        resp = client.post("/score", json=ONE)
        assert resp.status_code == 500
        assert resp.json()["detail"] == ("items[0]: the model returned a non-finite reward (NaN or Inf); "
                                         "its weights may be corrupted")
        assert 'rmforge_errors_total{reason="non_finite"} 1.0' in client.get("/metrics").text
    with pytest.raises(RmforgeError, match=r"nan-model: the model gives a non-finite reward \(nan\) on a probe"):
        probe_backend(NaNBackend())


def test_backend_error_is_a_500_with_its_message():
    class Broken(BlockingBackend):
        def run(self, jobs):
            raise RmforgeError("reward is NaN for 1 of 1 rows")

    with TestClient(create_app(Broken(), ServeConfig(max_wait_ms=0))) as client:
        resp = client.post("/score", json=ONE)
        assert resp.status_code == 500 and resp.json()["detail"] == "scoring failed: reward is NaN for 1 of 1 rows"
        assert 'rmforge_errors_total{reason="model"} 1.0' in client.get("/metrics").text


def test_non_finite_model_refused_by_probe_and_500_at_request_time(run_dir, nan_run_dir):
    """Weights that pass the loader's check but give NaN rewards (here: poisoned after loading): the
    start-up probe refuses them, and a request never gets a 200 with null."""
    import torch

    with pytest.raises(RmforgeError, match="non-finite weights"):  # the loader's own check (evaluate)
        ScalarBackend.load(str(nan_run_dir), device="cpu")
    backend = ScalarBackend.load(str(run_dir), device="cpu")
    probe_backend(backend)  # a sound model passes
    with torch.no_grad():
        backend.scorer.model.score.weight.fill_(float("nan"))
    with pytest.raises(RmforgeError, match=r"the model gives a non-finite reward \(nan\) on a probe input"):
        probe_backend(backend)
    with TestClient(create_app(backend, ServeConfig(max_wait_ms=0))) as client:
        resp = client.post("/get_reward", json={"query": ["hello", "there"]})
        assert resp.status_code == 500 and resp.json()["detail"].startswith("query[0]: the model returned a "
                                                                           "non-finite reward (NaN or Inf)")
