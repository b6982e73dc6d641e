"""Scores do not depend on batch size or padding side (fp32, CPU, tiny llama and bert).

RewardBench users saw accuracy move 0.429 -> 0.480 with the batch size; here every reward equals
the unpadded single-sequence forward, for any batch size, and (decoder with rotary positions)
whether the batch is padded on the right, as rmforge does, or on the left.
"""

import pytest
import torch

from rmforge.evaluate import load_scorer
from rmforge.evaluate.benchmarks import get_spec, load_benchmark
from rmforge.train.tiny import tiny_model

RB2 = "tests/assets/bench/rewardbench2/test.jsonl"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    return {kind: str(tiny_model(kind, root / kind)) for kind in ("llama", "bert")}


def single(model, enc) -> float:
    kw = {"token_type_ids": torch.tensor([enc.token_type_ids])} if enc.token_type_ids else {}
    with torch.no_grad():
        return model(input_ids=torch.tensor([enc.input_ids]), **kw).logits[0, 0].item()


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_rewards_equal_across_batch_sizes(models, kind):
    samples = load_benchmark(get_spec("rewardbench2"), RB2)
    base = load_scorer(models[kind], batch_size=1)
    encoded, _ = base.encode(samples)
    ref = [single(base.model, e) for s in encoded for e in s.encodings]
    for bs in (1, 3, 8, 64):
        scorer = load_scorer(models[kind], batch_size=bs)
        got = [v for row in scorer.score_encoded(encoded) for v in row]
        assert got == pytest.approx(ref, abs=1e-5), f"batch size {bs}"


def test_left_padding_scores_like_right_padding(models):
    scorer = load_scorer(models["llama"], batch_size=64)
    samples = load_benchmark(get_spec("rewardbench2"), RB2)
    encoded, _ = scorer.encode(samples)
    encs = [e for s in encoded for e in s.encodings]
    right = [v for row in scorer.score_encoded(encoded) for v in row]
    width, pad = max(len(e.input_ids) for e in encs), scorer.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(e.input_ids)) + list(e.input_ids) for e in encs])
    mask = torch.tensor([[0] * (width - len(e.input_ids)) + [1] * len(e.input_ids) for e in encs])
    with torch.no_grad():
        left = scorer.model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
    assert len({len(e.input_ids) for e in encs}) > 3  # real padding happened
    assert left == pytest.approx(right, abs=1e-4)
