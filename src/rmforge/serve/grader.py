"""Python grader API over a local model or a running server, and a TRL ``reward_funcs`` callable.

``RewardModelGrader(model)`` loads a run directory / model folder / embedded name in-process
(the server's :class:`ScalarBackend`, so the same encoding and rewards; a pointwise generative judge
through :class:`JudgeBackend` when ``rmforge serve --kind auto`` would pick one: an unparsable verdict
is then ``None``, which TRL treats as a missing reward), or talks to a server when
``model`` is an ``http(s)://`` URL. ``grader(prompts=..., completions=...)`` is what TRL's
``GRPOTrainer(reward_funcs=[grader])`` calls: prompts/completions are strings (a string prompt is one
user message, a completion one assistant message) or conversational message lists.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Sequence

from rmforge.errors import RmforgeError
from rmforge.serve.backend import Group, ScalarBackend, TextItem
from rmforge.serve.judge_backend import JudgeBackend, Judged, detect_kind
from rmforge.serve.client import AsyncRewardClient, Conv, RewardClient, pick
from rmforge.serve.schemas import ScoreItem


@dataclass
class GraderScore:
    """One graded response: ``score`` (normalised when the grader normalises), ``raw`` reward."""

    name: str
    score: float
    raw: float
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class RewardModelGrader:
    """Score (prompt, response) pairs with a reward model; see the module docstring."""

    def __init__(self, model: str | ScalarBackend | JudgeBackend, *, token: str | None = None, normalize: bool = False,
                 timeout: float = 60.0, name: str = "rmforge_reward", **load_kw: Any):
        self.__name__ = name  # TRL logs reward functions by __name__
        self.normalize = normalize
        self._client: RewardClient | None = None
        self._backend: ScalarBackend | JudgeBackend | None = None
        self._url, self._token, self._timeout = None, token, timeout
        if isinstance(model, str) and model.startswith(("http://", "https://")):
            self._url = model
            self._client = RewardClient(model, token, timeout)
        else:
            if isinstance(model, (ScalarBackend, JudgeBackend)):
                self._backend = model
            else:
                loader = JudgeBackend if detect_kind(str(model)) == "judge" else ScalarBackend
                self._backend = loader.load(str(model), **load_kw)
            if normalize and self._backend.normalization is None:
                raise RmforgeError(f"{self._backend.name}: normalize=True needs an rmforge run directory "
                                   "(its manifest holds the mean and std)")

    def raw_scores(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> list[float]:
        """Raw rewards (no normalisation)."""
        if self._client is not None:
            return self._client.score(prompts, responses)
        items = [ScoreItem(prompt=p, response=r) for p, r in zip(prompts, responses, strict=True)]
        out = self._backend.score([Group(it.prompt, [it.response]) for it in items])
        return [r.rewards[0] if isinstance(r, Judged) else r[0] for r in out]

    def score(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> list[float]:
        """Rewards (normalised when the grader was built with ``normalize=True``)."""
        if self._client is not None:
            return self._client.score(prompts, responses, normalized=self.normalize)
        return self._normalized(self.raw_scores(prompts, responses))

    def get_reward(self, queries: Sequence[str], prompts: Sequence[str] | None = None) -> list[float | None]:
        """Rewards of full rendered texts, as ``POST /get_reward`` (OpenRLHF's queries; ``prompts`` are
        the rendered prompt texts, optional): a conversation rendered by the model's chat template,
        complete or cut at its end token, gets its training-time reward. Normalised when the grader
        normalises."""
        if self._client is not None:
            body = {"query": list(queries)} | ({"prompts": list(prompts)} if prompts is not None else {})
            out = self._client._post("/get_reward", body)
            if not self.normalize:
                return out["raw_rewards"]
            if not out.get("normalized"):
                raise RmforgeError("the server does not normalise /get_reward (start it with normalisation on)")
            return out["rewards"]
        items = [TextItem(q, p) for q, p in zip(queries, prompts if prompts is not None else [None] * len(queries),
                                                 strict=True)]
        return self._normalized([r.rewards[0] if isinstance(r, Judged) else r[0] for r in self._backend.score(items)])

    def _normalized(self, raw: list[float]) -> list[float]:
        if not self.normalize:
            return raw
        mean, std = self._backend.normalization
        return [None if r is None else (r - mean) / std for r in raw]

    async def _both(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> tuple[list[float], list[float]]:
        """(scores, raw rewards) without blocking the event loop."""
        if self._url is None:
            raw = await asyncio.to_thread(self.raw_scores, prompts, responses)
            return self._normalized(raw), raw
        client = AsyncRewardClient(self._url, self._token, self._timeout)
        try:
            out = await client.score_detail(prompts, responses)
        finally:
            await client.aclose()
        return pick(out, self.normalize), out["rewards"]

    async def ascore(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> list[float]:
        """:meth:`score` without blocking the event loop."""
        return (await self._both(prompts, responses))[0]

    async def aevaluate(self, query: Conv, response: Conv, **_: Any) -> GraderScore:
        """Grade one response to ``query`` (RM-Gallery style)."""
        scores, raw = await self._both([query], [response])
        return GraderScore(self.__name__, scores[0], raw[0], metadata={"normalized": self.normalize})

    def __call__(self, prompts: Sequence[Conv], completions: Sequence[Conv], **_: Any) -> list[float]:
        """TRL ``reward_funcs`` signature (extra columns such as ``completion_ids`` are ignored)."""
        return self.score(prompts, completions)
