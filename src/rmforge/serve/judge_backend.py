"""Generative judges behind the server: judge prompt -> generated verdict -> parsed reward.

:class:`JudgeBackend` implements the backend interface of :mod:`rmforge.serve.backend` (``run``,
``info``, ``normalization``) for a causal LM trained by ``rmforge train sft`` / ``train judge`` (or
any chat model). Each response (pointwise) or pair (pairwise) is rendered with the same judge
templates as training (:mod:`rmforge.judge.templates`), through the model's chat template
(:func:`~rmforge.judge.templates.render_chat`), completed by the same batched greedy loop as
``rmforge eval judge`` (:func:`rmforge.judge.lm.generate`; vLLM when installed and asked for, or
``auto`` on a GPU) and parsed by :func:`rmforge.judge.parse.parse_verdict`. All prompts of a
batching step share one generation call.

Rewards: pointwise = the parsed score (``normalization`` is ``(low, high - low)``, so the
server's normalised rewards are the score mapped to [0, 1]); pairwise ``/compare`` = P(A > B) from
the verdict (A 1, B 0, tie 0.5), with ``both_orders`` the mean over A/B and B/A (cancels position
bias). A verdict that does not parse gives ``failure_reward`` (None = null) and ``parse_ok: false``;
every answer carries the raw completions and parse statuses (:class:`Judged`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rmforge.data.schema import Scale, surrogate_error
from rmforge.errors import ConfigError
from rmforge.judge.parse import Verdict, parse_verdict
from rmforge.judge.templates import JudgeTemplate, load_template, render_chat
from rmforge.serve.backend import Group, Item, ItemError, TextItem, _text_group

JUDGE_RUN_KINDS = ("train-sft", "train-judge")
PREFERENCE_P = {"A": 1.0, "B": 0.0, "tie": 0.5}
GENERATORS = ("auto", "local", "vllm")


@dataclass
class Judged:
    """The judge's answer for one item: rewards per response, P(A > B) for a pair, and details."""

    rewards: list[float | None]
    parse_ok: bool
    judgements: list[dict[str, Any]]
    """Per generated verdict: ``completion``, ``status``, ``verdict`` (+ ``order`` for pairs)."""
    p_a_better: float | None = None


# ---------------------------------------------------------------------------- detection and settings
def detect_kind(model: str) -> str:
    """``judge`` for an SFT/judge run or a causal-LM folder without a classification head, else ``scalar``."""
    from rmforge.reward_model.scorer import find_manifest

    manifest = find_manifest(str(model))
    if manifest is not None:
        kind = _read_json(manifest).get("kind")
        return "judge" if kind in JUDGE_RUN_KINDS else "scalar"
    folder = _local_folder(model)
    config = folder / "config.json" if folder else None
    if config is None or not config.is_file():
        return "scalar"  # hub ids are not inspected (nothing is downloaded to decide)
    arch = [str(a) for a in _read_json(config).get("architectures") or ()]
    if any(a.endswith("ForSequenceClassification") for a in arch):
        return "scalar"
    return "judge" if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in arch) else "scalar"


def _local_folder(model: str) -> Path | None:
    from rmforge.models import embedded

    emb = embedded(str(model))
    if emb is not None:
        try:
            return Path(emb.resolve())
        except Exception:  # an embedded model not installed: let the loader report it
            return None
    path = Path(os.path.expanduser(str(model)))
    return path if path.is_dir() else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_settings(model: str) -> dict[str, Any]:
    """Judge settings saved by a ``train judge`` / ``train sft`` run (``{}`` for a plain model folder)."""
    from rmforge.reward_model.scorer import find_manifest

    manifest = find_manifest(str(model))
    if manifest is None:
        return {}
    import yaml

    cfg = yaml.safe_load((manifest.parent / "config.yaml").read_text(encoding="utf-8")) or {}
    data, opts = cfg.get("data") or {}, cfg.get("model_options") or {}
    out = {"mode": cfg.get("mode"), "template": data.get("template"), "rubric": data.get("rubric"),
           "scale": tuple(data["scale"]) if data.get("scale") else None,
           "enable_thinking": opts.get("enable_thinking"), "run_dir": str(manifest.parent),
           "manifest": _read_json(manifest)}
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------- generators
class LocalGenerator:
    """The local batched generate loop of ``rmforge eval judge`` (greedy, left-padded)."""

    name = "local"

    def __init__(self, model, tok, max_new_tokens: int, batch_size: int):
        self.model, self.tok, self.max_new_tokens, self.batch_size = model, tok, max_new_tokens, batch_size

    def __call__(self, prompts: list[str]) -> list[str]:
        from rmforge.judge.lm import generate

        return generate(self.model, self.tok, prompts, self.max_new_tokens, self.batch_size)


class VllmGenerator:
    """Greedy completions with vLLM (needs ``vllm`` and a GPU)."""

    name = "vllm"

    def __init__(self, path: str, max_new_tokens: int, dtype: str = "auto"):
        from vllm import LLM, SamplingParams

        self.llm = LLM(model=path, dtype=dtype)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def __call__(self, prompts: list[str]) -> list[str]:
        from vllm.inputs import TokensPrompt

        tok = self.llm.get_tokenizer()  # the chat template wrote the special tokens: add none
        ids = [TokensPrompt(prompt_token_ids=tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        return [o.outputs[0].text for o in self.llm.generate(ids, self.params, use_tqdm=False)]


def pick_generator(generator: str, device: str) -> str:
    """``local`` or ``vllm``: ``auto`` takes vLLM when it is importable and the device is a GPU."""
    import importlib.util

    if generator not in GENERATORS:
        raise ConfigError(f"--generator must be one of {', '.join(GENERATORS)}, not {generator!r}")
    has_vllm = importlib.util.find_spec("vllm") is not None
    if generator == "vllm" and (not has_vllm or not device.startswith("cuda")):
        raise ConfigError("--generator vllm needs the vllm package and a CUDA device "
                          f"(vllm {'found' if has_vllm else 'not installed'}, device {device})")
    if generator == "auto":
        return "vllm" if has_vllm and device.startswith("cuda") else "local"
    return generator


# ---------------------------------------------------------------------------- the backend
@dataclass
class JudgeBackend:
    """A generative judge as a scoring backend (see the module docstring)."""

    generate: Callable[[list[str]], list[str]]
    tokenizer: Any
    mode: str = "pairwise"
    template: JudgeTemplate | None = None
    scale: tuple[float, float] | None = None
    attribute: str = "overall quality"
    rubric: str | None = None
    enable_thinking: bool | None = None
    both_orders: bool = False
    failure_reward: float | None = None
    max_prompt_tokens: int | None = None
    name: str = "judge"
    details: dict[str, Any] = field(default_factory=dict)
    kind: str = "judge"
    stats: dict[str, int] = field(default_factory=lambda: {"steps": 0, "rows": 0, "generations": 0,
                                                           "parse_failures": 0})

    def __post_init__(self) -> None:
        if self.mode not in ("pointwise", "pairwise"):
            raise ConfigError(f"judge mode must be pointwise or pairwise, not {self.mode!r}")
        self.template = self.template or load_template(None, self.mode)
        if self.template.mode != self.mode:
            raise ConfigError(f"judge template {self.template.source} is for {self.template.mode}, not {self.mode}")
        if self.mode == "pointwise":
            if self.scale is None:
                raise ConfigError("a pointwise judge needs its score scale: --scale MIN,MAX "
                                  "(or data.scale in the judge run's config)")
            if not self.scale[1] > self.scale[0]:
                raise ConfigError(f"scale max ({self.scale[1]}) must be greater than min ({self.scale[0]})")
        if "rubric" in self.template.fields and not self.rubric:
            raise ConfigError(f"judge template {self.template.source} has a {{rubric}} placeholder: set --rubric TEXT")
        render_chat(self.tokenizer, [{"role": "user", "content": "x"}], self.enable_thinking)  # has a chat template

    @classmethod
    def load(cls, model: str, *, mode: str | None = None, template: str | None = None,
             scale: tuple[float, float] | None = None, rubric: str | None = None,
             enable_thinking: bool | None = None, max_new_tokens: int = 64, batch_size: int = 16,
             precision: str = "fp32", device: str | None = None, generator: str = "auto",
             max_length: int | None = None, **kw: Any) -> "JudgeBackend":
        """Load a judge run / causal-LM folder; unset options come from the run's config, then defaults."""
        import torch

        from rmforge.judge.lm import load_causal_lm

        saved = run_settings(model)
        if mode is not None and saved.get("mode") not in (None, mode):  # the run's template is for its mode
            saved = {k: v for k, v in saved.items() if k not in ("template", "rubric")}
        mode = mode or saved.get("mode") or "pairwise"
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if dtype is None:
            raise ConfigError(f"precision must be fp32, bf16 or fp16, not {precision!r}")
        which = pick_generator(generator, dev)
        net, tok = load_causal_lm(model, dtype=dtype)
        if which == "vllm":
            from rmforge.models import resolve_model

            del net
            gen = VllmGenerator(resolve_model(model), max_new_tokens, {"fp32": "float32"}.get(precision, precision))
            limit = None
        else:
            net = net.to(dev)
            gen = LocalGenerator(net, tok, max_new_tokens, batch_size)
            positions = getattr(net.config, "max_position_embeddings", None)
            limit = positions - max_new_tokens if positions else None
        details = {"generator": which, "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                   "precision": precision, "device": dev, "run_dir": saved.get("run_dir"),
                   "manifest": saved.get("manifest")}
        pick = lambda given, key: given if given is not None else saved.get(key)  # noqa: E731
        return cls(gen, tok, mode, load_template(pick(template, "template"), mode), pick(scale, "scale"),
                   rubric=pick(rubric, "rubric"), enable_thinking=pick(enable_thinking, "enable_thinking"),
                   max_prompt_tokens=max_length or limit, name=str(model), details=details, **kw)

    @property
    def normalization(self) -> tuple[float, float] | None:
        """Pointwise: ``(low, high - low)`` (normalised reward = score on [0, 1]); pairwise: None."""
        if self.mode != "pointwise":
            return None
        return float(self.scale[0]), float(self.scale[1] - self.scale[0])

    def info(self) -> dict[str, Any]:
        norm = self.normalization
        return {"backend": self.kind, "model": self.name, "mode": self.mode, "template": self.template.source,
                "scale": list(self.scale) if self.scale else None, "attribute": self.attribute,
                "enable_thinking": self.enable_thinking, "both_orders": self.both_orders,
                "failure_reward": self.failure_reward, "max_prompt_tokens": self.max_prompt_tokens,
                "normalization": None if norm is None else {"mean": norm[0], "std": norm[1],
                                                            "meaning": "(score - min) / (max - min)"},
                **self.details, "stats": dict(self.stats)}

    # ------------------------------------------------------------------ judging
    def run(self, jobs: list[list[Item]]) -> list[list[Judged] | ItemError]:
        """Judged items per job; every prompt of the step goes through one generation call."""
        plans: list[list[list[str]] | ItemError] = []
        for job in jobs:
            try:
                plans.append([self._prompts_of(i, item) for i, item in enumerate(job)])
            except ItemError as exc:  # stays with its job: batch-mates are never touched
                plans.append(exc)
        unique = list(dict.fromkeys(p for plan in plans if not isinstance(plan, ItemError)
                                    for item in plan for p in item))
        completions = dict(zip(unique, self.generate(unique) if unique else []))
        self.stats["steps"] += 1
        self.stats["generations"] += len(unique)
        out: list[list[Judged] | ItemError] = []
        for job, plan in zip(jobs, plans):
            if isinstance(plan, ItemError):
                out.append(plan)
                continue
            judged = [self.judge(_group(item), [completions[p] for p in prompts])
                      for item, prompts in zip(job, plan)]
            self.stats["rows"] += sum(len(j.rewards) for j in judged)
            self.stats["parse_failures"] += sum(not j.parse_ok for j in judged)
            out.append(judged)
        return out

    def score(self, items: list[Item]) -> list[Judged]:
        """Judged items of one job, raising :class:`ItemError` (the in-process path)."""
        out = self.run([items])[0]
        if isinstance(out, ItemError):
            raise out
        return out

    def _prompts_of(self, index: int, item: Item) -> list[str]:
        """:meth:`prompts`, any failure (template, tokenizer) as the item's own 422 ItemError."""
        try:
            prompts = self.prompts(index, item)
        except ItemError:
            raise
        except Exception as exc:
            raise ItemError(index, f"cannot be encoded: {type(exc).__name__}: {exc}", 422) from None
        for text in prompts:  # text the generator cannot encode would fail the whole shared generation call
            why = surrogate_error(text)
            if why:
                raise ItemError(index, f"cannot be encoded: {why}", 422)
        return prompts

    def prompts(self, index: int, item: Item) -> list[str]:
        """The rendered judge prompts (chat template applied) of one item, in judging order."""
        if isinstance(item, TextItem) and self.mode == "pairwise":
            raise ItemError(index, "a pairwise judge compares two responses: use /compare", 422)
        group = _group(item)
        n = len(group.responses)
        if self.mode == "pointwise":
            texts = [self.template.render_pointwise(group.prompt, r, Scale(min=self.scale[0], max=self.scale[1]),
                                                    self.attribute, self.rubric) for r in group.responses]
        elif n == 2:
            a, b = group.responses
            texts = [self.template.render_pairwise(group.prompt, a, b, self.rubric)]
            if self.both_orders:
                texts.append(self.template.render_pairwise(group.prompt, b, a, self.rubric))
        else:
            raise ItemError(index, f"a pairwise judge compares exactly two responses, got {n}: use /compare", 422)
        rendered = [render_chat(self.tokenizer, [{"role": "user", "content": t}], self.enable_thinking)
                    for t in texts]
        self._check_length(index, rendered)
        return rendered

    def _check_length(self, index: int, prompts: list[str]) -> None:
        if self.max_prompt_tokens is None:
            return
        for ids in self.tokenizer(prompts, add_special_tokens=False, return_attention_mask=False)["input_ids"]:
            if len(ids) > self.max_prompt_tokens:
                raise ItemError(index, f"the judge prompt has {len(ids)} tokens > {self.max_prompt_tokens} "
                                       "(the model's context minus --max-new-tokens, or --max-length)", 413)

    def judge(self, group: Group, completions: list[str]) -> Judged:
        """Parse the completions of one item into rewards (see the module docstring)."""
        low, high = self.scale if self.scale else (None, None)
        verdicts = [parse_verdict(c, self.mode, low, high) for c in completions]
        ok = all(v.ok for v in verdicts)
        if self.mode == "pointwise":
            rewards = [float(v.value) if v.ok else self.failure_reward for v in verdicts]
            details = [_detail(c, v) for c, v in zip(completions, verdicts)]
            p = None
            if len(rewards) == 2 and verdicts[0].ok and verdicts[1].ok:
                p = 1.0 if rewards[0] > rewards[1] else 0.0 if rewards[0] < rewards[1] else 0.5
            return Judged(rewards, ok, details, p)
        orders = ["AB", "BA"][:len(completions)]
        details = [{"order": o, **_detail(c, v)} for o, c, v in zip(orders, completions, verdicts)]
        if not ok:
            return Judged([self.failure_reward] * 2, False, details, None)
        ps = [PREFERENCE_P[v.value] if o == "AB" else 1.0 - PREFERENCE_P[v.value] for o, v in zip(orders, verdicts)]
        p = sum(ps) / len(ps)
        return Judged([p, 1.0 - p], True, details, p)


def _group(item: Item) -> Group:
    return item if isinstance(item, Group) else _text_group(item)


def _detail(completion: str, verdict: Verdict) -> dict[str, Any]:
    return {"completion": completion, "status": verdict.status, "parse_ok": verdict.ok, "verdict": verdict.value}

