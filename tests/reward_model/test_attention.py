"""Tests for rmforge.reward_model.attention: packed masks per backend, the eager 0/1-mask guard, packing choice."""

import warnings

import pytest
import torch

from rmforge.reward_model.attention import (
    additive_mask,
    attention_inputs,
    attn_implementation,
    block_mask,
    check_mask,
    dense_mask,
    resolve_packing,
)
from rmforge.reward_model.modeling import load_reward_model
from rmforge.train.tiny import tiny_model

# one row: document 0 = prefix (2) + branch 1 (2) + branch 2 (1), document 1 = one branch (2), padding (1)
DOC = torch.tensor([[0, 0, 0, 0, 0, 1, 1, -1]])
BRANCH = torch.tensor([[0, 0, 1, 1, 2, 1, 1, 0]])


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return load_reward_model(str(tiny_model("llama", tmp_path_factory.mktemp("llama"))))


def test_dense_mask_golden():
    m = dense_mask(DOC, BRANCH)[0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0, 0, 0, 0],
                 [1, 1, 0, 0, 0, 0, 0, 0],
                 [1, 1, 1, 0, 0, 0, 0, 0],
                 [1, 1, 1, 1, 0, 0, 0, 0],
                 [1, 1, 0, 0, 1, 0, 0, 0],  # branch 2 sees the prefix and itself, not branch 1
                 [0, 0, 0, 0, 0, 1, 0, 0],  # next document starts fresh
                 [0, 0, 0, 0, 0, 1, 1, 0],
                 [0, 0, 0, 0, 0, 0, 0, 1]]  # padding sees only padding: no empty softmax row


def test_additive_and_guard():
    mask = dense_mask(DOC, BRANCH)
    add = additive_mask(mask, torch.float32)
    assert add[mask].eq(0).all() and add[~mask].eq(torch.finfo(torch.float32).min).all()
    check_mask(mask, "sdpa")
    check_mask(add, "eager")
    with pytest.raises(ValueError, match="0/1 float mask"):
        check_mask(mask.float(), "eager")
    with pytest.raises(ValueError, match="torch.int64 attention mask"):
        check_mask(mask.long(), "sdpa")


def test_flex_block_mask_matches_dense_sdpa():
    from torch.nn.attention.flex_attention import flex_attention

    doc = torch.tensor([[0] * 5 + [1] * 4 + [-1] * 3, [2] * 10 + [-1] * 2])
    branch = torch.tensor([[0, 0, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 0, 0]])
    q, k, v = torch.randn(3, 2, 2, 12, 8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = flex_attention(q, k, v, block_mask=block_mask(doc, branch))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense_mask(doc, branch))
    assert torch.allclose(got, want, atol=1e-5)


def test_eager_gets_an_additive_mask_and_01_masks_are_wrong(llama):
    """The eager kernel adds the mask: a 0/1 float mask changes the rewards, the additive one does not."""
    model, tok = llama
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    doc, branch = torch.zeros_like(ids), torch.ones_like(ids)
    model.config._attn_implementation = "eager"
    try:
        mask = attention_inputs(model, doc, branch)
        assert mask.dtype == torch.float32 and mask.min() < -1e30
        with torch.no_grad():
            ref = model(ids).logits
            ok = model(ids, attention_mask=mask).logits
            bad = model(ids, attention_mask=dense_mask(doc, branch).float()).logits
    finally:
        model.config._attn_implementation = "sdpa"
    assert torch.allclose(ok, ref, atol=1e-6)
    assert not torch.allclose(bad, ref, atol=1e-3)
    assert attention_inputs(model, doc, branch).dtype == torch.bool  # sdpa: boolean


def test_resolve_packing(llama, tmp_path):
    model, _ = llama
    assert resolve_packing(model, "auto") == "prefix_shared"
    assert resolve_packing(model, "padding_free") == "padding_free"
    assert resolve_packing(model, "none") == "none"
    with pytest.raises(ValueError, match="packing must be one of"):
        resolve_packing(model, "bogus")
    model.config._attn_implementation = "flash_attention_2"
    try:
        assert resolve_packing(model, "auto") == "padding_free"
        with pytest.raises(ValueError, match="custom attention masks"):
            resolve_packing(model, "prefix_shared")
    finally:
        model.config._attn_implementation = "sdpa"
    bert, _ = load_reward_model(str(tiny_model("bert", tmp_path / "bert")))
    assert resolve_packing(bert, "auto") == "none"
    with pytest.raises(ValueError, match="causal decoder"):
        resolve_packing(bert, "prefix_shared")


@pytest.mark.parametrize("device,head,dtype,supports,version,ok,why", [
    ("cuda", 64, torch.bfloat16, True, "2.11.0+cu128", True, "ok"),
    ("cuda", 64, torch.float32, True, "2.5.1", True, "ok"),
    ("cpu", 64, torch.bfloat16, True, "2.13.0", False, "FlexAttention kernels need a CUDA device, not cpu"),
    ("cuda", 8, torch.bfloat16, True, "2.11.0", False, "head dimension 8 < 16"),  # the tiny test models
    ("cuda", 64, torch.bfloat16, False, "2.11.0", False, "the model class does not support FlexAttention"),
    ("cuda", 64, torch.bfloat16, True, "2.4.1", False, "torch 2.4.1 is older than 2.5"),
    ("cuda", 64, torch.float64, True, "2.11.0", False, "dtype torch.float64 is not supported"),
])
def test_flex_attention_decision(device, head, dtype, supports, version, ok, why):
    from rmforge.reward_model.attention import flex_attention_usable

    assert flex_attention_usable(device, head, dtype, supports, version) == (ok, why)


def test_tiny_models_never_switch_to_flex(llama, monkeypatch):
    """The 8 GPU crashes of issue 17: tiny models (head dim < 16) must keep their backend, even on CUDA."""
    from rmforge.reward_model.attention import head_dim, use_flex_attention

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = llama.model
    assert head_dim(model.config) < 16
    before = attn_implementation(model)
    assert use_flex_attention(model) == (False, "head dimension 8 < 16")
    assert attn_implementation(model) == before


@pytest.mark.parametrize("device,backend,sharing,flex,varlen,kind,why", [
    ("cpu", "sdpa", True, None, None, "dense", "cpu: a dense [rows, 1, width, width] sdpa mask (fine and fastest here)"),
    ("cpu", "eager", False, None, None, "dense", "cpu: a dense [rows, 1, width, width] eager mask (fine and fastest "
                                                  "here)"),
    ("cuda", "sdpa", True, (True, "ok"), None, "flex", "FlexAttention on CUDA: a block mask built on the device, "
                                                        "fully masked blocks skipped"),
    ("cuda", "flex_attention", True, None, None, "flex", "FlexAttention: a block mask built on the device, fully "
                                                          "masked blocks skipped"),
    ("cuda", "sdpa", False, (False, "head dimension 8 < 16"), (True, "ok"), "varlen",
     "FlexAttention is off (head dimension 8 < 16): each document attends within itself through rmforge_varlen "
     "(no mask)"),
    ("cuda", "sdpa", True, (False, "head dimension 8 < 16"), None, "off",
     "FlexAttention is off (head dimension 8 < 16): sharing prefixes on a GPU needs it (no dense [rows, 1, width, "
     "width] mask there)"),
    ("cuda", "eager", False, (False, "x"), (False, "y"), "off",
     "FlexAttention is off (x) and rmforge_varlen is unavailable (y): packing must be off (no dense [rows, 1, width, "
     "width] mask on a GPU)"),
    ("cuda", "varlen", False, None, None, "varlen", "rmforge_varlen: each document attends within itself (no mask)"),
    ("cpu", "varlen", True, None, None, "off", "rmforge_varlen takes no mask, so prefixes cannot be shared"),
    ("cuda", "position_ids", False, None, None, "position_ids", "flash attention: document boundaries from "
                                                                "position_ids (no mask)"),
    ("cuda", "position_ids", True, None, None, "off", "flash attention takes no custom mask, so prefixes cannot be "
                                                      "shared"),
])
def test_decide_packed_attention(device, backend, sharing, flex, varlen, kind, why):
    """Pure decision for packed causal models: dense masks on CPU only; on CUDA FlexAttention, else
    rmforge_varlen (no prefix sharing), else packing off."""
    from rmforge.reward_model.packed_attention import ATTENTION_KINDS, decide_packed_attention

    assert decide_packed_attention(device, backend, sharing, flex, varlen) == (kind, why)
    assert kind in ATTENTION_KINDS


def test_packed_attention_kwargs_per_backend(llama):
    """One helper gives every packed forward its attention arguments, built where ``doc`` lives."""
    from torch.nn.attention.flex_attention import BlockMask

    from rmforge.reward_model import varlen
    from rmforge.reward_model.packed_attention import packed_attention

    model, _ = llama
    flat = BRANCH.clamp(max=1)  # no prefix sharing
    with packed_attention(model, DOC, BRANCH) as kw:  # sdpa: the boolean dense mask
        assert list(kw) == ["attention_mask"] and torch.equal(kw["attention_mask"], dense_mask(DOC, BRANCH))
    model.config._attn_implementation = "eager"
    try:
        with packed_attention(model, DOC, BRANCH) as kw:
            assert torch.equal(kw["attention_mask"], additive_mask(dense_mask(DOC, BRANCH), torch.float32))
        model.config._attn_implementation = "rmforge_flex"
        with packed_attention(model, DOC, BRANCH) as kw:
            assert isinstance(kw["attention_mask"], BlockMask)
        model.config._attn_implementation = "flash_attention_2"
        with packed_attention(model, DOC, flat) as kw:
            assert kw == {"attention_mask": None}
        model.config._attn_implementation = varlen.VARLEN_IMPL
        with packed_attention(model, DOC, flat) as kw:
            assert kw["attention_mask"] is None and varlen.varlen_mask() is None  # transformers builds no mask
            assert [s[1:] for s in kw[varlen.SEGMENTS_KWARG].spans] == [(0, 5), (5, 7), (7, 8)]
        assert varlen._packed.get() is None
        with pytest.raises(ValueError, match="rmforge_varlen cannot share prefixes"):
            with packed_attention(model, DOC, BRANCH):
                pass
    finally:
        model.config._attn_implementation = "sdpa"


def test_switch_packed_attention(llama, monkeypatch):
    """CPU keeps the backend (dense masks); CUDA without FlexAttention: rmforge_varlen, unless prefixes are
    shared (then packing is off and the model keeps its backend)."""
    from rmforge.reward_model.packed_attention import switch_packed_attention

    model, _ = llama
    assert switch_packed_attention(model, "cpu", True)[0] == "dense" and attn_implementation(model) == "sdpa"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        assert switch_packed_attention(model, "cuda", True)[0] == "off" and attn_implementation(model) == "sdpa"
        assert switch_packed_attention(model, "cuda") == (
            "varlen", "FlexAttention is off (head dimension 8 < 16): each document attends within itself through "
                      "rmforge_varlen (no mask)")
        assert attn_implementation(model) == "rmforge_varlen"
        assert switch_packed_attention(model, "cuda")[0] == "varlen"  # idempotent
    finally:
        model.set_attn_implementation("sdpa")
