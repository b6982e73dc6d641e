"""HTTP behaviour in-process (FastAPI TestClient, real tiny backend): auth, limits, validation, metrics;
503/504 with a blocking stand-in backend (the real-process paths are in test_process.py)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from rmforge.serve.app import create_app
from rmforge.serve.backend import ScalarBackend
from rmforge.serve.config import ServeConfig

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
