"""The FastAPI application: endpoints, bearer auth, limits, metrics; scoring goes through the batcher.

Endpoints (``docs/serve.md``): ``POST /score``, ``/compare``, ``/rank``, OpenRLHF's ``/get_reward``;
``GET /health`` (no auth), ``/info``, ``/metrics``. Status codes: 401 no token, 403 wrong token or
client outside ``--allow-from``, 408 body not received in time, 413 body/items/token limits, 422 invalid
input, 500 scoring failed (e.g. a non-finite reward), 503 queue full or shutting down, 504 timeout.
The ASGI :class:`Guard` decides auth from the request head (token, peer address) before it reads a
byte of the body, then reads the body under a size limit and a deadline.
A generative-judge backend answers the same endpoints with rewards that may be null (parse
failure) plus ``parse_ok`` and ``judgements`` (:func:`judge_fields`).
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from rmforge.serve.backend import Backend, Group, Item, ItemError, TextItem, sigmoid
from rmforge.serve.batcher import DynamicBatcher, QueueFull
from rmforge.data.schema import replace_surrogates
from rmforge.errors import RmforgeError
from rmforge.serve.config import Access, Network, ServeConfig
from rmforge.serve.judge_backend import Judged
from rmforge.serve.metrics import ServeMetrics
from rmforge.serve.schemas import CompareRequest, GetRewardRequest, RankRequest, ScoreRequest

ENDPOINTS = ("/score", "/compare", "/rank", "/get_reward", "/health", "/info", "/metrics")
PUBLIC = ("/health",)


def create_app(backend: Backend, cfg: ServeConfig | None = None, token: str | None = None,
               allow_from: tuple[Network, ...] = ()) -> "Guard":
    """An app serving ``backend``: clients in ``allow_from`` need no header, the others the bearer
    ``token``; neither given turns authentication off (the caller checks that it is allowed)."""
    cfg = cfg or ServeConfig()
    access = Access(token, tuple(allow_from))
    metrics = ServeMetrics()
    batcher = DynamicBatcher(backend.run, max_batch_rows=cfg.max_batch_rows, max_wait_s=cfg.max_wait_ms / 1000,
                             max_queue_rows=cfg.max_queue_rows, dynamic=cfg.dynamic_batching,
                             on_step=metrics.on_step)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()  # in-flight requests finish first

    app = FastAPI(title="rmforge reward-model server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.backend, app.state.cfg, app.state.batcher, app.state.metrics = backend, cfg, batcher, metrics
    app.state.access = access

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422 body, with lone surrogates anywhere in it (an extra field, a key, a value
        of the wrong type, echoed as ``input``) replaced by U+FFFD: it must be writable as UTF-8 (a 500).
        A deeply nested input is not echoed (encoding it would exceed the recursion limit: a 500 too)."""
        try:
            detail = replace_surrogates(jsonable_encoder(exc.errors()))
        except RecursionError:
            detail = replace_surrogates([{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()])
        return JSONResponse({"detail": detail}, status_code=422)

    norm = backend.normalization

    def normalized(rewards: list[float | None]) -> list[float | None] | None:
        return None if norm is None else [None if r is None else (r - norm[0]) / norm[1] for r in rewards]

    async def score(items: list[Item], field: str) -> list[list[float]]:
        rows = sum(len(it.responses) if isinstance(it, Group) else 1 for it in items)
        metrics.items.observe(rows)
        if rows > cfg.max_items:
            metrics.rejected.labels("too_many_items").inc()
            raise HTTPException(413, f"{rows} responses in one request; the limit is {cfg.max_items}")
        try:
            out = await batcher.submit(items, rows, cfg.timeout_s)
        except QueueFull as exc:
            metrics.rejected.labels("queue_full").inc()
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        except TimeoutError as exc:
            metrics.rejected.labels("timeout").inc()
            raise HTTPException(504, str(exc)) from None
        except ItemError as exc:
            where = field if field == "candidates" else f"{field}[{exc.index}]"
            raise HTTPException(exc.status, f"{where}: {exc.reason}") from None
        except Exception as exc:  # the backend failed (its batch-mates were retried alone by the batcher)
            metrics.errors.labels("model" if isinstance(exc, RmforgeError) else "backend").inc()
            raise HTTPException(500, f"scoring failed: {exc if isinstance(exc, RmforgeError) else repr(exc)}") from None
        finally:
            metrics.queue_rows.set(batcher.queued_rows)
        bad = first_non_finite(out)
        if bad is not None:  # never a 200 with null/NaN for a scalar reward
            metrics.errors.labels("non_finite").inc()
            where = field if field == "candidates" else f"{field}[{bad}]"
            raise HTTPException(500, f"{where}: the model returned a non-finite reward (NaN or Inf); "
                                     "its weights may be corrupted")
        return out

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": backend.name}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        import torch

        return {**backend.info(), "limits": cfg.model_dump(), "auth": access.enabled,
                "allow_from": [str(n) for n in access.allow_from], "torch_threads": torch.get_num_threads()}

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_rows.set(batcher.queued_rows)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/score")
    async def score_items(req: ScoreRequest) -> dict[str, Any]:
        out = await score([Group(it.prompt, [it.response]) for it in req.items], "items")
        rewards = [rewards_of(r)[0] for r in out]
        return {"rewards": rewards, "normalized_rewards": normalized(rewards), **judge_fields(out)}

    @app.post("/compare")
    async def compare(req: CompareRequest) -> dict[str, Any]:
        out = await score([Group(p.prompt, [p.a, p.b]) for p in req.pairs], "pairs")
        ra, rb = [rewards_of(r)[0] for r in out], [rewards_of(r)[1] for r in out]
        p = [r.p_a_better if isinstance(r, Judged) else sigmoid(r[0] - r[1]) for r in out]
        return {"rewards_a": ra, "rewards_b": rb, "p_a_better": p,
                "normalized_a": normalized(ra), "normalized_b": normalized(rb), **judge_fields(out)}

    @app.post("/rank")
    async def rank(req: RankRequest) -> dict[str, Any]:
        out = (await score([Group(req.prompt, list(req.candidates))], "candidates"))[0]
        rewards = rewards_of(out)
        keys = [float("-inf") if r is None else r for r in rewards]  # a failed verdict ranks last
        order = sorted(range(len(keys)), key=lambda i: -keys[i])
        ranks = [1 + sum(o > v for o in keys) for v in keys]
        extra = {"parse_ok": out.parse_ok, "judgements": out.judgements} if isinstance(out, Judged) else {}
        return {"rewards": rewards, "order": order, "ranks": ranks, "normalized_rewards": normalized(rewards),
                **extra}

    @app.post("/get_reward")
    async def get_reward(req: GetRewardRequest) -> dict[str, Any]:
        prompts = req.prompts or [None] * len(req.query)
        out = await score([TextItem(q, p) for q, p in zip(req.query, prompts)], "query")
        raw = [rewards_of(r)[0] for r in out]
        norm_r = normalized(raw)
        return {"rewards": norm_r if cfg.normalize and norm_r is not None else raw, "raw_rewards": raw,
                "normalized": bool(cfg.normalize and norm_r is not None), **judge_fields(out)}

    return Guard(app, metrics, cfg.max_body_bytes, access, cfg.read_timeout_s)


def rewards_of(result: list[float] | Judged) -> list[float | None]:
    return result.rewards if isinstance(result, Judged) else result


def first_non_finite(out: list) -> int | None:
    """Index of the first item with a NaN/Inf reward (a judge's None is a parse failure, not an error)."""
    for i, result in enumerate(out):
        if any(r is not None and not math.isfinite(r) for r in rewards_of(result)):
            return i
    return None


def probe_backend(backend: Backend) -> None:
    """One forward on a tiny probe before serving: a model whose reward is NaN/Inf (corrupted weights)
    is refused with a one-line :class:`RmforgeError`. Scalar backends only (a judge would generate)."""
    if getattr(backend, "kind", None) != "scalar":
        return
    from rmforge.data.schema import Message

    probe = [Group([Message(role="user", content="Hello")], [[Message(role="assistant", content="Hi there.")]])]
    try:
        result = backend.run([probe])[0]
    except RmforgeError as exc:
        raise RmforgeError(f"{backend.name}: the start-up check failed, refusing to serve it: {exc}") from None
    if isinstance(result, Exception):
        raise RmforgeError(f"{backend.name}: the start-up check could not score a probe: {result}")
    if first_non_finite(result) is not None:
        raise RmforgeError(f"{backend.name}: the model gives a non-finite reward ({result[0][0]}) on a probe "
                           "input; its weights are corrupted (NaN/Inf): refusing to serve it")


def judge_fields(out: list) -> dict[str, Any]:
    """``parse_ok`` and ``judgements`` (completions, statuses, verdicts) per item of a judge backend."""
    if not out or not isinstance(out[0], Judged):
        return {}
    return {"parse_ok": [r.parse_ok for r in out], "judgements": [r.judgements for r in out]}


class Guard:
    """ASGI wrapper, in this order: auth from the request head (401/403 before any body byte is read),
    request-body size limit (413, also for chunked bodies), body deadline (408), per-endpoint metrics.
    Refusals close the connection (``Connection: close``), so an unread body is never buffered."""

    def __init__(self, app: FastAPI, metrics: ServeMetrics, max_body: int, access: Access | None = None,
                 read_timeout_s: float | None = None):
        self.app, self.metrics, self.max_body = app, metrics, max_body
        self.access, self.read_timeout_s = access or Access(), read_timeout_s
        self.state = app.state  # tests and the runner reach the backend/batcher through here

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        path = scope["path"] if scope["path"] in ENDPOINTS else "other"

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            denied = None if scope["path"] in PUBLIC else self.access.check(
                scope.get("client"), dict(scope["headers"]).get(b"authorization"))
            if denied is not None:
                code, detail = denied
                self.metrics.rejected.labels("unauthorized" if code == 401 else "forbidden").inc()
                extra = {"WWW-Authenticate": "Bearer"} if code == 401 else {}
                return await _send_json(scope, receive, send_status, code, detail, extra)
            try:
                body = await asyncio.wait_for(self._read_limited(scope, receive), self.read_timeout_s)
            except asyncio.TimeoutError:
                self.metrics.rejected.labels("read_timeout").inc()
                return await _send_json(scope, receive, send_status, 408,
                                        f"request body not received within {self.read_timeout_s:g} s")
            if body is None:
                self.metrics.rejected.labels("body_too_large").inc()
                await _send_json(scope, receive, send_status, 413, f"request body larger than {self.max_body} bytes")
            else:
                await self.app(scope, _replay(body, receive) if body is not False else receive, send_status)
        finally:
            self.metrics.requests.labels(path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)

    async def _read_limited(self, scope, receive):
        """False: no body to check; None: over the limit; else the whole body (bytes)."""
        if scope["method"] in ("GET", "HEAD"):
            return False
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(scope, receive, send, status: int, detail: str, headers: dict | None = None) -> None:
    """A refusal that closes the connection (the rest of an unread body is never taken in)."""
    await JSONResponse({"detail": detail}, status_code=status,
                       headers={**(headers or {}), "Connection": "close"})(scope, receive, send)
