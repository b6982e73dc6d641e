"""HTTP clients for ``rmforge serve`` (sync and async, httpx); errors become :class:`ServeError`.

Prompts and responses are strings or lists of ``{"role", "content"}`` messages, as in the API.
"""

from __future__ import annotations

from typing import Any, Sequence

import httpx

from rmforge.errors import RmforgeError

Conv = str | list[dict[str, Any]]


class ServeError(RmforgeError):
    """A non-2xx answer from the server (``status`` and the server's ``detail``)."""

    def __init__(self, status: int, detail: Any, url: str):
        self.status, self.detail = status, detail
        super().__init__(f"{url}: HTTP {status}: {detail}")


def _items(prompts: Sequence[Conv], responses: Sequence[Conv]) -> dict[str, Any]:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
    return {"items": [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]}


def pick(data: dict[str, Any], normalized: bool) -> list[float]:
    if not normalized:
        return data["rewards"]
    if data.get("normalized_rewards") is None:
        raise RmforgeError("the served model has no normalisation statistics (not an rmforge run directory)")
    return data["normalized_rewards"]


class _Base:
    def __init__(self, url: str, token: str | None = None):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _check(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail")
            except ValueError:
                detail = resp.text
            raise ServeError(resp.status_code, detail, str(resp.request.url))
        return resp.json()


class RewardClient(_Base):
    """Blocking client: ``RewardClient("http://127.0.0.1:8000", token=...).score(prompts, responses)``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        super().__init__(url, token)
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._check(self.http.post(path, json=body))

    def score_detail(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> dict[str, Any]:
        """The whole ``/score`` answer: ``rewards`` and ``normalized_rewards``."""
        return self._post("/score", _items(prompts, responses))

    def score(self, prompts: Sequence[Conv], responses: Sequence[Conv], normalized: bool = False) -> list[float]:
        return pick(self.score_detail(prompts, responses), normalized)

    def compare(self, prompt: Conv, a: Conv, b: Conv) -> dict[str, float]:
        out = self._post("/compare", {"pairs": [{"prompt": prompt, "a": a, "b": b}]})
        return {"reward_a": out["rewards_a"][0], "reward_b": out["rewards_b"][0], "p_a_better": out["p_a_better"][0]}

    def rank(self, prompt: Conv, candidates: Sequence[Conv]) -> dict[str, Any]:
        return self._post("/rank", {"prompt": prompt, "candidates": list(candidates)})

    def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        body = {"query": list(queries)} | ({"prompts": list(prompts)} if prompts is not None else {})
        return self._post("/get_reward", body)["rewards"]

    def health(self) -> dict[str, Any]:
        return self._check(self.http.get("/health"))

    def info(self) -> dict[str, Any]:
        return self._check(self.http.get("/info"))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncRewardClient(_Base):
    """Asyncio client with the scoring calls of :class:`RewardClient`."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0, max_connections: int = 100):
        super().__init__(url, token)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout, limits=limits)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._check(await self.http.post(path, json=body))

    async def score_detail(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> dict[str, Any]:
        return await self._post("/score", _items(prompts, responses))

    async def score(self, prompts: Sequence[Conv], responses: Sequence[Conv], normalized: bool = False) -> list[float]:
        return pick(await self.score_detail(prompts, responses), normalized)

    async def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None) -> list[float]:
        body = {"query": list(queries)} | ({"prompts": list(prompts)} if prompts is not None else {})
        return (await self._post("/get_reward", body))["rewards"]

    async def aclose(self) -> None:
        await self.http.aclose()
