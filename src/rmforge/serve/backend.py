"""Scoring backends behind the server, the batcher and the local grader.

A backend turns a list of *jobs* (one per HTTP request; each a list of :class:`Group` or
:class:`TextItem`) into rewards per job, or an :class:`ItemError` for a job with a bad item. The
batcher hands it several jobs at once, so a backend can merge them into shared forward passes.

:class:`ScalarBackend` (a sequence-classification reward model) encodes through the run's own
:class:`~rmforge.reward_model.scorer.Scorer` (the training-time :class:`RewardEncoder`, rebuilt from the
manifest) and scores every job of a step in one length-sorted pass (``Scorer.score_encoded``), so
server rewards equal training/evaluation rewards. The generative-judge backend
(:mod:`rmforge.serve.judge_backend`) implements the same :meth:`run` / :meth:`info` / ``normalization``
and plugs into :func:`rmforge.serve.app.create_app`.

Full texts (OpenRLHF ``/get_reward``, already rendered with the chat template) go through
:meth:`RewardEncoder.encode_rendered`: pad text stripped, repeated trailing EOS collapsed, a text cut
at the end token (``...answer<|im_end|>``, what OpenRLHF decodes) completed to the template's whole
turn suffix (``<|im_end|>\\n``), tokenised the way training tokenises a render and EOS appended under
``append_eos``; so a rendered conversation, complete or cut at its end token, gets exactly the
training-time token ids and reward.
Text-pair encoders (BERT/MiniLM) cannot split a rendered text: with the prompt text known the pair is
(prompt, rest), without it a prompt-less sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from rmforge.data.schema import Message, Sample
from rmforge.reward_model.scorer import Scorer, find_manifest, load_scorer, read_manifest
from rmforge.reward_model.tokenize import RESPONSE_TOO_LONG, EncodedSample


@dataclass
class Group:
    """One prompt and one or more responses sharing its (possibly truncated) encoding."""

    prompt: list[Message]
    responses: list[list[Message]]


@dataclass
class TextItem:
    """A full rendered text (prompt + response), optionally with its prompt text."""

    text: str
    prompt: str | None = None


Item = Group | TextItem


class ItemError(Exception):
    """A bad item in a job: ``status`` 413 (too long) or 422 (cannot be encoded)."""

    def __init__(self, index: int, reason: str, status: int = 413):
        self.index, self.reason, self.status = index, reason, status
        super().__init__(f"item {index}: {reason}")


class Backend(Protocol):
    """What the server needs from a scoring backend."""

    name: str
    kind: str
    normalization: tuple[float, float] | None

    def run(self, jobs: list[list[Item]]) -> list[list[list[float]] | ItemError]: ...

    def info(self) -> dict[str, Any]: ...


@dataclass
class ScalarBackend:
    """A scalar reward model scored through its :class:`Scorer` (see the module docstring)."""

    scorer: Scorer
    manifest: dict[str, Any] | None = None
    kind: str = "scalar"
    stats: dict[str, int] = field(default_factory=lambda: {"steps": 0, "rows": 0})

    @classmethod
    def load(cls, model: str, **scorer_kw: Any) -> "ScalarBackend":
        """Load a run directory, model folder or embedded name (``load_scorer`` options)."""
        path = find_manifest(str(model))
        manifest = read_manifest(path) if path else None  # a corrupted manifest is a one-line error
        return cls(load_scorer(model, **scorer_kw), manifest)

    @property
    def name(self) -> str:
        return self.scorer.name

    @property
    def normalization(self) -> tuple[float, float] | None:
        """``(mean, std)`` from the run manifest, None for a model that is not an rmforge run."""
        norm = (self.manifest or {}).get("normalization") or {}
        if "mean" not in norm:
            return None
        return float(norm["mean"]), float(norm.get("std") or 1.0)

    def info(self) -> dict[str, Any]:
        mean_std = self.normalization
        return {"backend": self.kind, **self.scorer.info, "batch_size": self.scorer.batch_size,
                "device": str(self.scorer.device), "normalization": None if mean_std is None else
                {"mean": mean_std[0], "std": mean_std[1]}, "manifest": self.manifest}

    # ------------------------------------------------------------------ scoring
    def run(self, jobs: list[list[Item]]) -> list[list[list[float]] | ItemError]:
        """Rewards per job (per item, one per response), in one merged forward over all jobs."""
        encoded = [self._encode_job(job) for job in jobs]
        flat = [s for e in encoded if not isinstance(e, ItemError) for s in e]
        rewards = iter(self.scorer.score_encoded(flat))
        self.stats["steps"] += 1
        self.stats["rows"] += sum(len(s.encodings) for s in flat)
        return [e if isinstance(e, ItemError) else [next(rewards) for _ in e] for e in encoded]

    def _encode_job(self, job: list[Item]) -> list[EncodedSample] | ItemError:
        """One job's encodings, or its own ItemError: any failure (a tokenizer error on text the
        schema let through, a template error) stays with the job and never reaches its batch-mates."""
        try:
            return self.encode(job)
        except ItemError as exc:
            return exc
        except Exception as exc:  # locate the item that fails alone, for the message
            for i, item in enumerate(job):
                try:
                    self.encode([item])
                except ItemError as one:
                    return ItemError(i, one.reason, one.status)
                except Exception as one:
                    return ItemError(i, f"cannot be encoded: {type(one).__name__}: {one}", 422)
            return ItemError(0, f"cannot be encoded: {type(exc).__name__}: {exc}", 422)

    def score(self, items: list[Item]) -> list[list[float]]:
        """Rewards of one job, raising :class:`ItemError` (the local grader's path)."""
        out = self.run([items])[0]
        if isinstance(out, ItemError):
            raise out
        return out

    def encode(self, items: list[Item]) -> list[EncodedSample]:
        """Encoded samples in item order; ItemError names the first item that cannot be scored."""
        mode = self.scorer.encoder.mode
        groups: dict[int, Group] = {}
        texts: dict[int, TextItem] = {}
        for i, item in enumerate(items):
            if isinstance(item, TextItem) and mode != "pair":
                texts[i] = item
            else:
                groups[i] = item if isinstance(item, Group) else _text_group(item)
        out: dict[int, EncodedSample] = {}
        out.update(self._encode_groups(groups))
        out.update(self._encode_texts(texts))
        return [out[i] for i in range(len(items))]

    def _encode_groups(self, groups: dict[int, Group]) -> dict[int, EncodedSample]:
        if not groups:
            return {}
        keys = list(groups)
        samples = [_sample(groups[k]) for k in keys]
        encoded, _ = self.scorer.encode(samples)
        got = {keys[e.index]: e for e in encoded}
        for k, sample in zip(keys, samples):
            if k not in got:
                raise self._drop_error(k, sample)
        return got

    def _drop_error(self, index: int, sample: Sample) -> ItemError:
        enc = self.scorer.encoder
        try:
            enc.encode_sample(sample)
        except ValueError as exc:
            return ItemError(index, str(exc), 422)
        return ItemError(index, f"does not fit max_length={enc.max_length} tokens (length policy "
                                f"{enc.length_policy}: responses are never cut)", 413)

    def _encode_texts(self, texts: dict[int, TextItem]) -> dict[int, EncodedSample]:
        """Full rendered texts on decoders, encoded exactly like their conversations (see the module docstring)."""
        if not texts:
            return {}
        enc = self.scorer.encoder
        keys = list(texts)
        rows = enc.encode_rendered([texts[k].text for k in keys], [texts[k].prompt for k in keys])
        out = {}
        for k, row in zip(keys, rows):
            if isinstance(row, str):
                no_prompt = row == RESPONSE_TOO_LONG and not enc._rendered_prompt(
                    enc.complete_rendered(texts[k].text), texts[k].prompt)[0]  # the whole text counts as response
                why = ("no prompt part found to cut" if no_prompt
                       else "the response alone is too long" if row == RESPONSE_TOO_LONG
                       else f"length policy {enc.length_policy}")
                raise ItemError(k, f"does not fit max_length={enc.max_length} tokens ({why})", 413)
            out[k] = EncodedSample(k, "pointwise", [row])
        return out


def _sample(group: Group) -> Sample:
    """The group as a canonical sample (labels are placeholders: only the encoding is used)."""
    if len(group.responses) == 1:
        return Sample(id="x", prompt=group.prompt, response=group.responses[0], scores={"reward": 0.0})
    if len(group.responses) == 2:
        return Sample(id="x", prompt=group.prompt, chosen=group.responses[0], rejected=group.responses[1])
    return Sample(id="x", prompt=group.prompt, candidates=group.responses, ranks=[1] * len(group.responses))


def _text_group(item: TextItem) -> Group:
    """A full text for a text-pair encoder: (prompt, rest) when the prompt is known, else prompt-less."""
    if item.prompt and item.text.startswith(item.prompt) and len(item.text) > len(item.prompt):
        return Group([Message(role="user", content=item.prompt)],
                     [[Message(role="assistant", content=item.text[len(item.prompt):])]])
    return Group([], [[Message(role="assistant", content=item.text)]])


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
