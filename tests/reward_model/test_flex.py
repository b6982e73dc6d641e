"""rmforge's FlexAttention function (eager on CPU) gives the rewards of plain unpacked forwards, and
the packing decision per hardware says why."""

import pytest
import torch

from rmforge.data.demo import generate_demo
from rmforge.reward_model import flex
from rmforge.reward_model.attention import attn_implementation, choose_packing, mask_backend
from rmforge.reward_model.forward import model_outputs
from rmforge.reward_model.modeling import load_reward_model
from rmforge.reward_model.packing import doc_tokens, pack, packed_outputs
from rmforge.reward_model.shapes import round_up
from rmforge.reward_model.tokenize import RewardEncoder
from rmforge.train.tiny import tiny_model


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def flex_rm(request, tmp_path_factory):
    """A tiny decoder with head dim 16 (FlexAttention's minimum) and two reference copies."""
    folder = tiny_model(request.param, tmp_path_factory.mktemp(request.param), hidden_size=64, num_heads=4)
    model, tok = load_reward_model(str(folder))
    flex.register()
    samples, _ = RewardEncoder(tok, 128).encode_dataset(generate_demo(30, seed=3)[:10])
    return model.eval(), tok, samples


def _set(model, impl):
    model.set_attn_implementation(impl)
    assert attn_implementation(model) == impl


@pytest.mark.parametrize("share", [True, False])
def test_flex_packed_rewards_equal_unpacked_sdpa(flex_rm, share):
    model, tok, samples = flex_rm
    _set(model, "sdpa")
    flat = [e for s in samples for e in s.encodings]
    want = torch.tensor(model_outputs(model, flat, tok.pad_token_id, batch_size=4))
    total = sum(doc_tokens(s.encodings, share) for s in samples)
    width = round_up(total) + 128  # one row padded up to a planned width, as on the GPU
    batch = pack([s.encodings for s in samples], tok.pad_token_id, share, row_tokens=width)
    assert tuple(batch.input_ids.shape) == (1, width)
    try:
        _set(model, flex.FLEX_IMPL)
        assert mask_backend(model) == "flex_attention"
        with torch.no_grad():
            got = packed_outputs(model, batch)
    finally:
        _set(model, "sdpa")
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_plain_forward_under_rmforge_flex_is_sdpa(flex_rm):
    model, tok, samples = flex_rm
    flat = [e for s in samples for e in s.encodings][:6]
    _set(model, "sdpa")
    want = model_outputs(model, flat, tok.pad_token_id, batch_size=3)
    try:
        _set(model, flex.FLEX_IMPL)
        got = model_outputs(model, flat, tok.pad_token_id, batch_size=3)  # padded rows, 2D mask
    finally:
        _set(model, "sdpa")
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-6)


def test_compiles_count_distinct_shapes_in_any_grad_mode(flex_rm, monkeypatch):
    """On CUDA every new (shape, dtype) specialises the compiled kernel once, with or without autograd:
    that count is the ``compiles`` of the start/end events. Eager kernel here, bookkeeping as on CUDA."""
    from torch.nn.attention.flex_attention import flex_attention

    model, tok, samples = flex_rm
    monkeypatch.setattr(flex, "_compiled", lambda device_type: device_type == "cpu")
    # FlexAttention has no backward on CPU: the bookkeeping is what is tested here
    monkeypatch.setitem(flex._kernel, "cpu", lambda q, k, v, **kw: flex_attention(q.detach(), k.detach(), v.detach(),
                                                                                 **kw))
    flex.reset_compiles()
    groups = [s.encodings for s in samples[:4]]
    try:
        _set(model, flex.FLEX_IMPL)
        for width in (256, 256, 384):
            with torch.no_grad():
                packed_outputs(model, pack(groups, tok.pad_token_id, row_tokens=width))
        assert flex.compiles() == 2  # two widths (block masks are not compiled)
        layers = [m for name, m in model.named_modules() if name.endswith("self_attn")]
        assert layers and not any(getattr(m, "_rmforge_trained", False) for m in layers)  # scoring only so far
        packed_outputs(model, pack(groups, tok.pad_token_id, row_tokens=256))
        assert flex.compiles() == 2  # autograd on: the same specialisation (flex.run_kernel)
        assert all(m._rmforge_trained for m in layers)  # later no-grad passes reuse the training kernel
    finally:
        _set(model, "sdpa")
        flex.reset_compiles()
    assert flex.compiles() == 0


def test_choose_packing_per_hardware(flex_rm, tmp_path, caplog):
    model, _, _ = flex_rm
    reason = f"no CUDA kernels ({model.config.model_type})"  # the warning is given once per message
    _set(model, "sdpa")
    assert choose_packing(model, "auto", "cpu") == (
        "prefix_shared", "cpu: prompts encoded once and no padding (fastest here: bench/bt_throughput.py)")
    mode, why = choose_packing(model, "auto", "cuda", "head dimension 8 < 16")
    assert mode == "none" and why.startswith("FlexAttention is off (head dimension 8 < 16) and torch's varlen_attn "
                                             "kernel cannot run")
    with caplog.at_level("WARNING", "rmforge.reward_model"):  # no dense GPU masks: through rmforge_varlen
        mode, why = choose_packing(model, "padding_free", "cuda", reason)
    assert mode == "padding_free" and "through rmforge_varlen, no dense mask" in why
    assert "dense [rows, 1, width, width]" not in caplog.text
    assert choose_packing(model, "none", "cuda") == ("none", "packing=none was asked for")
    try:
        _set(model, flex.FLEX_IMPL)
        mode, why = choose_packing(model, "auto", "cuda")
        assert mode == "prefix_shared" and why.startswith("FlexAttention on CUDA")
    finally:
        _set(model, "sdpa")
    model.config._attn_implementation = "flash_attention_2"
    try:
        assert choose_packing(model, "auto", "cuda")[0] == "padding_free"
    finally:
        model.config._attn_implementation = "sdpa"
    bert, _ = load_reward_model(str(tiny_model("bert", tmp_path / "bert")))
    assert choose_packing(bert, "auto", "cuda") == ("none", "BertForSequenceClassification attends bidirectionally: "
                                                              "one padded row per response")


def test_use_flex_attention_switches_a_capable_model(flex_rm, monkeypatch):
    model, _, _ = flex_rm
    _set(model, "sdpa")
    assert flex.use_flex_attention(model) == (False, "FlexAttention kernels need a CUDA device, not cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        assert flex.use_flex_attention(model) == (True, "ok")
        assert attn_implementation(model) == flex.FLEX_IMPL
    finally:
        _set(model, "sdpa")


def _flex_scoring(flex_rm, monkeypatch, **kw):
    """Rewards of plain forwards, rewards under rmforge_flex, and the packed row shapes of the latter."""
    from rmforge.reward_model import forward

    model, tok, samples = flex_rm
    _set(model, "sdpa")
    want = forward.score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="none")
    shapes = []
    real = forward.pack
    monkeypatch.setattr(forward, "pack", lambda *a, **k: shapes.append(real(*a, **k).input_ids.shape) or real(*a, **k))
    try:
        _set(model, flex.FLEX_IMPL)
        got = forward.score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="prefix_shared", **kw)
    finally:
        _set(model, "sdpa")
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-5)
    return {tuple(s) for s in shapes}, len(shapes)


def test_scoring_under_flex_uses_few_static_rows_and_equal_rewards(flex_rm, monkeypatch):
    """Evaluation and serving on FlexAttention: one packed row a forward, of a width from a fixed set;
    the rewards equal plain forwards."""
    from rmforge.reward_model import forward

    shapes, forwards = _flex_scoring(flex_rm, monkeypatch)
    assert forwards == 3 and shapes == {(1, forward.INFER_WIDTHS[0])}


def test_packed_scoring_keeps_no_autograd_graph(flex_rm, monkeypatch):
    """Packed evaluation used to run with autograd on (activations kept for a backward that never comes)."""
    from rmforge.reward_model import forward

    model, tok, samples = flex_rm
    _set(model, "sdpa")
    grad_modes = []
    real = forward.packed_outputs
    monkeypatch.setattr(forward, "packed_outputs", lambda *a: grad_modes.append(torch.is_grad_enabled()) or real(*a))
    forward.score_samples(model, samples[:4], tok.pad_token_id, batch_size=2, packing="prefix_shared")
    assert grad_modes == [False, False]


@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (9, 3), (4, 4)])
def test_flex_function_handles_gqa_and_mixed_dtypes(heads, kv_heads):
    """Grouped heads (power of two or not, as SmolLM2-135M's 9/3) and autocast's mixed q/k/v dtypes give
    SDPA's result."""
    from torch.nn.attention.flex_attention import create_block_mask
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    q, k, v = torch.randn(1, heads, 128, 16), torch.randn(1, kv_heads, 128, 16), torch.randn(1, kv_heads, 128, 16)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = heads // kv_heads, True
    want, _ = sdpa_attention_forward(module, q, k, v, None, scaling=0.25)
    bm = create_block_mask(lambda b, h, i, j: i >= j, 1, None, 128, 128, device="cpu")
    got, _ = flex.rmforge_flex_attention(module, q, k, v, bm, scaling=0.25)
    assert got.shape == (1, 128, heads, 16) and torch.allclose(got, want, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = flex.rmforge_flex_attention(module, q, k, v.bfloat16(), bm, scaling=0.25)
    assert mixed.dtype == torch.bfloat16 and torch.allclose(mixed.float(), want, atol=5e-2)


def test_scoring_with_a_run_s_widths_uses_only_those_shapes(flex_rm, monkeypatch):
    """The trainer's validation passes its run's row widths: no shape beyond the training ones."""
    shapes, forwards = _flex_scoring(flex_rm, monkeypatch, widths=[256, 384])
    assert forwards and shapes <= {(1, 256), (1, 384)}
