"""rmforge_varlen on a real GPU (skipped without CUDA): torch's fused varlen_attn kernel gives the bf16
rewards of unpacked forwards, and a model FlexAttention cannot run (head dim 8) trains packed through it."""

import dataclasses

import pytest
import torch

from rmforge.config import load_config
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.reward_model import varlen
from rmforge.reward_model.attention import attn_implementation
from rmforge.reward_model.forward import score_samples
from rmforge.reward_model.modeling import load_reward_model
from rmforge.reward_model.scorer import load_scorer
from rmforge.reward_model.tokenize import RewardEncoder
from rmforge.train.config import BTConfig
from rmforge.train.metrics import read_metrics
from rmforge.train.tiny import tiny_model
from rmforge.train.trainer import train_bt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_model("llama", tmp_path_factory.mktemp("varlen-gpu"))  # head dim 8: no FlexAttention


def _need_kernel():
    ok, why = varlen.varlen_kernel_usable("cuda", torch.bfloat16, 8, varlen._varlen_fn() is not None,
                                         torch.cuda.get_device_capability())
    if not ok:
        pytest.skip(f"torch's varlen kernel cannot run here: {why}")


def test_fused_varlen_rewards_equal_unpacked_bf16(folder, monkeypatch):
    _need_kernel()
    model, tok = load_reward_model(str(folder))
    model = model.cuda().to(torch.bfloat16).eval()
    samples, _ = RewardEncoder(tok, 256).encode_dataset(generate_demo(40, seed=2)[:16])
    want = score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="none")
    assert varlen.use_varlen_attention(model) == (True, "ok")
    fused = []
    real = varlen._fused
    monkeypatch.setattr(varlen, "_fused", lambda *a, **k: fused.append(1) or real(*a, **k))
    got = score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="padding_free")
    assert fused and not varlen._broken, varlen._broken  # torch's kernel ran, no fallback
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=3e-2, rtol=3e-2)


def test_scorer_without_flex_packs_through_varlen(folder):
    _need_kernel()
    scorer = load_scorer(str(folder), precision="bf16", device="cuda")
    assert scorer.info["attention"] == varlen.VARLEN_IMPL
    samples = generate_demo(40, seed=5)[:12]
    packed, _ = scorer.score_samples(samples)
    plain, _ = dataclasses.replace(scorer, packing="none").score_samples(samples)
    assert torch.allclose(torch.tensor(packed), torch.tensor(plain), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("packing", ["padding_free", "auto"])
def test_head_dim_8_trains_packed_through_varlen(folder, tmp_path, packing):
    _need_kernel()
    demo = generate_demo(200, seed=0)
    write_samples(tmp_path / "train.jsonl", demo[:48])
    write_samples(tmp_path / "val.jsonl", demo[100:112])
    curves = {}
    for mode in (packing, "none"):
        out = tmp_path / mode
        cfg = load_config(None, [f"model={folder}", f"data.train={tmp_path / 'train.jsonl'}",
                                 f"data.validation={tmp_path / 'val.jsonl'}", f"output_dir={out}",
                                 "train.max_steps=4", "train.batch_size=8", "train.precision=bf16", "train.lr=1e-3",
                                 "logging.every_steps=1", "logging.progress=false", "seed=0",
                                 "train.length_grouping=false", f"train.packing={mode}"], cls=BTConfig)
        train_bt(cfg)
        rows = read_metrics(out)
        losses = [r["loss"] for r in rows if "loss" in r and "event" not in r]
        assert len(losses) == 4 and all(loss == loss for loss in losses), losses
        curves[mode] = losses
        if mode != "none":
            start = rows[0]
            assert (start["packing"], start["attention"]) == ("padding_free", varlen.VARLEN_IMPL), start
            assert "rmforge_varlen" in start["packing_reason"]
    # the same batches (no length grouping): the same losses, to bf16 rounding
    assert curves[packing] == pytest.approx(curves["none"], abs=3e-2)


def test_fp32_segment_loop_on_gpu_equals_unpacked(folder):
    """fp32 on the GPU: torch's kernel cannot run, the per-segment SDPA loop does (exact)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model, tok = load_reward_model(str(folder))
    model = model.cuda().eval()
    samples, _ = RewardEncoder(tok, 256).encode_dataset(generate_demo(40, seed=2)[:16])
    want = score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="none")
    got = score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="padding_free")  # switches
    assert attn_implementation(model) == varlen.VARLEN_IMPL
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)
