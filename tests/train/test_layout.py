"""The forward layout of a run: automatic token budget, static row widths, out-of-memory message."""

import random
from types import SimpleNamespace

import pytest
import torch

from rmforge.errors import ConfigError, RmforgeError
from rmforge.reward_model.packing import doc_tokens
from rmforge.reward_model.tokenize import Encoded, EncodedSample
from rmforge.train.layout import Layout, activation_bytes_per_token, auto_token_budget, out_of_memory
from rmforge.train.sampler import sample_lengths

GIB = 2 ** 30
SMOLLM2_1_7B = SimpleNamespace(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24)


def test_activation_estimate_golden():
    # (10 h + 4 i) bf16 values + two fp32 norm inputs, per layer and token
    assert activation_bytes_per_token(SMOLLM2_1_7B, False) == 24 * ((10 * 2048 + 4 * 8192) * 2 + 8 * 2048)
    assert activation_bytes_per_token(SMOLLM2_1_7B, True) == 24 * 2048 * 2 + (10 * 2048 + 4 * 8192) * 2 + 8 * 2048


def test_auto_token_budget_from_free_memory():
    params = 1_711_000_000
    budget, ckpt, why = auto_token_budget(139 * GIB, SMOLLM2_1_7B, params, params, 1500, 40_000, None)
    per_token = activation_bytes_per_token(SMOLLM2_1_7B, False)
    fits = int((139 * GIB * 0.85 - 16 * params) // per_token)
    assert (budget, ckpt) == (fits // 128 * 128, False) and fits < 40_000
    assert why.startswith("139.0 GiB free, 25.5 GiB for weights, gradients and AdamW")
    # a short step needs no more than its own tokens
    assert auto_token_budget(139 * GIB, SMOLLM2_1_7B, params, params, 1500, 9000, None)[0] == 9088
    # too little room without checkpointing: it is switched on
    budget, ckpt, why = auto_token_budget(33 * GIB, SMOLLM2_1_7B, params, params, 1500, 40_000, None)
    assert ckpt and budget >= 1500 and "with activation checkpointing" in why
    # the user said no checkpointing: no silent switch, a clear error instead
    with pytest.raises(ConfigError, match=r"^out of GPU memory before the first step: 33.0 GiB free, 25.5 GiB "
                                          r"needed .* the longest sample \(1500 tokens\) does not fit"):
        auto_token_budget(33 * GIB, SMOLLM2_1_7B, params, params, 1500, 40_000, False)
    # LoRA: frozen weights cost 4 bytes
    lora = auto_token_budget(33 * GIB, SMOLLM2_1_7B, params, 4_000_000, 1500, 40_000, None)
    assert lora[1] is False


def _samples(lengths, seed=0):
    rng = random.Random(seed)
    out = []
    for i, (a, b) in enumerate(lengths):
        prompt = [rng.randint(3, 900) for _ in range(max(1, min(a, b) // 2))]
        rows = [prompt + [rng.randint(3, 900) for _ in range(n - len(prompt))] for n in (a, b)]
        out.append(EncodedSample(i, "pair", [Encoded(r, None, len(prompt)) for r in rows]))
    return out


def _static_layout(samples, budget, micro=16):
    doc_lens = [doc_tokens(s.encodings, True) for s in samples]
    return Layout("prefix_shared", "test", doc_lens, sample_lengths(samples, "prefix_shared"), token_budget=budget,
                  static=True, micro=micro)


@pytest.mark.parametrize("budget", [None, 4096])
def test_static_widths_are_few_and_hold_every_micro_batch(budget):
    rng = random.Random(1)
    lengths = [(int(rng.lognormvariate(5.3, 0.7)) % 1024 + 8, int(rng.lognormvariate(5.3, 0.7)) % 1024 + 8)
               for _ in range(600)]
    samples = _samples(lengths)
    lay = _static_layout(samples, budget)
    keys = ["pair"] * len(samples)
    lay.fit_widths(16, 7, 2, True, keys, world=2)
    assert 1 <= len(lay.widths) <= 4 and all(w % 128 == 0 for w in lay.widths)
    from rmforge.train.sampler import epoch_batches

    shapes = set()
    for epoch in range(2):
        for batch in epoch_batches(lay.lengths, 16, 7, epoch, True, keys):
            for rank in range(2):
                for part, width in lay.parts(batch, rank, 2):
                    assert width >= sum(lay.doc_lens[i] for i in part)
                    shapes.add(width)
    assert shapes <= set(lay.widths)


@pytest.mark.shared
def test_row_shapes_over_an_epoch_of_hh_rlhf_dev(shared_data, tmp_path):
    """Issue 17: over an epoch of the real hh-rlhf dev file at the benchmark's settings (16 pairs a step,
    max_length 1024), packed forwards take at most 4 row shapes."""
    from rmforge.reward_model.modeling import load_reward_model
    from rmforge.reward_model.tokenize import RewardEncoder
    from rmforge.train.data import read_any
    from rmforge.train.sampler import epoch_batches
    from rmforge.train.tiny import tiny_model

    _, tok = load_reward_model(str(tiny_model("llama", tmp_path / "tiny")))
    pairs = read_any(str(shared_data / "hh-rlhf-harmless-base.dev.jsonl.gz"), "hh-rlhf")
    samples, _ = RewardEncoder(tok, 1024).encode_dataset(pairs)
    keys = [s.kind for s in samples]
    for budget in (None, 16384):
        lay = _static_layout(samples, budget)
        lay.fit_widths(16, 42, 1, True, keys, world=1)
        shapes = {(1, width) for batch in epoch_batches(lay.lengths, 16, 42, 0, True, keys)
                  for _, width in lay.parts(batch, 0, 1)}
        assert len(samples) > 1000 and 1 <= len(shapes) <= 4, shapes
    lay.fit_widths(16, 42, 1, True, keys, world=1, count=8)  # train.row_widths=8
    assert len(lay.widths) == 8


def test_out_of_memory_names_the_setting():
    lay = Layout("prefix_shared", "test", [300, 500], [300, 500], token_budget=4096)
    with pytest.raises(RmforgeError, match=r"^out of GPU memory at step 3 \(a micro-batch of 800 tokens, "
                                           r"train.token_budget=4096\): lower train.token_budget \(e.g. 2048\) or "
                                           r"set train.gradient_checkpointing=true$"):
        with out_of_memory(lay, 3, [0, 1]):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    plain = Layout("none", "test", [], [1, 1], micro=8, checkpointing=True)
    with pytest.raises(RmforgeError, match=r"^out of GPU memory at step 1 \(a micro-batch of 2 samples, "
                                           r"train.micro_batch_size=8\): set train.micro_batch_size=4 \(or "
                                           r"train.token_budget with packing\)$"):
        with out_of_memory(plain, 1, [0, 1]):
            raise torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(ValueError, match="other"):  # anything else goes through
        with out_of_memory(plain, 1, [0]):
            raise ValueError("other")
