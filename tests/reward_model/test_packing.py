"""Packed forwards (prefix sharing, padding-free) give the rewards, losses and gradients of the plain one."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from rmforge.config import load_config
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.data.schema import Sample, assistant, user
from rmforge.reward_model.batching import batch_order, packed_batch
from rmforge.train.config import BTConfig, LossConfig
from rmforge.train.metrics import read_metrics
from rmforge.reward_model.modeling import load_reward_model
from rmforge.reward_model.packing import doc_tokens, layout, pack, packed_outputs, shared_prefix_len
from rmforge.train.sampler import epoch_batches, sample_lengths, split_by_tokens
from rmforge.reward_model.forward import model_outputs, score_samples
from rmforge.train.tiny import tiny_model
from rmforge.reward_model.tokenize import Encoded, EncodedSample, RewardEncoder
from rmforge.train.trainer import batch_loss, train_bt

CPU = torch.device("cpu")


def enc(ids, prompt_len=0):
    return Encoded(list(ids), None, prompt_len)


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def rm(request, tmp_path_factory):
    model, tok = load_reward_model(str(tiny_model(request.param, tmp_path_factory.mktemp(request.param))))
    return model.eval(), tok


@pytest.fixture(scope="module")
def demo_samples(rm):
    model, tok = rm
    samples, _ = RewardEncoder(tok, 256).encode_dataset(generate_demo(40, seed=1)[:24])
    return samples


def unpacked(model, samples, pad_id):
    flat = [e for s in samples for e in s.encodings]
    return torch.tensor(model_outputs(model, flat, pad_id, batch_size=5))


# ----------------------------------------------------------------------------- layout


def test_shared_prefix_and_layout_golden():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert shared_prefix_len([[1, 2], [1, 2, 3]]) == 1  # every branch keeps its last token
    assert shared_prefix_len([[1, 2, 3]]) == 0
    [d] = layout([enc([1, 2, 3, 4]), enc([1, 2, 5]), enc([1, 2, 6, 7, 8])], share=True)
    assert d.ids == [1, 2, 3, 4, 5, 6, 7, 8]
    assert d.positions == [0, 1, 2, 3, 2, 2, 3, 4]  # each branch restarts where the prefix ends
    assert d.branch == [0, 0, 1, 1, 2, 3, 3, 3]
    assert d.ends == [3, 4, 7]
    assert [x.ids for x in layout([enc([1, 2, 3]), enc([1, 4])], share=False)] == [[1, 2, 3], [1, 4]]
    assert doc_tokens([enc([1, 2, 3]), enc([1, 2, 4])], True) == 4
    assert doc_tokens([enc([1, 2, 3]), enc([1, 2, 4])], False) == 6


def test_pack_rows_first_fit_decreasing():
    b = pack([[enc([1, 2, 3]), enc([1, 2, 4])], [enc([5, 6]), enc([7])], [enc([8, 9])]], pad_id=0, share=True,
             row_tokens=6)
    # docs: [1 2 3 4] (4: prefix [1 2] shared), [5 6] and [7] (no common prefix: one doc per row),
    # [8 9] (2, single row) -> rows of width 6, first-fit decreasing
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5, 6], [8, 9, 7, 0, 0, 0]]
    assert b.position_ids.tolist() == [[0, 1, 2, 2, 0, 1], [0, 1, 0, 0, 1, 2]]
    assert b.doc.tolist() == [[0, 0, 0, 0, 1, 1], [3, 3, 2, -1, -1, -1]]
    assert b.score_at.tolist() == [[0, 2], [0, 3], [0, 5], [1, 2], [1, 1]]  # sample order
    assert b.tokens == 9 and b.positions == 12 and b.padding_ratio == pytest.approx(0.25)
    with pytest.raises(ValueError):
        pack([], pad_id=0)


def test_prefix_shared_only_where_it_saves_tokens():
    long_prompt = [enc(list(range(1, 9)) + [20]), enc(list(range(1, 9)) + [21, 22])]
    short_prompt = [enc([1, 2] + list(range(30, 40))), enc([1, 2] + list(range(40, 50)))]
    assert len(layout(long_prompt, share=True)) == 1 and doc_tokens(long_prompt, share=True) == 11
    # 2 shared tokens of 24 (< MIN_SHARED_FRACTION): separate documents, as wide as the rows
    assert [len(d) for d in layout(short_prompt, share=True)] == [12, 12]
    assert doc_tokens(short_prompt, share=True) == 24


def test_split_by_tokens_and_batch_order():
    assert split_by_tokens([5, 5, 5, 20, 1], 10) == [[0, 1], [2], [3], [4]]
    assert split_by_tokens([], 10) == []
    out = torch.tensor([[1.0], [2.0], [3.0], [4.0]])  # c0 r0 c1 r1
    assert batch_order(out, "pair", 2).flatten().tolist() == [1.0, 3.0, 2.0, 4.0]
    assert batch_order(out, "nway", 2) is out


def test_sample_lengths_group_packed_rows_tightly():
    def pair(i, prefix, c, r):
        return EncodedSample(i, "pair", [enc([7] * prefix + [1] * c), enc([7] * prefix + [2] * r)])

    # long shared prefixes with short replies, and the reverse: the row key and the laid-out key disagree
    samples = [pair(0, 90, 5, 5), pair(1, 2, 48, 48), pair(2, 90, 30, 30), pair(3, 2, 72, 73)]
    assert sample_lengths(samples, "none") == [190, 100, 240, 150]
    assert sample_lengths(samples, "padding_free") == [190, 100, 240, 149]
    # shared where it is worth it; short prefixes are not shared and keep the plain-batch key
    assert sample_lengths(samples, "prefix_shared") == [100, 100, 150, 150]
    with pytest.raises(ValueError, match="unknown packing"):
        sample_lengths(samples, "auto")
    padding = {}
    for shared in (False, True):
        batches = epoch_batches(sample_lengths(samples, "prefix_shared" if shared else "none"), 2, seed=0, epoch=0)
        packed = [pack([samples[i].encodings for i in b], pad_id=0) for b in batches]
        padding[shared] = sum(p.positions - p.tokens for p in packed)
        assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    assert padding == {False: 101, True: 1}  # {2, 0}, {3, 1} against {2, 3}, {0, 1}


# ----------------------------------------------------------------------------- equal rewards


@pytest.mark.parametrize("mode", ["prefix_shared", "padding_free"])
def test_packed_rewards_equal_separate_forwards(rm, demo_samples, mode):
    model, tok = rm
    want = unpacked(model, demo_samples, tok.pad_token_id)
    batch = pack([s.encodings for s in demo_samples], tok.pad_token_id, share=mode == "prefix_shared")
    with torch.no_grad():
        got = packed_outputs(model, batch)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)
    if mode == "prefix_shared":  # the demo prompts are encoded once: fewer tokens
        assert batch.tokens < sum(len(e.input_ids) for s in demo_samples for e in s.encodings)


def test_nway_and_eager_backend(rm):
    model, tok = rm
    raw = [Sample(id=str(i), prompt=[user(f"What is {i} plus {i}? Answer briefly please.")],
                  candidates=[[assistant(f"It is {2 * i}.")], [assistant("I do not know.")],
                              [assistant(f"{i} plus {i} is {2 * i + 1}, I think.")]], ranks=[1, 3, 2])
           for i in range(5)]
    samples, _ = RewardEncoder(tok, 128).encode_dataset(raw)
    want = unpacked(model, samples, tok.pad_token_id)
    for impl in ("sdpa", "eager"):
        model.config._attn_implementation = impl
        try:
            with torch.no_grad():
                got = packed_outputs(model, pack([s.encodings for s in samples], tok.pad_token_id))
        finally:
            model.config._attn_implementation = "sdpa"
        assert torch.allclose(got, want, atol=1e-5), impl


def test_score_samples_packed_equals_plain(rm, demo_samples):
    model, tok = rm
    plain = score_samples(model, demo_samples, tok.pad_token_id, batch_size=4)
    for mode in ("auto", "padding_free"):
        packed = score_samples(model, demo_samples, tok.pad_token_id, batch_size=3, packing=mode)
        assert [len(r) for r in packed] == [len(r) for r in plain]
        assert torch.allclose(torch.tensor(packed), torch.tensor(plain), atol=1e-5)
    flat = [e for s in demo_samples for e in s.encodings]
    assert torch.allclose(torch.tensor(model_outputs(model, flat, tok.pad_token_id, 7, packing="auto")),
                          torch.tensor(model_outputs(model, flat, tok.pad_token_id, 7)), atol=1e-5)


# ----------------------------------------------------------------------------- training


def _loss_and_grads(model, items, pad_id, packing, buckets=False):
    model.zero_grad(set_to_none=True)
    loss, stats = batch_loss(model, items, pad_id, LossConfig(tie_model="none", center_coef=0.01), CPU, packing,
                             buckets)
    (loss / len(items)).backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, stats


def test_step_one_loss_and_gradients_equal(rm, demo_samples):
    model, tok = rm
    model = copy.deepcopy(model).train()
    items = demo_samples[:8]
    ref_loss, ref_grads, ref_stats = _loss_and_grads(model, items, tok.pad_token_id, "none")
    for mode, buckets in (("prefix_shared", False), ("padding_free", False), ("none", True)):
        loss, grads, stats = _loss_and_grads(model, items, tok.pad_token_id, mode, buckets)
        assert loss == pytest.approx(ref_loss, abs=1e-5)
        assert grads.keys() == ref_grads.keys()
        for name, g in grads.items():
            assert torch.allclose(g, ref_grads[name], atol=1e-5, rtol=1e-4), name
        assert stats["correct"] == ref_stats["correct"]
    assert stats["positions"] < ref_stats["positions"]


def test_lora_model_packed_equals_plain(rm, demo_samples):
    from rmforge.train.config import LoraOptions
    from rmforge.train.lora import apply_lora

    model, tok = rm
    peft_model = apply_lora(copy.deepcopy(model), LoraOptions(enabled=True, r=4))
    with torch.no_grad():  # make the adapters matter
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    items = demo_samples[:6]
    ref_loss, ref_grads, _ = _loss_and_grads(peft_model, items, tok.pad_token_id, "none")
    loss, grads, _ = _loss_and_grads(peft_model, items, tok.pad_token_id, "prefix_shared")
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    assert any("lora_A" in n for n in grads) and any("score" in n for n in grads)
    assert all(torch.allclose(g, ref_grads[n], atol=1e-5, rtol=1e-4) for n, g in grads.items())


def test_packed_batch_meta_matches_pair_batch(demo_samples):
    from rmforge.reward_model.batching import pair_batch

    _, meta = packed_batch(demo_samples[:4], pad_id=0)
    _, ref = pair_batch(demo_samples[:4], pad_id=0)
    assert meta.keys() == ref.keys() and all(torch.equal(meta[k], ref[k]) for k in meta)
    with pytest.raises(ValueError, match="packing must be one of"):
        packed_batch(demo_samples[:4], pad_id=0, packing="none")


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("packed-run")
    tiny_model("llama", root / "tiny")
    demo = generate_demo(200, seed=0)
    write_samples(root / "train.jsonl", demo[:40])
    write_samples(root / "val.jsonl", demo[100:116])
    return root


def _train(root, name, *extra):
    out = root / name
    cfg = load_config(None, [f"model={root / 'tiny'}", f"data.train={root / 'train.jsonl'}",
                             f"data.validation={root / 'val.jsonl'}", f"output_dir={out}", "train.max_steps=5",
                             "train.batch_size=8", "train.precision=fp32", "train.lr=1e-3", "logging.every_steps=1",
                             "logging.progress=false", "seed=0", *extra], cls=BTConfig)
    summary = train_bt(cfg)
    rows = read_metrics(out)
    return summary, rows


def _curve(rows):
    return [r["loss"] for r in rows if "loss" in r and "event" not in r]


def test_training_curves_equal_across_packing(run_root):
    """Same batches -> the same loss curve whatever the layout. Random batches: every mode matches
    ``none``; length-grouped batches (each mode has its own length key): token-budget micro-batches
    give the same curve as whole batches."""
    for grouping, ref_extra, others in (
            ("false", ["train.packing=none"], (("shared", ["train.packing=prefix_shared"]),
                                               ("free", ["train.packing=padding_free", "train.micro_batch_size=4"]))),
            ("true", ["train.packing=prefix_shared"], (("budget", ["train.packing=prefix_shared",
                                                                   "train.token_budget=300"]),))):
        extra_all = [f"train.length_grouping={grouping}"]
        ref_summary, ref = _train(run_root, f"ref-{grouping}", *ref_extra, *extra_all)
        for name, extra in others:
            summary, rows = _train(run_root, f"{name}-{grouping}", *extra, *extra_all)
            start = rows[0]
            assert start["event"] == "start" and start["packing"] == extra[0].split("=")[1]
            steps = [r for r in rows if "loss" in r and "event" not in r]
            assert _curve(rows) == pytest.approx(_curve(ref), abs=1e-4), (name, grouping)
            assert all(0 <= r["padding_ratio"] < 1 for r in steps)
            assert summary["validation"]["accuracy"] == ref_summary["validation"]["accuracy"]
            assert summary["validation"]["loss"] == pytest.approx(ref_summary["validation"]["loss"], abs=1e-4)
    assert json.loads((run_root / "ref-true" / "manifest.json").read_text())["summary"]["steps"] == 5


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU layout (tests/reward_model/test_flex_gpu.py: the GPU one)")
def test_start_event_says_how_forwards_are_laid_out(run_root):
    """Issue 17: the start event names the packing chosen for this hardware and why, the token budget and
    its reason, the static row widths and the kernel compilations (none on CPU)."""
    summary, rows = _train(run_root, "layout", "train.max_steps=2")
    start = rows[0]
    assert start["packing"] == "prefix_shared"
    assert start["packing_reason"] == "cpu: prompts encoded once and no padding (fastest here: bench/bt_throughput.py)"
    assert start["token_budget"] is None and start["token_budget_reason"] == \
        "cpu: micro-batches of 8 samples (train.token_budget=auto)"
    assert start["row_widths"] is None and start["compiles"] == 0 and start["activation_checkpointing"] is False
    assert summary["compiles"] == 0
    _, rows = _train(run_root, "layout-budget", "train.max_steps=1", "train.token_budget=300")
    assert (rows[0]["token_budget"], rows[0]["token_budget_reason"]) == (300, "train.token_budget")


def test_encoder_rejects_explicit_packing(run_root, tmp_path):
    from rmforge.errors import ConfigError

    tiny_model("bert", tmp_path / "bert")
    with pytest.raises(ConfigError, match="train.packing.*causal decoder"):
        _train(run_root, "bert", f"model={tmp_path / 'bert'}", "train.packing=prefix_shared")


# ----------------------------------------------------------------------------- real data


def _hh_pairs(shared_data: Path, n: int):
    from rmforge.train.data import read_any

    return read_any(str(shared_data / "hh-rlhf-harmless-base.dev.jsonl.gz"), "hh-rlhf", limit=n)


@pytest.mark.shared
def test_hh_rlhf_pairs_tiny_llama(shared_data, tmp_path):
    model, tok = load_reward_model(str(tiny_model("llama", tmp_path / "tiny")))
    samples, _ = RewardEncoder(tok, 512).encode_dataset(_hh_pairs(shared_data, 24))
    want = unpacked(model.eval(), samples, tok.pad_token_id)
    batch = pack([s.encodings for s in samples], tok.pad_token_id)
    with torch.no_grad():
        got = packed_outputs(model, batch)
    assert torch.allclose(got, want, atol=1e-5)
    full = sum(len(e.input_ids) for s in samples for e in s.encodings)
    assert batch.tokens < 0.8 * full  # multi-turn context encoded once


@pytest.mark.shared
@pytest.mark.slow
def test_hh_rlhf_pairs_smollm2(shared_data):
    from rmforge.models import cache_dir, embedded, resolve_model

    # The package must be installed (resolve_model needs its GGUF) and already converted (no 25 s here).
    smollm2 = embedded("smollm2-135m")
    if smollm2.source() is None or smollm2.path() != cache_dir() / "smollm2-135m":
        pytest.skip("SmolLM2-135M is not installed or not converted yet")
    model, tok = load_reward_model(resolve_model("smollm2-135m"))
    samples, _ = RewardEncoder(tok, 256).encode_dataset(_hh_pairs(shared_data, 6))
    want = unpacked(model.eval(), samples, tok.pad_token_id)
    with torch.no_grad():
        got = packed_outputs(model, pack([s.encodings for s in samples], tok.pad_token_id))
    assert not math.isnan(float(got.sum()))
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_prefix_shared_falls_back_to_plain_batches_when_nothing_is_shared(rm):
    model, tok = rm
    short = [EncodedSample(i, "pair", [enc([1, 2] + [30 + i] * 12), enc([1, 2] + [40 + i] * 10)]) for i in range(3)]
    long = [EncodedSample(9, "pair", [enc(list(range(1, 20)) + [50]), enc(list(range(1, 20)) + [51, 52])])]
    cfg = LossConfig(tie_model="none")
    _, plain = batch_loss(model, short, tok.pad_token_id, cfg, CPU, "none")
    _, shared = batch_loss(model, short, tok.pad_token_id, cfg, CPU, "prefix_shared")
    assert shared["positions"] == plain["positions"] == 6 * 14  # the plain padded layout was used
    _, mixed = batch_loss(model, short + long, tok.pad_token_id, cfg, CPU, "prefix_shared")
    assert mixed["tokens"] == sum(len(e.input_ids) for s in short + long for e in s.encodings) - 19
