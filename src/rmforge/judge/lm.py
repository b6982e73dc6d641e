"""Causal-LM loading and batched greedy generation for generative judges (SFT, GRPO, evaluation).

:func:`load_causal_lm` resolves a model name like every rmforge command (embedded name, folder, GGUF,
hub id), gives the tokenizer a pad token (EOS when it has none) and optionally replaces its chat
template. :func:`generate` renders chat prompts, left-pads them and decodes only the new tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rmforge.errors import RmforgeError
from rmforge.models import resolve_model


def load_causal_lm(name: str, chat_template: str | None = None, dtype=torch.float32):
    """``(model, tokenizer)`` for a causal LM; ``chat_template`` is a Jinja file or string."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rmforge.reward_model.modeling import quiet_transformers

    path = resolve_model(name)
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise RmforgeError(f"cannot load '{name}' as a causal language model: {exc}") from None
    if chat_template:
        file = Path(chat_template)
        tok.chat_template = file.read_text(encoding="utf-8") if file.is_file() else chat_template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


@torch.no_grad()
def generate(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int = 16,
             do_sample: bool = False, temperature: float = 1.0) -> list[str]:
    """Completions of rendered prompt texts (greedy by default), batched with left padding, in input order."""
    device = next(model.parameters()).device
    side = tok.padding_side
    tok.padding_side = "left"
    was_training = model.training
    model.eval()
    out: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            kwargs = {"do_sample": do_sample, "max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
            if do_sample:
                kwargs["temperature"] = temperature
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            ids = model.generate(**enc, **kwargs)
            new = ids[:, enc["input_ids"].shape[1]:]
            for i, text in zip(idx, tok.batch_decode(new, skip_special_tokens=True)):
                out[i] = text
    finally:
        tok.padding_side = side
        model.train(was_training)
    return out
