"""Load a reward model for evaluation with exactly the encoding it was trained with.

:func:`load_scorer` accepts

* an rmforge run directory (``manifest.json`` + ``config.yaml``, also a checkpoint folder inside
  ``RUN/checkpoints/``): the training-time :class:`~rmforge.reward_model.tokenize.RewardEncoder` is rebuilt
  from the manifest (max_length, length policy, format, append_eos, system prompt, template kwargs)
  and the chat template is checked against the recorded SHA-256 (the config's custom template file
  or string when it still matches, else the tokenizer's own; neither matching is an error);
* any Hugging Face folder, embedded name (``minilm-l6``, ``smollm2-135m``), GGUF file or hub id:
  defaults ``max_length=512``, ``truncate_prompt``, the tokenizer's own template. A model without a
  reward head gets a new one initialised under ``torch.manual_seed(0)`` (the global RNG is left
  untouched), so an "untrained baseline" scores the same on every run.

Scoring goes through :func:`rmforge.reward_model.forward.score_samples` (length-sorted batches, results in
input order), so rewards do not depend on the batch size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rmforge.data.schema import Sample
from rmforge.errors import ConfigError, ModelLoadError, NonFiniteRewardError, RmforgeError
from rmforge.reward_model.attention import attn_implementation, choose_packing, use_flex_attention
from rmforge.reward_model.tokenize import (
    EncodedSample,
    EncodeStats,
    RewardEncoder,
    resolve_template,
)

DEFAULT_MAX_LENGTH = 512
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
HEAD_SEED = 0
"""Seed under which a new (untrained) reward head is initialised."""


@dataclass
class Scorer:
    """A reward model, its tokenizer and the encoder that feeds it; see :meth:`score_samples`."""

    model: Any
    tokenizer: Any
    encoder: RewardEncoder
    name: str
    batch_size: int = 32
    precision: str = "fp32"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    info: dict[str, Any] = field(default_factory=dict)
    """Source, run-dir flag, head_initialised, encoding (for result files)."""
    packing: str = "auto"
    """Forward layout (:mod:`rmforge.reward_model.packing`); the rewards are the same either way (to float
    rounding). ``auto``: on GPU what :func:`~rmforge.reward_model.attention.choose_packing` picks (prefix-shared
    packing under FlexAttention block masks; padding-free through ``rmforge_varlen`` without FlexAttention
    where the fused varlen kernel runs; else plain padded batches), plain padded batches on CPU, where a custom 4D mask forces SDPA's math kernel and materialises
    ``[rows, heads, L, L]`` scores (measured: 4x the peak memory of padded batches on hh-rlhf with
    SmolLM2, 4.9 vs 1.2 GB at 8 responses per forward)."""
    seconds: float = 0.0
    """Wall time of the last :meth:`score_samples` call (encoding + forward passes)."""
    progress: bool = False
    """Show scoring progress on stderr: a tqdm bar on a terminal, else a line every
    :data:`PROGRESS_EVERY_S` seconds (the CLI turns it on)."""

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def encode(self, samples: Sequence[Sample]) -> tuple[list[EncodedSample], EncodeStats]:
        """Encode with the length policy; drops are counted in the stats."""
        return self.encoder.encode_dataset(samples)

    def score_encoded(self, encoded: Sequence[EncodedSample]) -> list[list[float]]:
        """Rewards per encoded sample (length-sorted batches, input order)."""
        from rmforge.reward_model.forward import score_samples

        if not encoded:
            return []
        autocast = self._autocast if PRECISIONS[self.precision] is not None else None
        # batch_size counts responses; a packed forward counts samples (all of a sample's responses at once)
        packing = "none" if self.packing == "auto" and self.device.type == "cpu" else self.packing
        per_sample = max(len(e.encodings) for e in encoded) if packing != "none" else 1
        batch = max(1, self.batch_size // per_sample)

        def score(progress=None):
            return score_samples(self.model, encoded, self.tokenizer.pad_token_id, batch, self.device, autocast,
                                 packing=packing, progress=progress)

        if not self.progress:
            return score()
        # counted after each forward: the same batches as without progress, so the same rewards (bf16 too)
        with ScoringProgress(sum(len(e.encodings) for e in encoded), self.name) as bar:
            return score(bar.update)

    def score_samples(self, samples: Sequence[Sample]) -> tuple[list[list[float] | None], EncodeStats]:
        """Rewards per input sample (one per response, in sample order), ``None`` for a dropped
        sample; the stats count kept, truncated and dropped samples by reason."""
        start = time.perf_counter()
        encoded, stats = self.encode(samples)
        rewards = self.score_encoded(encoded)
        out: list[list[float] | None] = [None] * len(samples)
        for enc, r in zip(encoded, rewards):
            out[enc.index] = r
        self.seconds = time.perf_counter() - start
        check_finite_rewards(self.name, rewards, self.precision)
        return out, stats


def check_finite_rewards(name: str, rewards: Sequence[Sequence[float]], precision: str | None = None) -> None:
    """Raise :class:`NonFiniteRewardError` when any item's rewards hold NaN or +-Inf (instead of
    scoring them as wrong: NaN comparisons are False, so a corrupted model reads as accuracy 0).
    Under fp16 the message names the other cause, an activation beyond fp16's range (65504)."""
    bad = [r for r in rewards if not all(math.isfinite(v) for v in r)]
    if bad:
        flat = [v for r in bad for v in r if not math.isfinite(v)]
        kinds = "/".join(k for k, hit in (("NaN", any(math.isnan(v) for v in flat)),
                                          ("Inf", any(math.isinf(v) for v in flat))) if hit)
        why = ("fp16 overflowed (try --precision bf16 or fp32) or the weights are corrupted" if precision == "fp16"
               else "the weights may be corrupted")
        raise NonFiniteRewardError(f"model {name} produced non-finite rewards ({kinds}) for {len(bad)} of "
                                   f"{len(rewards)} items: {why}")


def check_finite_weights(name: str, model) -> None:
    """Raise :class:`NonFiniteRewardError` naming the first parameter that holds NaN or Inf."""
    bad = [n for n, p in model.named_parameters() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if bad:
        total = sum(1 for _ in model.parameters())
        raise NonFiniteRewardError(f"model {name} has non-finite weights (NaN/Inf) in {len(bad)} of {total} "
                                   f"tensors (first: {bad[0]}): the weights may be corrupted")


PROGRESS_EVERY_S = 30.0
"""Seconds between plain progress lines when stderr is not a terminal."""


class ScoringProgress:
    """Responses scored so far, on stderr: a tqdm bar on a terminal; otherwise one line
    ``scoring NAME: X/Y responses (P%)`` at most every :data:`PROGRESS_EVERY_S` seconds."""

    def __init__(self, total: int, name: str, stream=None):
        import sys

        self.total, self.name, self.done = total, name, 0
        self.stream = stream or sys.stderr
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="score", unit=" responses", file=self.stream, mininterval=0.5,
                            dynamic_ncols=True, leave=False)
        self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= PROGRESS_EVERY_S and self.done < self.total:
            self.last = time.monotonic()
            print(f"scoring {self.name}: {self.done}/{self.total} responses ({100 * self.done / self.total:.0f}%)",
                  file=self.stream, flush=True)

    def __enter__(self) -> "ScoringProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def load_scorer(model: str | os.PathLike, *, max_length: int | None = None, batch_size: int = 32,
                precision: str = "fp32", device: str | None = None, length_policy: str | None = None,
                progress: bool = False) -> Scorer:
    """A :class:`Scorer` for a run directory, a model folder, an embedded name or a hub id.

    ``max_length``/``length_policy`` override the run's (or the defaults 512 / truncate_prompt);
    ``precision``: fp32, bf16 or fp16 autocast; ``device``: default cuda when available, else cpu;
    ``progress``: show scoring progress on stderr (:class:`ScoringProgress`).
    """
    from rmforge.reward_model.modeling import load_reward_model, model_load_error
    from rmforge.reward_model.varlen import use_varlen_attention, varlen_verdict

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    name = str(model)
    manifest_path = find_manifest(name)
    manifest = read_manifest(manifest_path) if manifest_path else None
    num_labels = _num_labels(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(HEAD_SEED)
        try:
            loaded = load_reward_model(name, num_labels=num_labels)
        except RmforgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors/transformers raise many types; one line for the user
            raise model_load_error(name, exc) from None
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = loaded.model.to(dev).eval()
    check_finite_weights(name, net)  # on the device: one pass over the weights, fast on a GPU
    if dev.type == "cuda" and choose_packing(net, "auto", "cpu")[0] != "none":  # a packable decoder
        # packed forwards with block-sparse masks and static row widths; else padding-free through torch's
        # varlen kernel where it runs at this precision (no mask); else plain padded rows (SDPA)
        if not use_flex_attention(net)[0] and varlen_verdict(net, PRECISIONS[precision])[0]:
            use_varlen_attention(net)
    if manifest is not None:
        encoder = _run_encoder(manifest_path.parent, manifest, loaded.tokenizer, max_length, length_policy)
    else:
        encoder = _build_encoder(loaded.tokenizer, max_length or DEFAULT_MAX_LENGTH,
                                 length_policy or "truncate_prompt")
    info = {"model": name, "source": loaded.info.source, "run_dir": str(manifest_path.parent) if manifest_path else None,
            "architecture": loaded.info.architecture, "head_initialised": loaded.info.head_initialised,
            "head_seed": HEAD_SEED if loaded.info.head_initialised else None, "encoding": encoder.info(),
            "precision": precision, "attention": attn_implementation(net)}
    return Scorer(net, loaded.tokenizer, encoder, name, batch_size, precision, dev, info, progress=progress)


def find_manifest(model: str) -> Path | None:
    """``manifest.json`` of a run directory given as the run itself or one of its checkpoints."""
    path = Path(os.path.expanduser(model))
    if not path.is_dir():
        return None
    for cand in (path, path.parent.parent if path.parent.name == "checkpoints" else None):
        if cand is not None and (cand / "manifest.json").is_file() and (cand / "config.yaml").is_file():
            return cand / "manifest.json"
    return None


def read_manifest(path: str | os.PathLike) -> dict:
    """A run's ``manifest.json`` as a dict; :class:`ModelLoadError` (one line naming the file) when it is
    unreadable, not JSON, not a JSON object, or has no ``encoding`` section."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{path}: corrupted run manifest: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: corrupted run manifest: invalid JSON at line {exc.lineno}, column "
                             f"{exc.colno}: {exc.msg}") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path}: unreadable run manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path}: corrupted run manifest: expected a JSON object, got {type(manifest).__name__}")
    if not isinstance(manifest.get("encoding"), dict):
        raise ModelLoadError(f"{path}: the manifest has no 'encoding' section (not an rmforge run directory?)")
    return manifest


def _num_labels(name: str) -> int:
    """Keep a trained classification head's width (a base model gets a 1-output head)."""
    config = Path(os.path.expanduser(name)) / "config.json"
    if not config.is_file():
        return 1
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1
    if not any(str(a).endswith("ForSequenceClassification") for a in data.get("architectures") or ()):
        return 1
    return len(data.get("id2label") or {}) or int(data.get("num_labels", 1))


def _build_encoder(tokenizer, max_length: int, length_policy: str, **kw) -> RewardEncoder:
    try:
        return RewardEncoder(tokenizer, max_length, length_policy, **kw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _sha(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def _run_encoder(run: Path, manifest: dict, tokenizer, max_length: int | None,
                 length_policy: str | None) -> RewardEncoder:
    """The training-time encoder of ``run`` (max_length/length_policy may be overridden)."""
    from rmforge.config import read_yaml

    enc = manifest["encoding"]
    fmt = enc.get("format")
    cfg_template = (read_yaml(run / "config.yaml").get("model_options") or {}).get("chat_template")
    template = _run_template(run, fmt, enc.get("chat_template_sha256"), cfg_template, tokenizer)
    pad = manifest.get("pad_token_id")
    if pad is not None and pad != tokenizer.pad_token_id:
        raise RmforgeError(f"{run}: the run was trained with pad token id {pad} but its tokenizer now gives "
                           f"{tokenizer.pad_token_id}; the folder's tokenizer files were changed")
    encoder = _build_encoder(tokenizer, max_length or enc.get("max_length") or manifest.get("max_length"),
                             length_policy or enc.get("length_policy") or manifest.get("length_policy"),
                             chat_template=template, append_eos=bool(enc.get("append_eos", True)),
                             system_prompt=enc.get("system_prompt"), encoder=fmt == "pair" if fmt else None,
                             template_kwargs=enc.get("template_kwargs") or {})
    got = encoder.info()
    for key in ("format", "chat_template_sha256", "eos_token_id"):
        if key in enc and got[key] != enc[key]:
            raise RmforgeError(f"{run}: cannot rebuild the training encoding ({key} was {enc[key]!r}, "
                               f"now {got[key]!r})")
    return encoder


def _run_template(run: Path, fmt: str | None, want: str | None, cfg_template: str | None, tokenizer) -> str | None:
    """The ``chat_template`` argument that reproduces the run's template (SHA-256 checked)."""
    if fmt == "pair":
        return None
    if fmt == "plain":
        return "none"
    custom = cfg_template is not None and cfg_template.strip().lower() != "none"
    if not custom and cfg_template is not None:
        return "none"
    tried: list[tuple[str, str | None]] = []
    if custom:
        if "{{" in cfg_template or "{%" in cfg_template:
            tried.append(("the config's template string", cfg_template))
        else:
            for path in (Path(cfg_template).expanduser(), run / cfg_template, run / Path(cfg_template).name):
                if path.is_file():
                    tried.append((f"template file {path}", str(path)))
                    break
    tried.append(("the tokenizer's own template", None))
    if want is None and not custom:
        return None
    for _, arg in tried:
        if want is None or _sha(resolve_template(tokenizer, arg)) == want:
            return arg
    seen = "; ".join(f"{label}: sha256 {(_sha(resolve_template(tokenizer, arg)) or 'none')[:12]}"
                     for label, arg in tried)
    missing = "" if not custom or len(tried) > 1 else f" (custom template '{cfg_template}' not found)"
    raise RmforgeError(f"{run}: the chat template used in training (sha256 {str(want)[:12]}) is not available"
                       f"{missing}: {seen}. Restore the template file named in config.yaml "
                       f"(model_options.chat_template: {cfg_template!r})")
