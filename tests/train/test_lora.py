"""LoRA through peft: trainable set, head in modules_to_save, merged plain checkpoints, export merge."""

import json

import pytest
import torch
from typer.testing import CliRunner

from rmforge.errors import OutputExistsError, RmforgeError
from rmforge.train.lora import (
    LoraOptions,
    apply_lora,
    auto_target_modules,
    bnb_config,
    load_adapter_weights,
    merge_run,
    save_lora_run,
)
from rmforge.reward_model.modeling import load_reward_model
from rmforge.train.tiny import tiny_model

TEXTS = ["hello there, my friend. the cat is good", "hi", "what is the best answer to this question?"]
OPTS = LoraOptions(enabled=True, r=4, alpha=8)
# llama with pad="none" + pad_policy="add" grows the vocabulary: the embedding must travel with the adapter.
KINDS = {"llama": ({"pad": "none"}, {"pad_policy": "add"}, "score"), "bert": ({}, {}, "classifier")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {kind: tiny_model(kind, tmp_path_factory.mktemp(kind), **kw) for kind, (kw, _, _) in KINDS.items()}


def load(folders, kind):
    model, tok = load_reward_model(str(folders[kind]), **KINDS[kind][1])
    return model, tok


def wrapped(folders, kind, randomize=True):
    model, tok = load(folders, kind)
    peft_model = apply_lora(model, OPTS)
    if randomize:  # LoRA B starts at zero: make the adapters matter for the merge checks
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return peft_model.eval(), tok


def scores(model, tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0].float()


def plain(folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32).eval()
    assert not any("lora" in n or "modules_to_save" in n for n, _ in model.named_parameters())
    return model, AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("kind", KINDS)
def test_only_lora_and_head_are_trainable(folders, kind):
    model, _ = load(folders, kind)
    head = KINDS[kind][2]
    assert head not in auto_target_modules(model, head) and auto_target_modules(model, head)
    peft_model = apply_lora(model, OPTS)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    assert all("lora_" in n or f".{head}.modules_to_save." in n for n in trainable), trainable
    assert peft_model.base_model.model.get_submodule(head).modules_to_save["default"].weight.requires_grad
    assert not peft_model.base_model.model.get_submodule(head).original_module.weight.requires_grad
    assert not any("lora_" in n for n, _ in peft_model.named_modules() if n.split(".")[2:3] == [head])


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_changes_only_lora_and_head(folders, kind):
    peft_model, tok = wrapped(folders, kind)
    peft_model.train()
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    r = peft_model(**enc).logits[:, 0]
    (-torch.nn.functional.logsigmoid(r[0] - r[1]) + r.pow(2).mean()).backward()
    optimizer.step()
    changed = {n for n, p in peft_model.named_parameters() if not torch.equal(p.detach(), before[n])}
    head = KINDS[kind][2]
    assert any(f".{head}.modules_to_save." in n for n in changed)
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)
    assert all("lora_" in n or ".modules_to_save." in n for n in changed), changed


@pytest.mark.parametrize("kind", KINDS)
def test_save_merge_and_export_give_identical_scores(folders, kind, tmp_path):
    peft_model, tok = wrapped(folders, kind)
    expected = scores(peft_model, tok)
    run = save_lora_run(peft_model, tok, tmp_path / "run")
    (run / "manifest.json").write_text(json.dumps({"steps": 3}))
    assert torch.equal(scores(peft_model, tok), expected)  # merged on a copy: training model untouched
    assert any("lora_" in n for n, _ in peft_model.named_parameters())
    adapter_cfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert KINDS[kind][2] in adapter_cfg["modules_to_save"]
    assert adapter_cfg["base_model_name_or_path"] == str(folders[kind].resolve())
    config = json.loads((run / "config.json").read_text())
    assert not [k for k in config if "peft" in k or "adapter" in k or k == "quantization_config"]
    assert config["pad_token_id"] == tok.pad_token_id
    model, tok2 = plain(run)
    assert tok2.pad_token_id == tok.pad_token_id == model.config.pad_token_id
    torch.testing.assert_close(scores(model, tok2), expected, atol=1e-5, rtol=0)

    for source, name in ((run, "merged"), (run / "adapter", "from-adapter")):
        info = merge_run(source, tmp_path / name)
        assert info["mode"] == "merged"
        model, tok3 = plain(tmp_path / name)
        torch.testing.assert_close(scores(model, tok3), expected, atol=1e-5, rtol=0)
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["merged_from"] == str(source.resolve()) and manifest["steps"] == 3
        assert model.config.pad_token_id == tok.pad_token_id
    with pytest.raises(OutputExistsError):
        merge_run(run, tmp_path / "merged")
    merge_run(run, tmp_path / "merged", overwrite=True)


def test_adapter_checkpoint_reloads(folders, tmp_path):
    peft_model, tok = wrapped(folders, "llama")
    expected = scores(peft_model, tok)
    peft_model.save_pretrained(str(tmp_path / "ckpt"))
    fresh, _ = wrapped(folders, "llama", randomize=False)
    load_adapter_weights(fresh, tmp_path / "ckpt")
    torch.testing.assert_close(scores(fresh.eval(), tok), expected, atol=1e-6, rtol=0)


def test_merge_run_copies_a_full_model_and_rejects_empty_folders(folders, tmp_path):
    model, tok = load(folders, "bert")
    full = tmp_path / "full"
    model.save_pretrained(str(full))
    tok.save_pretrained(str(full))
    (full / "optimizer.pt").write_bytes(b"x")
    info = merge_run(full, tmp_path / "out")
    assert info["mode"] == "copied" and not (tmp_path / "out" / "optimizer.pt").exists()
    copy, tok2 = plain(tmp_path / "out")
    torch.testing.assert_close(scores(copy, tok2), scores(model.eval(), tok))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RmforgeError, match="no LoRA adapter.*no full model"):
        merge_run(tmp_path / "empty", tmp_path / "out2")
    with pytest.raises(RmforgeError, match="no such folder"):
        merge_run(tmp_path / "missing", tmp_path / "out3")
    assert not (tmp_path / "out2").exists()


def test_export_cli(folders, tmp_path):
    from rmforge.cli.export import app

    peft_model, tok = wrapped(folders, "bert")
    run = save_lora_run(peft_model, tok, tmp_path / "run")
    result = CliRunner().invoke(app, ["merge", str(run), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "config.json").exists()
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["merge", str(tmp_path / "empty"), str(tmp_path / "out2")])
    assert result.exit_code == 1 and "nothing to export" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="QLoRA may work with a GPU")
def test_qlora_without_gpu_is_a_clear_error(folders):
    model, _ = load(folders, "llama")
    opts = LoraOptions(enabled=True, quantize="4bit")
    with pytest.raises(RmforgeError, match="needs bitsandbytes and a CUDA GPU"):
        apply_lora(model, opts)
    with pytest.raises(RmforgeError, match="QLoRA"):
        bnb_config(opts)


def test_gradient_checkpointing_and_bad_options(folders):
    model, tok = load(folders, "llama")
    model.gradient_checkpointing_enable()
    peft_model = apply_lora(model, OPTS).train()
    peft_model(**tok(TEXTS, padding=True, return_tensors="pt")).logits.sum().backward()
    assert all(p.grad is not None for n, p in peft_model.named_parameters() if "lora_B" in n)
    with pytest.raises(RmforgeError, match="target_modules"):
        apply_lora(load(folders, "llama")[0], LoraOptions(target_modules=["nothing_here"]))
    with pytest.raises(ValueError):
        LoraOptions(r=0)
