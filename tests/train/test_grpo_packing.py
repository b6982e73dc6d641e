"""Prefix-shared GRPO log-probabilities equal TRL's per-row computation (values, entropies, gradients)."""

import copy

import pytest
import torch

from rmforge.train.grpo_packing import flex_width, shared_layout, shared_prompt_attention, shared_prompt_logps
from rmforge.train.tiny import tiny_model

PAD = 0


def _batch():
    """Two prompts (lengths 5 and 3, left-padded) x 3 completions (right-padded, some sharing tokens)."""
    prompts = [[11, 12, 13, 14, 15], [21, 22, 23]]
    completions = [[30, 31, 32, 2], [30, 31, 40], [50, 2], [30, 61, 62, 63, 2], [30, 61], [70]]
    width_p, width_c = 5, 5
    ids, mask = [], []
    for i, comp in enumerate(completions):
        p = prompts[i // 3]
        ids.append([PAD] * (width_p - len(p)) + p + comp + [PAD] * (width_c - len(comp)))
        mask.append([0] * (width_p - len(p)) + [1] * len(p) + [1] * len(comp) + [0] * (width_c - len(comp)))
    return torch.tensor(ids), torch.tensor(mask), width_c


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    folder = tiny_model("llama", tmp_path_factory.mktemp("grpo") / "m", seed=4)
    net = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    add_fused_lm_head(net, temperature=0.7, outputs=("log_probs", "entropy"))
    return net


def _reference(net, ids, mask, keep):
    """TRL's computation: one row per completion, labels masked outside the completion."""
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-keep] = -100
    out = net(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    return out.log_probs[:, -keep:], out.entropy[:, -keep:]


def test_layout_shares_each_prompt_once():
    ids, mask, keep = _batch()
    lay = shared_layout(ids, mask, keep, PAD)
    assert lay.input_ids.shape[0] == 2  # one document per prompt
    # prompt 0 + completions share [11..15, 30, 31] for rows 0-1 but not row 2: common prefix = the prompt (5),
    # shared part = 4 tokens, each branch restates token 15: 4 + (5 + 4 + 3) real tokens instead of 9 + 8 + 7
    assert int((lay.doc[0] >= 0).sum()) == 16
    assert lay.valid.sum(1).tolist() == [4, 3, 2, 5, 2, 1]
    # a batch whose prompt is right-padded is not the expected layout
    bad = mask.clone()
    bad[0, :5] = torch.tensor([1, 1, 1, 1, 0])
    assert shared_layout(ids, bad, keep, PAD) is None


def test_shared_logps_entropies_and_gradients_equal_trl(model):
    ids, mask, keep = _batch()
    ref_net, net = copy.deepcopy(model), copy.deepcopy(model)
    ref_lp, ref_ent = _reference(ref_net, ids, mask, keep)
    lp, ent = shared_prompt_logps(net, ids, mask, keep, PAD, compute_entropy=True)
    valid = mask[:, -keep:].bool()
    assert lp.shape == ref_lp.shape == (6, keep)
    assert torch.allclose(lp[valid], ref_lp[valid], atol=1e-5)
    assert torch.allclose(ent[valid], ref_ent[valid], atol=1e-5)
    assert bool((lp[~valid] == 0).all())
    weights = torch.randn(lp.shape, generator=torch.Generator().manual_seed(0)) * valid
    (ref_lp * weights).sum().backward()
    (lp * weights).sum().backward()
    for (name, p), q in zip(net.named_parameters(), ref_net.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


def test_shared_logps_under_rmforge_flex_equal_trl(model, monkeypatch):
    """Under rmforge_flex (eager on CPU, forward only) the prefix-shared rows run with a block mask, padded
    to a FlexAttention width, and give TRL's log-probabilities and entropies; no dense mask is built."""
    from rmforge.reward_model import attention, flex

    ids, mask, keep = _batch()
    with torch.no_grad():
        ref_lp, ref_ent = _reference(model, ids, mask, keep)
    net = copy.deepcopy(model)
    flex.register()
    net.set_attn_implementation(flex.FLEX_IMPL)
    monkeypatch.setattr(attention, "dense_mask", lambda *a: pytest.fail("a dense mask was built"))
    widths = []
    net.model.register_forward_pre_hook(lambda m, a, kw: widths.append(kw["input_ids"].shape), with_kwargs=True)
    with torch.no_grad():
        lp, ent = shared_prompt_logps(net, ids, mask, keep, PAD, compute_entropy=True)
    valid = mask[:, -keep:].bool()
    assert widths == [(2, 128)]  # two documents of 16 and 11 tokens, padded to one block
    assert torch.allclose(lp[valid], ref_lp[valid], atol=1e-5)
    assert torch.allclose(ent[valid], ref_ent[valid], atol=1e-5)
    assert bool((lp[~valid] == 0).all())


@pytest.mark.parametrize("impl", ["rmforge_varlen", "flash_attention_2"])
def test_backends_without_custom_masks_fall_back_to_trl(model, impl):
    """A policy whose backend takes no custom mask cannot share prompts: None (TRL's computation), no error."""
    from rmforge.reward_model import varlen

    ids, mask, keep = _batch()
    net = copy.deepcopy(model)
    if impl == "rmforge_varlen":
        assert varlen.use_varlen_attention(net) == (True, "ok")
    else:
        net.config._attn_implementation = impl
    assert shared_prompt_logps(net, ids, mask, keep, PAD) is None


def test_shared_prompt_attention_decision():
    """Never a dense [R, 1, W, W] mask on a GPU: there prompts are shared only under FlexAttention."""
    assert shared_prompt_attention("cpu", "sdpa") == (
        True, "cpu: a dense [rows, 1, width, width] sdpa mask (fine and fastest here)")
    assert shared_prompt_attention("cpu", "eager")[0]
    for device in ("cpu", "cuda"):
        assert shared_prompt_attention(device, "flex_attention")[0]
        assert not shared_prompt_attention(device, "varlen")[0]
        assert not shared_prompt_attention(device, "position_ids")[0]
    for backend in ("sdpa", "eager"):
        ok, why = shared_prompt_attention("cuda", backend)
        assert not ok and why == ("FlexAttention is off (not tried): sharing prefixes on a GPU needs it (no dense "
                                  "[rows, 1, width, width] mask there)")


def test_flex_widths_are_few_and_hold_the_rows():
    widths = {n: flex_width(n) for n in range(1, 8193)}
    assert sorted(set(widths.values())) == [128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192]
    assert all(n <= w <= max(128, 1.5 * n + 128) for n, w in widths.items())


def test_judge_switches_the_policy_to_flex_on_cuda(tmp_path, monkeypatch):
    """grpo.share_prompt on CUDA: the policy runs FlexAttention where it can; where not, the reason says the
    log-probabilities come from TRL (no dense masks); on CPU the dense mask stays."""
    from transformers import AutoModelForCausalLM

    from rmforge.reward_model.attention import attn_implementation
    from rmforge.reward_model.flex import FLEX_IMPL
    from rmforge.train.judge import share_prompt_attention

    narrow = AutoModelForCausalLM.from_pretrained(tiny_model("llama", tmp_path / "n"), dtype=torch.float32)
    wide = AutoModelForCausalLM.from_pretrained(tiny_model("llama", tmp_path / "w", hidden_size=64),
                                                dtype=torch.float32)  # head dim 16
    assert share_prompt_attention(wide, False, True) == (None, None)
    assert share_prompt_attention(wide, True, False) == ("sdpa", "prompts encoded once per group (CPU: a dense mask)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert share_prompt_attention(narrow, True, True) == (
        "sdpa", "FlexAttention is off (head dimension 8 < 16): no dense masks on a GPU, so the log-probabilities "
                "come from TRL's per-row computation")
    assert share_prompt_attention(wide, True, True) == (
        FLEX_IMPL, "prompts encoded once per group (FlexAttention block mask)")
    assert attn_implementation(wide) == FLEX_IMPL
