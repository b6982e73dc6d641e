"""Shared by the causal-LM benchmarks (grpo_share, sft_logits): model loading and the alternating timer."""

from __future__ import annotations

import time
from collections.abc import Callable


def load_lm(name: str):
    """(model, tokenizer) in train mode: an embedded name, a folder, or ``tiny`` (a random Llama from a config)."""
    from rmforge.judge.lm import load_causal_lm

    if name == "tiny":
        import shutil

        from rmforge.train.tiny import tiny_model

        folder = tiny_model("llama", hidden_size=256, num_layers=4, num_heads=8)
        model, tok = load_causal_lm(str(folder), None)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        model, tok = load_causal_lm(name, None)
    return model.train(), tok


def alternate(model, sides: dict[str, Callable], repeat: int) -> tuple[dict[str, list[float]], dict]:
    """Run each side (returns ``(output, scalar to backpropagate)``) forward + backward, alternating,
    ``repeat`` times; seconds per run and each side's last output (detached)."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs = {}
    for _ in range(repeat):
        for name, fn in sides.items():
            model.zero_grad(set_to_none=True)
            t = time.perf_counter()
            out, loss = fn()
            loss.backward()
            times[name].append(time.perf_counter() - t)
            outputs[name] = out.detach().float()
    return times, outputs
