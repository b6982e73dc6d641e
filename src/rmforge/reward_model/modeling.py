"""Load any decoder LM or encoder as a scalar reward model (``AutoModelForSequenceClassification``).

``load_reward_model(name)`` accepts an embedded name, a local folder, a GGUF file or a hub id (see
``rmforge.models``) and returns a :class:`LoadedModel` ``(model, tokenizer, info)``; it unpacks as
``model, tokenizer = load_reward_model(...)``. It

- initialises a *newly created* head N(0, 1/sqrt(H+1)) with zero bias (a trained reward-model folder
  keeps its head: "new" means the head's keys were missing from the checkpoint);
- disables dropout (every dropout probability in the config before loading, every dropout module after);
- gives the tokenizer a pad token distinct from EOS, so that Hugging Face's "last non-pad token"
  pooling scores the real last token even when a sequence ends with EOS; right padding.

The reward of a batch is ``model(input_ids=..., attention_mask=...).logits[:, 0]``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from rmforge.errors import ConfigError, ModelLoadError, RmforgeError
from rmforge.models import resolve_model

logger = logging.getLogger("rmforge.reward_model")

PAD_POLICIES = ("auto", "add", "keep")
NEW_PAD = "<|pad|>"
HEAD_NAMES = ("score", "classifier", "v_head", "value_head", "reward_head", "summary", "head")
_DROPOUT_KEY = re.compile(r"(dropout|pdrop|drop_prob|drop_path)", re.IGNORECASE)
_DROPOUT_ATTRS = ("attention_dropout", "dropout", "drop_prob", "dropout_p", "dropout_rate")
# Characters no byte-level tokenizer maps to <unk>; a tokenizer that does cannot reuse unk as pad.
_UNK_PROBE = "zq\u2603\U0001d518\u0f3a\x07 \u4e2d\u6587 \U0001f600"


@dataclass
class LoadInfo:
    """What ``load_reward_model`` did (for logs and the run manifest)."""

    source: str
    architecture: str
    head: str | None = None
    head_initialised: bool = False
    head_init_std: float | None = None
    pad_token: str | None = None
    pad_token_id: int | None = None
    pad_source: str = "tokenizer"  # tokenizer | reused | added | eos
    pad_added: bool = False
    pad_equals_eos: bool = False
    eos_token_id: int | None = None
    dropout: float = 0.0
    new_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    """A reward model, its tokenizer and the :class:`LoadInfo`; iterates as ``(model, tokenizer)``."""

    model: Any
    tokenizer: Any
    info: LoadInfo

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence Transformers' load report and progress bars (the new head is expected and recorded)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_reward_model(name_or_path: str, *, num_labels: int = 1, head_init_std: float | None = None,
                      dropout: float = 0.0, dtype: torch.dtype = torch.float32, pad_policy: str = "auto",
                      trust_remote_code: bool = False) -> LoadedModel:
    """Load ``name_or_path`` as a sequence-classification reward model with ``num_labels`` outputs.

    ``head_init_std``: std of a new head's weights (default ``1/sqrt(H+1)``). ``dropout``: probability
    given to every dropout in the model. ``pad_policy``: ``auto`` (pad missing or equal to EOS: reuse an
    unused special token, else add ``<|pad|>``), ``add`` (always add ``<|pad|>`` in that case) or
    ``keep`` (leave pad as is, EOS when missing: the caller must then find the scored position from the
    attention mask). The info is also attached as ``model.rmforge_info`` (a dict).
    """
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if pad_policy not in PAD_POLICIES:
        raise ConfigError(f"pad_policy must be one of {', '.join(PAD_POLICIES)}, not '{pad_policy}'")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), not {dropout}")
    from safetensors import SafetensorError

    path = resolve_model(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path, num_labels=num_labels, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())  # transformers' hub messages span lines: one line for the CLI
        raise RmforgeError(f"cannot read the model config of '{name_or_path}' ({path}): {detail}") from None
    set_config_dropout(config, dropout)
    try:
        with quiet_transformers():
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, dtype=dtype, output_loading_info=True, ignore_mismatched_sizes=True,
                trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:  # a truncated or corrupted weights file too
        raise model_load_error(name_or_path, exc) from None
    info = LoadInfo(source=path, architecture=type(model).__name__, dropout=dropout)
    set_module_dropout(model, dropout)
    _init_head(model, loading, head_init_std, info)
    _set_pad(model, tokenizer, pad_policy, info)
    model.rmforge_info = info.to_dict()
    return LoadedModel(model, tokenizer, info)


# ----------------------------------------------------------------------------- dropout

def set_config_dropout(config: Any, p: float) -> None:
    """Set every dropout-like probability of ``config`` (and its sub-configs) to ``p``."""
    from transformers import PretrainedConfig

    for key, value in list(vars(config).items()):
        if isinstance(value, PretrainedConfig):
            set_config_dropout(value, p)
        elif _DROPOUT_KEY.search(key) and (value is None and key == "classifier_dropout"
                                           or isinstance(value, (int, float)) and not isinstance(value, bool)):
            setattr(config, key, p)


def set_module_dropout(model: nn.Module, p: float) -> None:
    """Set ``p`` on every dropout module and on float dropout attributes read at forward time."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.p = p
        for attr in _DROPOUT_ATTRS:
            value = getattr(module, attr, None)
            if isinstance(value, float):
                setattr(module, attr, p)


# ----------------------------------------------------------------------------- head

def find_head(model: nn.Module, num_labels: int | None = None) -> tuple[str, nn.Linear]:
    """The reward head's final projection as ``(qualified name, Linear)``.

    Looks for a known head attribute (``score`` for decoders, ``classifier`` for BERT/DeBERTa, ...);
    for a composite head (``classifier.dense`` + ``classifier.out_proj``) the last Linear inside it;
    otherwise the last Linear of the model with ``num_labels`` outputs.
    """
    num_labels = num_labels or model.config.num_labels
    for name in HEAD_NAMES:
        module = getattr(model, name, None)
        if isinstance(module, nn.Linear):
            return name, module
        if isinstance(module, nn.Module):
            linears = [(f"{name}.{sub}", m) for sub, m in module.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                return linears[-1]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
    if not linears:
        raise RmforgeError(f"cannot find the reward head of {type(model).__name__}")
    return linears[-1]


def _init_head(model: nn.Module, loading: dict, std: float | None, info: LoadInfo) -> None:
    name, linear = find_head(model)
    info.head = name
    root = name.split(".")[0] + "."
    mismatched = {k if isinstance(k, str) else k[0] for k in loading.get("mismatched_keys", ())}
    new = sorted(set(loading.get("missing_keys", ())) | mismatched)
    info.new_keys = new
    other = [k for k in new if not k.startswith(root) and ".pooler." not in f".{k}"]
    if other:
        logger.warning("weights missing from %s, randomly initialised: %s", info.source, ", ".join(other[:8]))
    if not any(k.startswith(root) for k in new):
        return  # a trained head: keep it
    std = 1.0 / math.sqrt(linear.in_features + 1) if std is None else float(std)
    with torch.no_grad():
        linear.weight.normal_(0.0, std)
        if linear.bias is not None:
            linear.bias.zero_()
    info.head_initialised, info.head_init_std = True, std
    logger.info("new reward head %s initialised N(0, %.4g)", name, std)


# ----------------------------------------------------------------------------- pad token

def _eos_ids(model: nn.Module, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    sources = [tokenizer.eos_token_id, model.config.get_text_config().eos_token_id,
               getattr(getattr(model, "generation_config", None), "eos_token_id", None)]
    for value in sources:
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def unused_special_token(tokenizer: Any, exclude: set[int], limit: int) -> str | None:
    """A special token that can serve as pad: not EOS/BOS/CLS/SEP/mask, not added around text,
    not in the chat template, not an ``<unk>`` that text can produce, with an id below ``limit``."""
    template = tokenizer.chat_template or ""
    if isinstance(template, dict):
        template = "\n".join(template.values())
    with_special = tokenizer("x")["input_ids"]
    exclude = set(exclude) | set(with_special) - set(tokenizer("x", add_special_tokens=False)["input_ids"])
    for attr in ("bos_token_id", "cls_token_id", "sep_token_id", "mask_token_id"):
        if isinstance(getattr(tokenizer, attr, None), int):
            exclude.add(getattr(tokenizer, attr))
    tokens = {t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    tokens.update({a.content: i for i, a in getattr(tokenizer, "added_tokens_decoder", {}).items() if a.special})
    unk = tokenizer.unk_token_id
    unk_in_text = unk is not None and unk in tokenizer(_UNK_PROBE, add_special_tokens=False)["input_ids"]

    def usable(tok: str, idx: int | None) -> bool:
        return (isinstance(idx, int) and 0 <= idx < limit and idx not in exclude and tok not in template
                and not (idx == unk and unk_in_text))

    ranked = sorted((("pad" not in t.lower(), not (i == unk or "endoftext" in t.lower()), i), t)
                    for t, i in tokens.items() if usable(t, i))
    return ranked[0][1] if ranked else None


def _set_pad(model: nn.Module, tokenizer: Any, policy: str, info: LoadInfo) -> None:
    eos = _eos_ids(model, tokenizer)
    emb = model.get_input_embeddings()
    pad_id = tokenizer.pad_token_id
    if policy == "keep" and pad_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token, info.pad_source = tokenizer.eos_token, "eos"
    elif (pad_id is None or pad_id in eos) and policy != "keep":
        reuse = unused_special_token(tokenizer, eos, emb.num_embeddings) if policy == "auto" else None
        if reuse is not None:
            tokenizer.pad_token, info.pad_source = reuse, "reused"
        else:
            _add_pad(model, tokenizer)
            info.pad_source, info.pad_added = "added", True
    if tokenizer.pad_token_id is None:
        _add_pad(model, tokenizer)
        info.pad_source, info.pad_added = "added", True
    tokenizer.padding_side = "right"
    pad_id = tokenizer.pad_token_id
    model.config.pad_token_id = pad_id
    text_config = model.config.get_text_config()
    if text_config is not model.config:
        text_config.pad_token_id = pad_id
    info.pad_token, info.pad_token_id = tokenizer.pad_token, pad_id
    info.pad_equals_eos, info.eos_token_id = pad_id in eos, tokenizer.eos_token_id
    if info.pad_equals_eos:
        logger.warning("pad token == eos (pad_policy=keep): score positions must come from the attention mask")


def _add_pad(model: nn.Module, tokenizer: Any) -> None:
    """Add ``<|pad|>`` as pad token; its embedding row is the mean of the others."""
    tokenizer.add_special_tokens({"pad_token": NEW_PAD})
    new_id = tokenizer.pad_token_id
    emb = model.get_input_embeddings()
    if new_id >= emb.num_embeddings:
        model.resize_token_embeddings(new_id + 1, mean_resizing=False)
        emb = model.get_input_embeddings()
    with torch.no_grad():
        weight = emb.weight
        rest = torch.cat([weight[:new_id], weight[new_id + 1:]])
        weight[new_id] = rest.float().mean(0).to(weight.dtype)


def model_load_error(name: str, exc: Exception) -> ModelLoadError:
    """One-line error for a model whose files cannot be loaded (a truncated or corrupted weights file too)."""
    msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if type(exc).__name__ == "SafetensorError" or "safetensors" in type(exc).__module__:
        return ModelLoadError(f"{name}: cannot read the model weights (model.safetensors: {msg}): the file may "
                              f"be truncated or corrupted")
    return ModelLoadError(f"cannot load model '{name}': {type(exc).__name__}: {msg}")
