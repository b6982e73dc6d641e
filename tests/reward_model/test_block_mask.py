"""rmforge's FlexAttention block masks, built from per-block summaries without compiling and without a
[W, W] mask, select exactly the blocks the dense packed rule needs (partial vs full) and give the rewards
of plain forwards."""

import random

import pytest
import torch

from rmforge.reward_model import flex
from rmforge.reward_model.attention import dense_mask
from rmforge.reward_model.packing import pack
from rmforge.reward_model.tokenize import Encoded


def _enc(ids):
    return Encoded(input_ids=list(ids), token_type_ids=None, prompt_len=0)


def _samples(rng, n, prompt=(20, 300), response=(1, 200), k=(1, 3)):
    """Samples whose rows share a prompt (prefix sharing kicks in) with responses of varied lengths."""
    out = []
    for _ in range(n):
        p = [rng.randrange(5, 100) for _ in range(rng.randint(*prompt))]
        rows = [p + [rng.randrange(100, 200) for _ in range(rng.randint(*response))] for _ in range(rng.randint(*k))]
        out.append([_enc(r) for r in rows])
    return out


def _dense_blocks(doc, branch, block):
    """The block maps the dense rule implies: any token attends -> selected; all attend -> full."""
    rows, width = doc.shape
    mask = dense_mask(doc, branch)[:, 0]
    n = -(-width // block)
    padded = torch.zeros(rows, n * block, n * block, dtype=torch.bool)
    padded[:, :width, :width] = mask
    valid = torch.zeros(n * block, n * block, dtype=torch.bool)
    valid[:width, :width] = True
    tiles = padded.view(rows, n, block, n, block).permute(0, 1, 3, 2, 4)
    vtiles = valid.view(n, block, n, block).permute(0, 2, 1, 3)
    any_ = tiles.any(-1).any(-1)
    all_ = (tiles | ~vtiles).all(-1).all(-1)
    return any_, all_


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("share", [True, False])
def test_block_layout_matches_the_dense_rule(seed, share):
    rng = random.Random(seed)
    block = rng.choice([16, 32, 128])
    batch = pack(_samples(rng, rng.randint(1, 12)), 0, share, row_tokens=rng.choice([None, 1024, 1100, 2048]))
    partial, full = flex.block_layout(batch.doc, batch.branch, block)
    any_, all_ = _dense_blocks(batch.doc, batch.branch, block)
    assert not (partial & full).any()
    assert torch.equal(partial | full, any_ | torch.eye(any_.shape[-1], dtype=torch.bool))  # nothing needed is skipped
    assert (full <= all_).all()  # a full block really has no masked token
    diag = torch.eye(any_.shape[-1], dtype=torch.bool)
    # full wherever the dense rule is full off the diagonal; the diagonal is partial (causal)
    assert torch.equal(full, all_ & any_ & ~diag)


def test_block_mask_equals_create_block_mask_and_dense_attention():
    """The same selected/full blocks as torch's create_block_mask on the same rule, and FlexAttention over
    it equals SDPA with the dense mask."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    rng = random.Random(7)
    batch = pack(_samples(rng, 10), 0, True, row_tokens=1500)
    doc, branch = batch.doc, batch.branch
    got = flex.block_mask(doc, branch)

    def rule(b, h, q, kv):
        return (q >= kv) & (doc[b, q] == doc[b, kv]) & ((branch[b, kv] == 0) | (branch[b, q] == branch[b, kv]))

    rows, width = doc.shape
    want = create_block_mask(rule, rows, None, width, width, device="cpu")
    assert torch.equal(got.to_dense(), want.to_dense())
    torch.manual_seed(0)
    q, k, v = (torch.randn(rows, 2, width, 16) for _ in range(3))
    out = flex_attention(q, k, v, block_mask=got)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense_mask(doc, branch))
    real = doc >= 0
    assert torch.allclose(out.transpose(1, 2)[real], ref.transpose(1, 2)[real], atol=1e-5)


def test_block_mask_builds_no_dense_mask_and_compiles_nothing(monkeypatch):
    import torch.nn.attention.flex_attention as fa

    monkeypatch.setattr(fa, "create_block_mask", lambda *a, **k: pytest.fail("create_block_mask was called"))
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("torch.compile was called"))
    rng = random.Random(1)
    batch = pack(_samples(rng, 4), 0, True, row_tokens=4096)
    flex.reset_compiles()
    bm = flex.block_mask(batch.doc, batch.branch)
    assert bm.kv_num_blocks.shape == (1, 1, 32) and flex.compiles() == 0


@pytest.mark.slow
def test_compiled_kernel_is_not_rebuilt_for_new_masks_of_the_same_width():
    """Each step builds a new BlockMask (new tensors, a new mask_mod closure): the kernel compiled with
    dynamic=False (Inductor's CPU backend here, Triton on CUDA) is specialised once per width, not per step."""
    from torch._dynamo.utils import counters
    from torch.nn.attention.flex_attention import flex_attention

    torch._dynamo.reset()
    kernel = torch.compile(flex_attention, dynamic=False)
    rng = random.Random(0)
    before = counters["stats"]["unique_graphs"]
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 1024, 16) for _ in range(3))
    masks, outputs = [], []
    for _ in range(3):
        batch = pack(_samples(rng, 3, prompt=(20, 100), response=(1, 60)), 0, True, row_tokens=1024)
        assert batch.input_ids.shape == (1, 1024)
        masks.append(flex.block_mask(batch.doc, batch.branch))
        outputs.append(kernel(q, k, v, block_mask=masks[-1]))
    assert counters["stats"]["unique_graphs"] - before == 1
    for bm, got in zip(masks, outputs):
        assert torch.allclose(got, flex_attention(q, k, v, block_mask=bm), atol=1e-5)


@pytest.mark.slow
def test_validation_without_autograd_reuses_the_training_specialisation(monkeypatch):
    """Dynamo guards on the grad mode and on requires_grad: called directly, a compiled kernel is built
    twice per width (training, then validation under no_grad). Through ``flex.run_kernel`` it is built
    once, and the no-grad output carries no autograd graph. FlexAttention has no backward on CPU, so a
    plain attention function stands in for it under Inductor's CPU backend (the guards are the same)."""
    from torch._dynamo.utils import counters

    def attention(q, k, v, scale=None):
        return (q @ k.transpose(-1, -2) * scale).softmax(-1) @ v

    monkeypatch.setattr(flex, "_compiled", lambda device_type: True)
    monkeypatch.setattr(flex, "_kernel", {})

    def graphs(call):
        torch._dynamo.reset()
        flex._kernel["cpu"] = torch.compile(attention, dynamic=False)
        before = counters["stats"]["unique_graphs"]
        torch.manual_seed(0)
        w = torch.randn(16, 16, requires_grad=True)
        q, k, v = (torch.randn(1, 2, 64, 16) for _ in range(3))
        trained = call(q @ w, k @ w, v)  # v needs no gradient: as under LoRA on q/k only
        trained.sum().backward()
        assert w.grad is not None
        with torch.no_grad():
            scored = call(q @ w, k @ w, v)
        assert not scored.requires_grad and scored.grad_fn is None
        assert torch.allclose(trained, scored, atol=1e-5)
        return counters["stats"]["unique_graphs"] - before

    assert graphs(lambda q, k, v: flex.run_kernel("cpu", q, k, v, scale=0.25)) == 1
    assert graphs(lambda q, k, v: flex.kernel("cpu")(q, k, v, scale=0.25)) == 2  # what it replaces
    # a layer that never trained in this process (the scorer of evaluate / serve): a plain no-grad call
    seen = []
    flex._kernel["cpu"] = lambda q, k, v, **kw: seen.append((torch.is_grad_enabled(), q.requires_grad)) or \
        attention(q, k, v, **kw)
    q, k, v = (torch.randn(1, 2, 64, 16) for _ in range(3))
    with torch.no_grad():
        for trainable in (False, True):
            assert flex.run_kernel("cpu", q, k, v, trainable=trainable, scale=0.25).grad_fn is None
    assert seen == [(False, False), (True, True)]
