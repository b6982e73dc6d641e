"""rmforge_varlen (padding-free packed forwards without any attention mask) gives the rewards and the
gradients of plain unpacked forwards, builds no mask, and is what a GPU without FlexAttention packs with."""

import inspect
import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import masking_utils

from rmforge.data.demo import generate_demo
from rmforge.reward_model import attention, varlen
from rmforge.reward_model.attention import (
    attention_inputs,
    attn_implementation,
    choose_packing,
    mask_backend,
    resolve_packing,
)
from rmforge.reward_model.batching import collate
from rmforge.reward_model.forward import model_outputs
from rmforge.reward_model.modeling import load_reward_model
from rmforge.reward_model.packing import pack, packed_outputs
from rmforge.reward_model.tokenize import RewardEncoder
from rmforge.train import layout as layout_mod
from rmforge.train.tiny import tiny_model

VARLEN = varlen.VARLEN_IMPL


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def _rm(request, tmp_path_factory):
    folder = tiny_model(request.param, tmp_path_factory.mktemp(request.param))
    model, tok = load_reward_model(str(folder))
    samples, _ = RewardEncoder(tok, 128).encode_dataset(generate_demo(30, seed=3)[:10])
    return model.eval(), tok, samples


@pytest.fixture
def rm(_rm):
    """A tiny decoder (head dim 8: FlexAttention cannot run it; 4 query heads, 2 key/value heads), back on
    SDPA in eval mode after the test."""
    yield _rm
    model = _rm[0]
    model.set_attn_implementation("sdpa")
    if model.is_gradient_checkpointing:
        model.gradient_checkpointing_disable()
    model.eval()


def _flat(samples):
    return [e for s in samples for e in s.encodings]


def _switch(model):
    assert varlen.use_varlen_attention(model) == (True, "ok")
    assert attn_implementation(model) == VARLEN and mask_backend(model) == "varlen"


def test_segments_are_runs_of_documents_and_padding_tails():
    doc = torch.tensor([[0, 0, 1, 1, 1, -1, -1], [2, 2, 2, 3, -1, -1, -1], [4, 4, 4, 4, 4, 4, 4]])
    segs = varlen.segments(doc)
    assert segs.spans == ((0, 0, 2), (0, 2, 5), (0, 5, 7), (1, 0, 3), (1, 3, 4), (1, 4, 7), (2, 0, 7))
    assert segs.cu_seqlens.tolist() == [0, 2, 5, 7, 10, 11, 14, 21] and segs.cu_seqlens.dtype == torch.int32
    assert (segs.max_len, segs.tokens) == (7, 21)


@pytest.mark.parametrize("row_tokens", [None, 300])
def test_packed_rewards_equal_unpacked(rm, row_tokens):
    """Several documents a row and rows padded to a bucket width (the padding tail is its own segment)."""
    model, tok, samples = rm
    want = torch.tensor(model_outputs(model, _flat(samples), tok.pad_token_id, batch_size=4))
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False, row_tokens=row_tokens)
    if row_tokens:
        assert batch.input_ids.shape[1] == row_tokens and batch.input_ids.shape[0] > 1
        assert bool((batch.doc[:, -1] == -1).any())  # rows end in padding
    _switch(model)
    with torch.no_grad():
        got = packed_outputs(model, batch)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def _unpacked_loss(model, tok, flat, weights):
    batch = collate(flat, tok.pad_token_id)
    return (model(**batch).logits[:, 0] * weights).sum()


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_equal_unpacked(rm, checkpointing):
    """A backward through the packed forward gives the gradients of plain padded rows; with activation
    checkpointing the layers re-run in the backward pass and still see their segments."""
    model, tok, samples = rm
    flat = _flat(samples)
    weights = torch.linspace(-1.0, 1.0, len(flat))
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.zero_grad()
    _unpacked_loss(model, tok, flat, weights).backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    _switch(model)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False, row_tokens=256)
    (packed_outputs(model, batch)[:, 0] * weights).sum().backward()
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys() and len(got) > 10
    for name in want:
        err = float((got[name] - want[name]).abs().max() / want[name].abs().max())
        assert err < 1e-5, (name, err)


def test_no_mask_is_built(rm, monkeypatch):
    """Neither rmforge's dense mask nor any of transformers' mask builders run; every attention call is
    one segment, causal, without a mask (also in the backward's recomputation)."""
    model, tok, samples = rm

    def refuse(*args, **kwargs):
        raise AssertionError("a mask was built")

    monkeypatch.setattr(attention, "dense_mask", refuse)
    for name in ("sdpa_mask", "eager_mask", "flex_attention_mask", "_vmap_expansion_sdpa",
                 "_non_vmap_expansion_sdpa"):
        monkeypatch.setattr(masking_utils, name, refuse)
    monkeypatch.setattr(masking_utils, "packed_sequence_mask_function", lambda packed: refuse)
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        calls.append((q.shape[2], attn_mask, kwargs.get("is_causal")))
        return real(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False, row_tokens=256)
    segs = varlen.segments(batch.doc)
    _switch(model)
    model.train()
    model.gradient_checkpointing_enable()
    packed_outputs(model, batch).sum().backward()
    layers = model.config.num_hidden_layers
    assert len(calls) == 2 * layers * len(segs.spans)  # forward + checkpointed recomputation
    assert {(mask, causal) for _, mask, causal in calls} == {(None, True)}
    assert max(n for n, _, _ in calls) == segs.max_len < 256


def test_plain_forward_under_rmforge_varlen_is_sdpa(rm):
    model, tok, samples = rm
    flat = _flat(samples)[:6]
    want = model_outputs(model, flat, tok.pad_token_id, batch_size=3)
    _switch(model)
    got = model_outputs(model, flat, tok.pad_token_id, batch_size=3)  # padded rows, 2D mask
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-6)


def test_prefix_sharing_is_refused(rm):
    model, tok, samples = rm
    _switch(model)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, True)
    assert bool((batch.branch > 1).any())
    with pytest.raises(ValueError, match="rmforge_varlen cannot share prefixes"):
        attention_inputs(model, batch.doc, batch.branch)
    plain = pack([s.encodings for s in samples], tok.pad_token_id, False)
    assert attention_inputs(model, plain.doc, plain.branch) is None


def _fake_varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, window_size=(-1, -1),
                      enable_gqa=False, scale=None):
    """torch's varlen_attn (>= 2.11 signature) on CPU: SDPA per sequence of the cumulative lengths."""
    assert query.dim() == 3 and query.is_contiguous() and cu_seq_q.dtype == torch.int32
    assert torch.equal(cu_seq_q, cu_seq_k) and max_q == max_k
    bounds = cu_seq_q.tolist()
    assert bounds[-1] == query.shape[0] and max(b - a for a, b in zip(bounds, bounds[1:])) == max_q
    left, right = window_size
    assert right in (-1, 0) and (left == -1 or right == 0)
    outs = []
    for a, b in zip(bounds, bounds[1:]):
        q, k, v = (t[a:b].transpose(0, 1) for t in (query, key, value))
        back = torch.arange(b - a)[:, None] - torch.arange(b - a)[None, :]
        mask = None if right == -1 else (back >= 0) & ((back <= left) | (left == -1))
        outs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale,
                                                   enable_gqa=enable_gqa).transpose(0, 1))
    return torch.cat(outs)


def _fake_varlen_attn_210(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False):
    """torch 2.10's signature: causal flag, no GQA, no scale."""
    assert query.shape[1] == key.shape[1]
    return _fake_varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k,
                             window_size=(-1, 0) if is_causal else (-1, -1))


def _fake_kernel(monkeypatch, fn):
    monkeypatch.setattr(varlen, "_varlen_fn", lambda: fn)
    monkeypatch.setattr(varlen, "_kernel_params", lambda: frozenset(inspect.signature(fn).parameters))
    monkeypatch.setattr(varlen, "_fused_ok", lambda device, dtype, dim: True)
    monkeypatch.setattr(varlen, "_broken", {})


@pytest.mark.parametrize("kernel", [_fake_varlen_attn, _fake_varlen_attn_210])
def test_fused_kernel_path_equals_unpacked(rm, monkeypatch, kernel):
    """The fused path's flattening to [tokens, heads, dim], cumulative lengths, GQA and scale, with a CPU
    stand-in for torch's kernel (both signatures)."""
    model, tok, samples = rm
    want = torch.tensor(model_outputs(model, _flat(samples), tok.pad_token_id, batch_size=4))
    used = []
    _fake_kernel(monkeypatch, lambda *a, **k: used.append(1) or kernel(*a, **k))
    monkeypatch.setattr(varlen, "_kernel_params", lambda: frozenset(inspect.signature(kernel).parameters))
    _switch(model)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False, row_tokens=300)
    with torch.no_grad():
        got = packed_outputs(model, batch)
    assert len(used) == model.config.num_hidden_layers
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_fused_kernel_failure_falls_back_once(rm, monkeypatch, caplog):
    model, tok, samples = rm
    want = torch.tensor(model_outputs(model, _flat(samples), tok.pad_token_id, batch_size=4))

    def broken(*args, **kwargs):
        raise RuntimeError("FlashAttention only supports Ampere GPUs or newer.")

    _fake_kernel(monkeypatch, broken)
    _switch(model)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False)
    with caplog.at_level(logging.WARNING, "rmforge.reward_model"), torch.no_grad():
        got = packed_outputs(model, batch)
        packed_outputs(model, batch)
    assert caplog.text.count("varlen_attn kernel failed (FlashAttention only supports Ampere") == 1
    assert torch.allclose(got, want, atol=1e-5)


def test_attention_dropout(rm, monkeypatch):
    """The segment loop takes attention dropout; torch's varlen kernel has none: a clear error."""
    model, tok, samples = rm
    _switch(model)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False)
    model.train()
    attns = [layer.self_attn for layer in model.model.layers]
    monkeypatch.setattr(attns[0], "attention_dropout", 0.5)
    torch.manual_seed(0)
    dropped = packed_outputs(model, batch)
    dropped.sum().backward()
    model.eval()
    with torch.no_grad():
        clean = packed_outputs(model, batch)
    assert not torch.allclose(dropped, clean, atol=1e-4)
    model.train()
    _fake_kernel(monkeypatch, _fake_varlen_attn)
    with pytest.raises(ValueError, match="rmforge_varlen .torch's varlen_attn kernel. has no attention dropout"):
        packed_outputs(model, batch)


def test_varlen_kernel_usable_decision():
    ok = varlen.varlen_kernel_usable
    assert ok("cuda", torch.bfloat16, 8, True, (9, 0)) == (True, "ok")
    assert ok("cuda", torch.float16, 128, True, (8, 0)) == (True, "ok")
    assert ok("cpu", torch.bfloat16, 64, True) == (False, "torch's varlen_attn kernel needs a CUDA device, not cpu")
    assert ok("cuda", torch.bfloat16, 64, False)[1].endswith("has no torch.nn.attention.varlen.varlen_attn "
                                                              "(torch >= 2.10)")
    assert ok("cuda", torch.float32, 64, True, (9, 0)) == (
        False, "varlen_attn needs fp16/bf16, the forward runs in torch.float32")
    assert ok("cuda", torch.bfloat16, 64, True, (7, 5)) == (
        False, "compute capability 7.5 < 8.0 (flash kernels)")
    assert ok("cuda", torch.bfloat16, 512, True, (9, 0)) == (False, "head dimension 512 > 256")


def test_choose_packing_on_cuda_without_flex(rm, monkeypatch, caplog):
    """Pure decisions: never a dense mask on the GPU."""
    model, _, _ = rm
    monkeypatch.setattr(attention, "_warned", set())
    flex_off = "head dimension 8 < 16"
    mode, why = choose_packing(model, "auto", "cuda", flex_off, (True, "ok"))
    assert mode == "padding_free"
    assert why.startswith("FlexAttention is off (head dimension 8 < 16): no padding through rmforge_varlen")
    fp32 = (False, "varlen_attn needs fp16/bf16, the forward runs in torch.float32")
    assert choose_packing(model, "auto", "cuda", flex_off, fp32) == (
        "none", "FlexAttention is off (head dimension 8 < 16) and torch's varlen_attn kernel cannot run (varlen_attn "
                "needs fp16/bf16, the forward runs in torch.float32): plain padded rows keep the fused SDPA kernel")
    assert choose_packing(model, "auto", "cuda", flex_off)[0] == "none"  # not checked: no packing
    with caplog.at_level(logging.WARNING, "rmforge.reward_model"):
        mode, why = choose_packing(model, "padding_free", "cuda", flex_off, fp32)
        assert (mode, why) == ("padding_free", "packing=padding_free was asked for: through rmforge_varlen, no dense "
                                               "mask (FlexAttention is off (head dimension 8 < 16))")
        assert caplog.text == ""  # an explicit padding_free is exact and mask-free: nothing to warn about
        for _ in range(3):
            mode, why = choose_packing(model, "prefix_shared", "cuda", flex_off, fp32)
            assert mode == "padding_free" and "padding_free through rmforge_varlen instead (no dense mask)" in why
    warnings = [r for r in caplog.records if "packing=prefix_shared needs FlexAttention here" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "falling back to packing=padding_free through rmforge_varlen" in warnings[0].getMessage()
    assert "dense [rows, 1, width, width]" not in caplog.text
    # CPU keeps its dense-mask layouts (measured fastest there)
    assert choose_packing(model, "auto", "cpu")[0] == "prefix_shared"
    assert choose_packing(model, "prefix_shared", "cpu") == ("prefix_shared", "packing=prefix_shared was asked for")
    # flash attention keeps its own route
    model.config._attn_implementation = "flash_attention_2"
    try:
        assert choose_packing(model, "auto", "cuda", flex_off, (True, "ok"))[0] == "padding_free"
        with pytest.raises(ValueError, match="prefix_shared needs custom attention masks"):
            choose_packing(model, "prefix_shared", "cuda")
    finally:
        model.config._attn_implementation = "sdpa"


def test_choose_packing_under_rmforge_varlen(rm, monkeypatch, caplog):
    model, _, _ = rm
    monkeypatch.setattr(attention, "_warned", set())
    _switch(model)
    for device in ("cuda", "cpu"):
        mode, why = choose_packing(model, "auto", device)
        assert mode == "padding_free" and why.startswith("rmforge_varlen: each document attends within itself")
        assert choose_packing(model, "padding_free", device)[0] == "padding_free"
        with caplog.at_level(logging.WARNING, "rmforge.reward_model"):
            assert choose_packing(model, "prefix_shared", device)[0] == "padding_free"
    assert caplog.text.count("packing=prefix_shared needs FlexAttention here (the model runs rmforge_varlen)") == 1


def test_resolve_packing_on_cuda_switches_to_varlen(rm, monkeypatch):
    """Scoring with an explicit packed mode on a GPU model without FlexAttention: through rmforge_varlen,
    or plain rows where the switch fails, never a dense mask."""
    model, _, _ = rm
    monkeypatch.setattr(attention, "model_device_type", lambda m: "cuda")
    assert resolve_packing(model, "auto") == "none" and attn_implementation(model) == "sdpa"
    monkeypatch.setattr(attention, "use_varlen_attention", lambda m: (False, "rmforge_varlen unavailable: x"))
    assert resolve_packing(model, "padding_free") == "none" and attn_implementation(model) == "sdpa"
    monkeypatch.setattr(attention, "use_varlen_attention", varlen.use_varlen_attention)
    assert resolve_packing(model, "padding_free") == "padding_free" and attn_implementation(model) == VARLEN
    assert resolve_packing(model, "prefix_shared") == "padding_free"


def test_use_varlen_attention_is_idempotent_and_never_raises(rm, monkeypatch, caplog):
    model, _, _ = rm
    monkeypatch.setattr(varlen, "_warned", set())

    def fail(name):
        raise ValueError("custom attention not supported")

    monkeypatch.setattr(model, "set_attn_implementation", fail)
    with caplog.at_level(logging.WARNING, "rmforge.reward_model"):
        for _ in range(2):
            assert varlen.use_varlen_attention(model) == (
                False, "rmforge_varlen unavailable: custom attention not supported")
    assert caplog.text.count("rmforge_varlen unavailable") == 1 and attn_implementation(model) == "sdpa"
    monkeypatch.undo()
    _switch(model)
    _switch(model)


def _opt(packing, precision="auto"):
    return SimpleNamespace(packing=packing, precision=precision, gradient_checkpointing=False, token_budget=None,
                           batch_size=8)


def test_plan_layout_on_cuda_without_flex(rm, monkeypatch):
    """The trainer on a GPU where FlexAttention cannot run (here: no CUDA at all, head dim 8)."""
    model, _, samples = rm
    monkeypatch.setattr(attention, "_warned", set())
    lay = layout_mod.plan_layout(model, _opt("auto"), "cuda", samples, 4)
    assert lay.packing == "none" and "torch's varlen_attn kernel cannot run" in lay.packing_reason
    assert attn_implementation(model) == "sdpa"
    seen = []
    monkeypatch.setattr(layout_mod, "varlen_verdict", lambda m, dtype: seen.append(dtype) or (True, "ok"))
    lay = layout_mod.plan_layout(model, _opt("auto"), "cuda", samples, 4)
    assert (lay.packing, lay.static) == ("padding_free", False) and seen == [torch.bfloat16]
    assert lay.start_event(model)["attention"] == VARLEN
    model.set_attn_implementation("sdpa")
    layout_mod.plan_layout(model, _opt("padding_free", "fp32"), "cuda", samples, 4)
    assert seen[-1] is None  # fp32: the parameters' dtype decides
    for packing in ("padding_free", "prefix_shared"):
        model.set_attn_implementation("sdpa")
        lay = layout_mod.plan_layout(model, _opt(packing), "cuda", samples, 4)
        assert lay.packing == "padding_free" and attn_implementation(model) == VARLEN
        assert lay.doc_lens == [sum(len(e.input_ids) for e in s.encodings) for s in samples]
    # an explicit packed mode whose switch to rmforge_varlen fails: plain padded rows, never a dense mask
    model.set_attn_implementation("sdpa")
    monkeypatch.setattr(attention, "use_varlen_attention", lambda m: (False, "rmforge_varlen unavailable: x"))
    lay = layout_mod.plan_layout(model, _opt("padding_free"), "cuda", samples, 4)
    assert lay.packing == "none" and attn_implementation(model) == "sdpa"
    assert lay.packing_reason == ("packing=padding_free without FlexAttention needs rmforge_varlen unavailable: x: "
                                  "plain padded rows")
    monkeypatch.setattr(attention, "use_varlen_attention", varlen.use_varlen_attention)
    # on CPU nothing changes
    model.set_attn_implementation("sdpa")
    lay = layout_mod.plan_layout(model, _opt("auto"), "cpu", samples, 4)
    assert lay.packing == "prefix_shared" and attn_implementation(model) == "sdpa"


def test_training_planned_as_on_a_gpu_without_flex(rm, tmp_path, monkeypatch):
    """train_bt with the layout a GPU without FlexAttention gets: packed through rmforge_varlen, with the
    loss curve of plain padded batches (the same batches: no length grouping)."""
    from rmforge.config import load_config
    from rmforge.data.io import write_samples
    from rmforge.train import trainer
    from rmforge.train.config import BTConfig
    from rmforge.train.metrics import read_metrics

    model = rm[0]
    if model.config.model_type != "llama":
        pytest.skip("one architecture is enough here")
    folder = tiny_model("llama", tmp_path / "model")
    demo = generate_demo(120, seed=0)
    write_samples(tmp_path / "train.jsonl", demo[:32])
    write_samples(tmp_path / "val.jsonl", demo[100:108])
    real = layout_mod.plan_layout
    monkeypatch.setattr(trainer, "plan_layout", lambda m, opt, device, *a, **k: real(m, opt, "cuda", *a, **k))
    curves = {}
    for mode in ("padding_free", "none"):
        cfg = load_config(None, [f"model={folder}", f"data.train={tmp_path / 'train.jsonl'}",
                                 f"data.validation={tmp_path / 'val.jsonl'}", f"output_dir={tmp_path / mode}",
                                 "train.max_steps=3", "train.batch_size=8", "train.precision=fp32", "train.lr=1e-3",
                                 "logging.every_steps=1", "logging.progress=false", "seed=0",
                                 "train.length_grouping=false", f"train.packing={mode}"], cls=BTConfig)
        trainer.train_bt(cfg)
        rows = read_metrics(tmp_path / mode)
        curves[mode] = [r["loss"] for r in rows if "loss" in r and "event" not in r]
        if mode == "padding_free":
            assert (rows[0]["packing"], rows[0]["attention"]) == ("padding_free", VARLEN)
    assert len(curves["none"]) == 3 and curves["padding_free"] == pytest.approx(curves["none"], abs=1e-5)


@pytest.mark.parametrize("kernel", [None, _fake_varlen_attn, _fake_varlen_attn_210])
def test_sliding_window_layers(tmp_path, monkeypatch, kernel):
    """A Qwen2 model with a sliding-window layer (window 6, shorter than its documents): packed rewards
    equal transformers' own plain forwards (segment loop, a windowed kernel, or the loop under torch 2.10)."""
    import json

    folder = tiny_model("qwen2", tmp_path / "qwen2")
    config = json.loads((folder / "config.json").read_text())
    config.update(use_sliding_window=True, sliding_window=6, max_window_layers=1, layer_types=None)
    (folder / "config.json").write_text(json.dumps(config))
    model, tok = load_reward_model(str(folder))
    model.eval()
    assert model.config.layer_types == ["full_attention", "sliding_attention"]
    samples, _ = RewardEncoder(tok, 128).encode_dataset(generate_demo(30, seed=3)[:6])
    want = torch.tensor(model_outputs(model, _flat(samples), tok.pad_token_id, batch_size=4))
    _switch(model)
    batch = pack([s.encodings for s in samples], tok.pad_token_id, False, row_tokens=200)
    with torch.no_grad():
        full_window = packed_outputs(model, batch)  # checked below: the window changes the rewards
        if kernel is not None:
            _fake_kernel(monkeypatch, kernel)
        got = packed_outputs(model, batch)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
    model.model.layers[1].self_attn.sliding_window = None
    with torch.no_grad():
        wide = packed_outputs(model, batch)
    assert not torch.allclose(wide, want, atol=1e-3) and torch.allclose(full_window, want, atol=1e-5)


def test_use_varlen_attention_takes_causal_lms_not_encoders(tmp_path):
    """Packed SFT runs a ``*ForCausalLM`` through rmforge_varlen too; encoders stay refused."""
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(tiny_model("llama", tmp_path / "lm"), dtype=torch.float32)
    _switch(lm)
    bert, _ = load_reward_model(str(tiny_model("bert", tmp_path / "bert")))
    assert varlen.use_varlen_attention(bert) == (
        False, "BertForSequenceClassification is not a causal decoder (a decoder reward model or a causal LM)")
    assert attention.is_causal_decoder(lm) and not attention.is_decoder_rm(lm)


def test_kernel_verdicts_read_the_gpu_capability(rm, monkeypatch):
    """varlen_verdict (planning) and _fused_ok (each forward) decide alike: both look up the GPU's capability."""
    model, _, _ = rm
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(varlen, "_varlen_fn", lambda: _fake_varlen_attn)
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda device=None: asked.append(device) or (7, 5))
    varlen._fused_ok.cache_clear()
    try:
        assert varlen.varlen_verdict(model, torch.bfloat16) == (False, "compute capability 7.5 < 8.0 (flash kernels)")
        assert varlen._fused_ok(torch.device("cuda", 0), torch.bfloat16, 8) is False
        assert asked == [None, torch.device("cuda", 0)]
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
        varlen._fused_ok.cache_clear()
        assert varlen.varlen_verdict(model, torch.bfloat16) == (True, "ok")
        assert varlen._fused_ok(torch.device("cuda", 0), torch.bfloat16, 8) is True
        assert varlen._fused_ok(torch.device("cpu"), torch.bfloat16, 8) is False
    finally:
        varlen._fused_ok.cache_clear()
