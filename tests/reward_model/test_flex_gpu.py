"""FlexAttention on a real GPU (skipped without CUDA; run by bench/device_check.sh): the compiled kernel
gives the rewards of SDPA, and a training run compiles a bounded number of times."""

import json

import pytest
import torch

from rmforge.config import load_config
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.reward_model import flex
from rmforge.reward_model.forward import score_samples
from rmforge.reward_model.modeling import load_reward_model
from rmforge.reward_model.tokenize import RewardEncoder
from rmforge.train.config import BTConfig
from rmforge.train.metrics import read_metrics
from rmforge.train.tiny import tiny_model
from rmforge.train.trainer import train_bt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_model("llama", tmp_path_factory.mktemp("flex-gpu"), hidden_size=64, num_heads=4)  # head dim 16


def test_compiled_flex_rewards_equal_sdpa(folder):
    torch.backends.cuda.matmul.allow_tf32 = False
    model, tok = load_reward_model(str(folder))
    model = model.cuda().eval()
    samples, _ = RewardEncoder(tok, 256).encode_dataset(generate_demo(40, seed=2)[:16])
    want = score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="none")
    assert flex.use_flex_attention(model) == (True, "ok")
    got = score_samples(model, samples, tok.pad_token_id, batch_size=4, packing="auto")
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)
    assert flex.compiles() >= 1
    from rmforge.reward_model.packing import pack

    batch = pack([s.encodings for s in samples], tok.pad_token_id, True, row_tokens=2048).to("cuda")
    bm = flex.block_mask(batch.doc, batch.branch)  # built from block summaries on the device: equals torch's
    from torch.nn.attention.flex_attention import create_block_mask

    doc, branch = batch.doc, batch.branch
    want = create_block_mask(lambda b, h, q, kv: (q >= kv) & (doc[b, q] == doc[b, kv])
                             & ((branch[b, kv] == 0) | (branch[b, q] == branch[b, kv])), 1, None, 2048, 2048,
                             device="cuda")
    assert torch.equal(bm.to_dense(), want.to_dense())


def test_training_on_flex_compiles_a_bounded_number_of_times(folder, tmp_path):
    demo = generate_demo(200, seed=0)
    write_samples(tmp_path / "train.jsonl", demo[:64])
    write_samples(tmp_path / "val.jsonl", demo[100:116])
    flex.reset_compiles()
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    curves = {}
    for packing in ("auto", "none"):
        out = tmp_path / packing
        cfg = load_config(None, [f"model={folder}", f"data.train={tmp_path / 'train.jsonl'}",
                                 f"data.validation={tmp_path / 'val.jsonl'}", f"output_dir={out}",
                                 "train.max_steps=8", "train.batch_size=8", "train.precision=fp32", "train.lr=1e-3",
                                 "logging.every_steps=1", "logging.progress=false", "seed=0",
                                 f"train.packing={packing}"], cls=BTConfig)
        summary = train_bt(cfg)
        rows = read_metrics(out)
        curves[packing] = [r["loss"] for r in rows if "loss" in r and "event" not in r]
        if packing == "auto":
            start = rows[0]
            assert (start["packing"], start["attention"]) == ("prefix_shared", flex.FLEX_IMPL), start
            assert 1 <= len(start["row_widths"]) <= 4 and start["token_budget"] >= 1
            # per width one attention kernel with autograd and one without (validation reuses the widths);
            # block masks are not compiled
            assert summary["compiles"] <= 2 * len(start["row_widths"]), summary["compiles"]
            manifest = json.loads((out / "manifest.json").read_text())
            assert manifest["summary"]["compiles"] == summary["compiles"]
            # dynamo's own count: a per-step recompile (e.g. guards on the mask's closure) would show here
            graphs = counters["stats"]["unique_graphs"] - graphs_before
            assert graphs <= 2 * summary["compiles"], (graphs, summary["compiles"])
    assert curves["auto"] == pytest.approx(curves["none"], abs=2e-3)
