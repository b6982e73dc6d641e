"""verl Reward Loop adapter: rollouts scored by a running ``rmforge serve`` (verl >= 0.9).

verl loads :func:`compute_score` through ``reward.custom_reward_function.path``
(``pkg://rmforge.serve.verl_reward``, or this file's path) and ``.name`` (``compute_score``); it is a coroutine function, so verl's reward-loop workers await it
(``NaiveRewardManager.run_single``) with ``data_source``, ``solution_str`` (the rollout's response,
decoded without special tokens), ``ground_truth`` and ``extra_info`` (the dataset row's
``extra_info``), plus ``reward.custom_reward_function.reward_kwargs`` as keyword arguments.

Scoring is the training-time one: the prompt conversation (``extra_info["prompt"]``, else
``messages``, ``raw_prompt`` or verl's examples' ``question``; messages or a string) and the response
go to ``POST /score`` as a conversation, so the server renders them with the served model's own
template exactly as training and ``rmforge eval`` did. verl does not pass its ``prompt`` column to
reward functions: copy it into ``extra_info.prompt`` when building the parquet (``docs/judges.md``).

Calls are micro-batched per event loop (a reward-loop worker scores its chunk concurrently): calls
arriving within ``max_wait_ms`` of the first, up to ``max_batch``, share one HTTP request; at most
``max_in_flight`` requests run at once. A request that gets no answer within ``timeout_s``, a
connection error or a 5xx is retried ``retries`` times with exponential backoff (``backoff_s``,
doubled each time, at most ``max_backoff_s``; a 503's ``Retry-After`` is honoured up to that cap);
a 4xx is not retried: a batch that gets a 413 or 422 (a bad item) is re-sent item by item, so only the
offending item fails; any other 4xx (auth, a wrong URL) fails the batch at once
(:class:`~rmforge.serve.client.ServeError`). An empty response (the policy stopped at once) is not
sent and scores ``empty_reward``; so does a null reward (a judge server's unparsable verdict).

Settings (keyword arguments, i.e. ``reward_kwargs``): ``url`` / ``token`` (default: the environment
variables ``RMFORGE_SERVE_URL`` / ``RMFORGE_SERVE_TOKEN``), ``normalized``, ``empty_reward``,
``prompt_key``, ``max_batch``, ``max_wait_ms``, ``max_in_flight``, ``timeout_s``, ``retries``,
``backoff_s``, ``max_backoff_s``. The result is ``{"score", "raw_reward", "empty"}`` (same keys for
every sample; ``score`` is the normalised reward under ``normalized``, ``raw_reward`` the server's
``rewards`` entry, None when nothing was scored: verl's metrics skip None).
"""

# no ``from __future__ import annotations``: verl may load this file by path, as a module missing from
# sys.modules, where @dataclass cannot resolve string annotations
import asyncio
import os
import weakref
from dataclasses import dataclass, fields
from typing import Any

import httpx

from rmforge.errors import RmforgeError
from rmforge.serve.client import ServeError, pick

ENV_URL = "RMFORGE_SERVE_URL"
ENV_TOKEN = "RMFORGE_SERVE_TOKEN"
PROMPT_KEYS = ("prompt", "messages", "raw_prompt", "question")
"""Where the prompt is looked for in ``extra_info`` (first present wins) unless ``prompt_key`` is given."""
VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")
"""Keyword arguments verl's reward managers add on their own (ignored)."""


class RewardServerError(RmforgeError):
    """The server gave no usable answer after every retry (timeouts, connection errors, 5xx)."""


@dataclass(frozen=True)
class Settings:
    """How :func:`compute_score` reaches the server (see the module docstring)."""

    url: str
    token: str | None = None
    normalized: bool = False
    empty_reward: float = 0.0
    prompt_key: str | None = None
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_in_flight: int = 4
    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "Settings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in kwargs if k not in known and k not in VERL_KWARGS)
        if unknown:
            raise RmforgeError(f"rmforge verl reward: unknown setting(s) {', '.join(unknown)} "
                               f"(reward_kwargs may hold {', '.join(sorted(known))})")
        given = {k: v for k, v in kwargs.items() if k in known and v is not None}
        given.setdefault("url", os.environ.get(ENV_URL))
        given.setdefault("token", os.environ.get(ENV_TOKEN) or None)
        if not given["url"]:
            raise RmforgeError(f"rmforge verl reward: no server URL; set {ENV_URL} or "
                               "reward.custom_reward_function.reward_kwargs.url")
        out = cls(**given)
        if out.max_batch < 1 or out.max_in_flight < 1 or out.retries < 0 or out.timeout_s <= 0:
            raise RmforgeError(f"rmforge verl reward: bad settings {out}")
        return out


def prompt_of(extra_info: dict | None, key: str | None = None) -> list[dict[str, str]]:
    """The prompt conversation in ``extra_info`` as ``[{"role", "content"}]`` (a string is one user turn)."""
    extra = extra_info or {}
    keys = (key,) if key else PROMPT_KEYS
    found = next((k for k in keys if extra.get(k) is not None), None)
    if found is None:
        raise RmforgeError(f"rmforge verl reward: extra_info has no prompt (looked for {', '.join(keys)}); "
                           "copy the dataset's prompt messages into extra_info.prompt")
    value = _plain(extra[found])
    if isinstance(value, str):
        return [{"role": "user", "content": value}] if value else []
    try:
        return [{"role": str(m["role"]), "content": "" if m.get("content") is None else str(m["content"])}
                for m in value]
    except (TypeError, KeyError, AttributeError):
        raise RmforgeError(f"rmforge verl reward: extra_info.{found} is neither a string nor a list of "
                           "{role, content} messages") from None


def _plain(value):
    """numpy arrays (parquet list columns as verl loads them) -> lists, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class MicroBatcher:
    """Collects concurrent :meth:`score` calls of one event loop into ``POST /score`` requests."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.s = settings
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self.http = httpx.AsyncClient(base_url=settings.url.rstrip("/"), headers=headers,
                                      timeout=settings.timeout_s, transport=transport)
        self.pending: list[tuple[dict, asyncio.Future]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.slots = asyncio.Semaphore(settings.max_in_flight)
        self.requests = 0
        """HTTP requests sent (retries included)."""

    async def score(self, prompt: list[dict], response: str) -> tuple[float | None, float | None]:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(({"prompt": prompt, "response": response}, fut))
        if len(self.pending) >= self.s.max_batch:
            self._flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.s.max_wait_ms / 1000, self._flush)
        return await fut

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.pending:
            batch, self.pending = self.pending[:self.s.max_batch], self.pending[self.s.max_batch:]
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[dict, asyncio.Future]]) -> None:
        try:
            async with self.slots:
                rewards = await self._post([item for item, _ in batch])
        except ServeError as exc:
            if len(batch) > 1 and exc.status in (413, 422):  # about an item: find the offending one(s) alone
                await asyncio.gather(*(self._send([one]) for one in batch))
                return
            _settle(batch, exc=exc)
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets the failure
            _settle(batch, exc=exc)
        else:
            _settle(batch, rewards)

    async def _post(self, items: list[dict]) -> list[tuple[float | None, float | None]]:
        """``(raw reward, reward used)`` per item (they differ under ``normalized``)."""
        delay, last = self.s.backoff_s, ""
        for attempt in range(self.s.retries + 1):
            wait = delay
            self.requests += 1
            try:
                resp = await self.http.post("/score", json={"items": items})
            except httpx.TimeoutException:
                last = f"no answer within timeout_s={self.s.timeout_s:g} s"
            except httpx.TransportError as exc:
                last = f"connection failed: {type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 400:
                    data = resp.json()
                    return list(zip(data["rewards"], pick(data, self.s.normalized)))
                detail = _detail(resp)
                if resp.status_code < 500:
                    raise ServeError(resp.status_code, detail, str(resp.request.url))
                last = f"HTTP {resp.status_code}: {detail}"
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            if attempt < self.s.retries:
                await asyncio.sleep(min(wait, self.s.max_backoff_s))
                delay *= 2
        raise RewardServerError(f"rmforge serve at {self.s.url} failed {self.s.retries + 1} time(s) "
                                f"(retries={self.s.retries}): {last}")

    async def aclose(self) -> None:
        await self.http.aclose()


def _detail(resp: httpx.Response) -> Any:
    try:
        return resp.json().get("detail")
    except (ValueError, AttributeError):
        return resp.text


def _settle(batch, rewards=None, exc: BaseException | None = None) -> None:
    for i, (_, fut) in enumerate(batch):
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(rewards[i])


_BATCHERS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Settings, MicroBatcher]]" = \
    weakref.WeakKeyDictionary()


def batcher_for(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> MicroBatcher:
    """The running loop's batcher for ``settings`` (one HTTP client and queue per loop and server)."""
    per_loop = _BATCHERS.setdefault(asyncio.get_running_loop(), {})
    if settings not in per_loop:
        per_loop[settings] = MicroBatcher(settings, transport)
    return per_loop[settings]


async def compute_score(data_source, solution_str, ground_truth, extra_info=None, *,
                        transport: httpx.AsyncBaseTransport | None = None, **kwargs) -> dict[str, Any]:
    """verl reward of one rollout from ``rmforge serve``: ``{"score", "raw_reward", "empty"}``.

    ``transport`` (an httpx transport) is for tests; the other keyword arguments are :class:`Settings`.
    """
    settings = Settings.from_kwargs(kwargs)
    prompt = prompt_of(extra_info, settings.prompt_key)
    if not str(solution_str or "").strip():
        return {"score": float(settings.empty_reward), "raw_reward": None, "empty": 1.0}
    raw, reward = await batcher_for(settings, transport).score(prompt, str(solution_str))
    if reward is None:  # a judge server's unparsable verdict
        return {"score": float(settings.empty_reward), "raw_reward": None, "empty": 0.0}
    return {"score": float(reward), "raw_reward": float(raw), "empty": 0.0}
