"""Prefix-shared GRPO log-probabilities equal TRL's per-row computation (values, entropies, gradients)."""

import copy

import pytest
import torch

from rmforge.train.grpo_packing import shared_layout, shared_prompt_logps
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
