"""Tests for rmforge.reward_model.batching: padding, attention masks, pair/N-way/pointwise batches."""

import math

import pytest
import torch

from rmforge.reward_model.batching import collate, nway_batch, pair_batch, pointwise_batch, unflatten
from rmforge.reward_model.tokenize import Encoded, EncodedSample

PAD = 0


def enc(ids, types=None, prompt_len=1):
    return Encoded(list(ids), None if types is None else list(types), prompt_len)


def test_collate_right_padding_and_mask():
    out = collate([enc([5, 6, 7]), enc([8]), enc([9, 10])], pad_id=PAD)
    assert set(out) == {"input_ids", "attention_mask"}
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert out["input_ids"].dtype == out["attention_mask"].dtype == torch.long


def test_collate_multiple_and_token_types():
    out = collate([enc([1, 2, 3], [0, 0, 1]), enc([4], [0])], pad_id=99, pad_to_multiple_of=4)
    assert out["input_ids"].tolist() == [[1, 2, 3, 99], [4, 99, 99, 99]]
    assert out["token_type_ids"].tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]
    assert out["attention_mask"].sum(1).tolist() == [3, 1]
    assert collate([enc(range(8))], pad_id=0, pad_to_multiple_of=4)["input_ids"].shape == (1, 8)
    with pytest.raises(ValueError):
        collate([enc([1], [0]), enc([2])], pad_id=0)
    with pytest.raises(ValueError):
        collate([], pad_id=0)


def test_pair_batch_rows_chosen_then_rejected():
    samples = [EncodedSample(7, "pair", [enc([1, 2]), enc([1, 3, 3])], margin=1.5, tie=False),
               EncodedSample(9, "pair", [enc([4]), enc([4, 5])], margin=None, tie=True)]
    batch, meta = pair_batch(samples, pad_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 0], [4, 0, 0], [1, 3, 3], [4, 5, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]]
    assert meta["margin"].tolist() == [1.5, 0.0] and meta["tie"].tolist() == [False, True]
    assert meta["sample_index"].tolist() == [7, 9]
    chosen, rejected = torch.chunk(batch["input_ids"], 2)
    assert chosen[:, 0].tolist() == [1, 4] and rejected[:, 0].tolist() == [1, 4]
    with pytest.raises(ValueError):
        pair_batch([EncodedSample(0, "nway", [enc([1]), enc([2])], ranks=[1, 2])], pad_id=PAD)


def test_nway_batch_and_unflatten():
    samples = [EncodedSample(0, "nway", [enc([1]), enc([2, 2]), enc([3])], ranks=[2, 1, 3]),
               EncodedSample(1, "nway", [enc([4]), enc([5])], ranks=[1, 1])]
    batch, meta = nway_batch(samples, pad_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 0], [2, 2], [3, 0], [4, 0], [5, 0]]
    assert meta["index"].tolist() == [0, 0, 0, 1, 1] and meta["slot"].tolist() == [0, 1, 2, 0, 1]
    assert meta["ranks"].tolist() == [[2, 1, 3], [1, 1, 0]]
    assert meta["mask"].tolist() == [[True, True, True], [True, True, False]]
    rewards = torch.tensor([[0.1], [0.2], [0.3], [0.4], [0.5]], requires_grad=True)
    grid = unflatten(rewards, meta)
    assert torch.allclose(grid, torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.0]]))
    grid.sum().backward()
    assert rewards.grad.tolist() == [[1.0]] * 5


def test_pointwise_batch_nan_targets():
    samples = [EncodedSample(3, "pointwise", [enc([1, 2])], scores=[1.0, math.nan]),
               EncodedSample(4, "pointwise", [enc([3])], scores=[2.0, 4.0])]
    batch, meta = pointwise_batch(samples, pad_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 2], [3, 0]]
    t = meta["targets"]
    assert t.shape == (2, 2) and t.dtype == torch.float32 and torch.isnan(t[0, 1])
    assert t[0, 0].item() == 1.0 and t[1].tolist() == [2.0, 4.0]


def test_encoder_to_batch_end_to_end():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from rmforge.data.schema import Sample, assistant, user
    from rmforge.reward_model.tokenize import RewardEncoder

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "a", "b", "c"])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    samples = [Sample(id="x", prompt=[user("a")], chosen=[assistant("b b")], rejected=[assistant("c")], margin=1.0)]
    kept, _ = RewardEncoder(tok, 32, chat_template="none").encode_dataset(samples)
    batch, meta = pair_batch(kept, pad_id=tok.pad_token_id)
    last = batch["attention_mask"].sum(1) - 1
    assert batch["input_ids"][torch.arange(2), last].tolist() == [tok.eos_token_id] * 2  # scored token = EOS
    assert meta["margin"].tolist() == [1.0]


def test_length_buckets_minimise_padded_slots_plus_overhead():
    from rmforge.reward_model.batching import length_buckets

    lengths = [100, 10, 95, 12, 50]
    # slots: one group 5 * 100 = 500; {100, 95} {50} {12, 10}: 274; {100, 95, 50} {12, 10}: 324
    assert length_buckets(lengths, overhead=0) == [[0], [2], [4], [3], [1]]
    assert length_buckets(lengths, overhead=40) == [[0, 2], [4], [3, 1]]  # 274 + 3 * 40 = 394
    assert length_buckets(lengths, overhead=100) == [[0, 2, 4], [3, 1]]  # 324 + 200 < 274 + 300
    assert length_buckets(lengths, overhead=10_000) == [[0, 2, 4, 3, 1]]
    assert length_buckets([], overhead=1) == []
    assert sorted(i for g in length_buckets(lengths) for i in g) == [0, 1, 2, 3, 4]


def test_plain_rows_follow_the_builders_order():
    from rmforge.reward_model.batching import plain_rows

    pairs = [EncodedSample(i, "pair", [enc([1, i]), enc([2, i, 3])]) for i in range(3)]
    rows, meta = plain_rows(pairs)
    batch, meta_ref = pair_batch(pairs, pad_id=0)
    assert collate(rows, 0)["input_ids"].tolist() == batch["input_ids"].tolist()
    assert meta.keys() == meta_ref.keys()
    nway = [EncodedSample(0, "nway", [enc([1]), enc([2, 2]), enc([3])], ranks=[1, 2, 3])]
    assert [r.input_ids for r in plain_rows(nway)[0]] == [[1], [2, 2], [3]]
    with pytest.raises(ValueError, match="pair_batch got a nway"):
        plain_rows(pairs + nway)
