"""Python grader API over a local model or a running server, and a TRL ``reward_funcs`` callable.

``RewardModelGrader(model)`` loads a run directory / model folder / embedded name in-process
(the server's :class:`ScalarBackend`, so the same encoding and rewards; a pointwise generative judge
through :class:`JudgeBackend` when ``rmforge serve --kind auto`` would pick one: an unparsable verdict
is then ``None``, which TRL treats as a missing reward), or talks to a server when
``model`` is an ``http(s)://`` URL. ``grader(prompts=..., completions=...)`` is what TRL's
``GRPOTrainer(reward_funcs=[grader])`` calls: prompts/completions are strings (a string prompt is one
user message, a completion one assistant message) or conversational message lists (assistant messages
from TRL's ``parse_response`` may carry ``reasoning_content`` and ``tool_calls``; they are rendered
the way the chat template renders them).

The TRL call never raises for a well-formed batch: it returns one ``float | None`` per completion.
An empty completion (``""``, or messages with no content, reasoning or tool calls: the policy emitted
EOS first) gets ``empty_reward`` (default ``None``, TRL's "no reward": GRPOTrainer turns it into NaN
and ignores it) without being scored; a completion that cannot be scored (longer than the model's
``max_length`` with nothing left to cut, an invalid message) gets ``None`` and a warning. With
TRL's ``log_metric`` the fractions go to ``<name>/empty_frac`` and ``<name>/unscored_frac``.
In process, a string prompt that is already rendered by the model's chat template (it ends with the
template's generation prompt, ``<|im_start|>assistant\n``) is not wrapped again: prompt + the
completion's assistant turn as the template renders it (``completion<|im_end|>\n``; trimmed by a
template that trims content) is scored as a rendered conversation (:meth:`get_reward`), so it gets the
training-time reward of (prompt conversation, completion).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from pydantic import ValidationError

from rmforge.errors import RmforgeError
from rmforge.serve.backend import Group, ItemError, ScalarBackend, TextItem
from rmforge.serve.judge_backend import JudgeBackend, Judged, detect_kind
from rmforge.serve.client import AsyncRewardClient, Conv, RewardClient, ServeError, pick
from rmforge.serve.schemas import ScoreItem, is_empty

logger = logging.getLogger("rmforge.serve.grader")


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
                 timeout: float = 60.0, name: str = "rmforge_reward", empty_reward: float | None = None,
                 **load_kw: Any):
        self.__name__ = name  # TRL logs reward functions by __name__
        self.normalize = normalize
        self.empty_reward = empty_reward
        """What the TRL call returns for an empty completion (None: no reward); never normalised."""
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
                norm = (getattr(self._backend, "manifest", None) or {}).get("normalization") or {}
                why = ("the run was trained without validation data, so it has no reward mean and std"
                       if norm.get("source") == "none" else
                       "it needs an rmforge run directory (its manifest holds the validation reward mean and std)")
                raise RmforgeError(f"{self._backend.name}: cannot normalize: {why}")

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

    def __call__(self, prompts: Sequence[Conv], completions: Sequence[Conv], completion_ids: Any = None,
                 **kwargs: Any) -> list[float | None]:
        """TRL ``reward_funcs`` call (``prompts=, completions=, completion_ids=, **columns``, with
        ``trainer_state``, ``log_extra``, ``log_metric``): one reward or None per completion, never
        raising for a well-formed batch (see the module docstring)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        out: list[float | None] = [self.empty_reward] * len(completions)
        todo = [i for i, c in enumerate(completions) if not is_empty(c)]
        for i, reward in zip(todo, self._score_each([prompts[i] for i in todo], [completions[i] for i in todo])):
            out[i] = reward
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and completions:
            n = len(completions)
            log_metric(f"{self.__name__}/empty_frac", (n - len(todo)) / n)
            log_metric(f"{self.__name__}/unscored_frac", sum(out[i] is None for i in todo) / n)
        return out

    def _score_each(self, prompts: Sequence[Conv], responses: Sequence[Conv]) -> list[float | None]:
        """Rewards, None for a pair that cannot be scored (logged); the others are still scored together."""
        if not prompts:
            return []
        if self._client is not None:
            try:
                return self.score(prompts, responses)
            except ServeError as exc:
                if exc.status not in (413, 422):  # not about one item: auth, overload, server error
                    raise
                if len(prompts) > 1:  # find the item(s): score one by one
                    return [r for p, c in zip(prompts, responses) for r in self._score_each([p], [c])]
                logger.warning("%s: a completion cannot be scored, reward None: %s", self.__name__, exc)
                return [None]
        out: list[float | None] = [None] * len(prompts)
        live: dict[int, Group | TextItem] = {}
        enc = getattr(getattr(self._backend, "scorer", None), "encoder", None)
        gen = enc.generation_prompt if enc is not None and enc.mode == "chat" else ""
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if gen and isinstance(p, str) and isinstance(r, str) and p.endswith(gen):
                try:  # a prompt TRL got already rendered: the answer as the template renders it (trim etc.)
                    live[i] = TextItem(p + enc.rendered_answer(r), p)
                except (ValidationError, ValueError) as exc:
                    logger.warning("%s: completion %d cannot be rendered, reward None: %s", self.__name__, i,
                                   str(exc).splitlines()[-1].strip())
                continue
            try:
                item = ScoreItem(prompt=p, response=r)
            except ValidationError as exc:
                logger.warning("%s: completion %d is not a valid conversation, reward None: %s", self.__name__, i,
                               str(exc).splitlines()[-1].strip())
                continue
            live[i] = Group(item.prompt, [item.response])
        while live:
            keys = list(live)
            try:
                got = self._backend.score([live[k] for k in keys])
            except ItemError as exc:
                logger.warning("%s: completion %d cannot be scored, reward None: %s", self.__name__, keys[exc.index],
                               exc.reason)
                del live[keys[exc.index]]
                continue
            raw = [r.rewards[0] if isinstance(r, Judged) else r[0] for r in got]
            for k, v in zip(keys, self._normalized(raw)):
                out[k] = v
            break
        return out

