"""rmforge train sft: assistant-only mask from templates without generation markers, loss falls,
packing equals padding, resume, LoRA, bad input."""

import json

import pytest
import torch

from rmforge.config import load_config
from rmforge.errors import ConfigError, DataError
from rmforge.train.judge_config import SFTConfig
from rmforge.train.metrics import read_metrics
from rmforge.train.sft import encode_all, encode_conversation, packed_batch, padded_batch, token_loss_sum, train_sft
from rmforge.train.tiny import tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model("llama", tmp_path_factory.mktemp("tiny") / "m", seed=1)


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


CONV = [{"role": "system", "content": "be good"}, {"role": "user", "content": "the code"},
        {"role": "assistant", "content": "yes it is"}, {"role": "user", "content": "why"},
        {"role": "assistant", "content": "because"}]


def test_mask_covers_exactly_the_assistant_turns(tok):
    e = encode_conversation(tok, CONV)
    trained = tok.decode([i for i, m in zip(e.input_ids, e.loss_mask) if m])
    assert trained == "yes it is<|im_end|>\nbecause<|im_end|>\n"
    assert tok.decode(e.input_ids) == tok.apply_chat_template(CONV, tokenize=False)


def test_mask_with_smollm2_template_has_no_generation_markers(tok):
    from transformers import AutoTokenizer

    from rmforge.models import embedded

    path = embedded("smollm2-135m").path()
    if path is None or not path.is_dir():
        pytest.skip("SmolLM2 not converted/installed")
    smol = AutoTokenizer.from_pretrained(path)
    assert "{% generation %}" not in smol.chat_template
    e = encode_conversation(smol, CONV[1:3])
    assert smol.decode([i for i, m in zip(e.input_ids, e.loss_mask) if m]) == "yes it is<|im_end|>\n"


def test_template_that_is_not_prefix_stable_is_refused(tok):
    from copy import deepcopy

    bad = deepcopy(tok)
    bad.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ConfigError, match="renders earlier turns differently"):
        encode_conversation(bad, CONV)


def test_length_policy_counts(tok):
    convs = [CONV, [{"role": "user", "content": "the " * 200}, {"role": "assistant", "content": "ok"}]]
    kept, stats = encode_all(tok, convs, 40, "truncate_left")
    assert stats["truncated"] >= 1 and stats["kept"] == len(kept) == 2
    kept, stats = encode_all(tok, convs, 40, "drop")
    assert stats["dropped_by_reason"] == {"too_long": 2} or stats["dropped_by_reason"]["too_long"] >= 1


def test_loss_on_kept_logit_positions_equals_full_logits(tiny, tok):
    """token_loss_sum projects only the positions that predict labelled tokens (logits_to_keep): loss and
    gradients equal the full-vocabulary computation over every position, plain and under LoRA."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rmforge.train.sft import keeps_logit_positions

    items, _ = encode_all(tok, [CONV, CONV[1:3], CONV[:3]], 256, "drop")
    for lora in (False, True):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
        if lora:
            model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        assert keeps_logit_positions(model)
        batch = padded_batch(items, tok.pad_token_id)
        labels = batch["labels"].clone()
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        ref = torch.nn.functional.cross_entropy(full.reshape(-1, full.shape[-1]), labels[:, 1:].reshape(-1),
                                                ignore_index=-100, reduction="sum")
        ref_grads = torch.autograd.grad(ref, [p for p in model.parameters() if p.requires_grad])
        loss, n = token_loss_sum(model, batch, "cpu")
        grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        assert n == int((labels[:, 1:] != -100).sum()) > 0
        assert float(loss) == pytest.approx(float(ref), rel=1e-5)
        assert max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads)) < 1e-5


def _loss_and_grads(model, batch, grads: bool):
    if not grads:  # FlexAttention has no backward on CPU
        with torch.no_grad():
            loss, n = token_loss_sum(model, batch, "cpu")
        return float(loss), n, None
    loss, n = token_loss_sum(model, batch, "cpu")
    return float(loss.detach()), n, torch.autograd.grad(loss, list(model.parameters()))


@pytest.mark.parametrize("backend", ["sdpa", "rmforge_varlen", "rmforge_flex"])
@pytest.mark.parametrize("one_row", [False, True])
def test_packed_loss_equals_padded_loss(tiny, tok, backend, one_row, monkeypatch):
    """Packed SFT rows give the padded loss (and gradients) under a dense SDPA mask, rmforge_varlen (no mask:
    segments) and rmforge_flex (a block mask; eager on CPU, forward only), in first-fit rows and in one
    static row of a planned width; the mask is built in token_loss_sum, never by packed_batch."""
    from transformers import AutoModelForCausalLM

    from rmforge.reward_model import attention, flex, varlen

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    items, _ = encode_all(tok, [CONV, CONV[1:3], CONV[3:]], 256, "drop")
    want, n_want, want_grads = _loss_and_grads(model, padded_batch(items, tok.pad_token_id), backend != "rmforge_flex")
    batch = packed_batch(items, tok.pad_token_id, 256, 384 if one_row else None)
    assert "attention_mask" not in batch and batch["doc"].shape == batch["input_ids"].shape
    if one_row:
        assert tuple(batch["input_ids"].shape) == (1, 384) and int((batch["doc"] == -1).sum()) > 0
    if backend == "rmforge_varlen":
        assert varlen.use_varlen_attention(model) == (True, "ok")  # a causal LM, not only reward models
    elif backend == "rmforge_flex":
        flex.register()
        model.set_attn_implementation(flex.FLEX_IMPL)
    assert attention.attn_implementation(model) == backend
    if backend != "sdpa":  # no dense mask under either
        monkeypatch.setattr(attention, "dense_mask", lambda *a: pytest.fail("a dense mask was built"))
    got, n_got, got_grads = _loss_and_grads(model, batch, backend != "rmforge_flex")
    assert n_want == n_got > 0 and got == pytest.approx(want, rel=1e-5)
    if want_grads is not None:
        assert max(float((a - b).abs().max()) for a, b in zip(got_grads, want_grads)) < 1e-5


def test_packed_batch_one_row_refuses_an_overfull_row(tok):
    items, _ = encode_all(tok, [CONV, CONV[1:3]], 256, "drop")
    with pytest.raises(ValueError, match="do not fit one row of 8"):
        packed_batch(items, tok.pad_token_id, 256, 8)


def test_sft_packing_per_hardware(tiny, tmp_path, monkeypatch, caplog):
    """CPU: dense masks; CUDA: FlexAttention (static rows) where it runs, else rmforge_varlen, else padded
    rows with one logged warning (never a dense mask on a GPU)."""
    from transformers import AutoModelForCausalLM

    from rmforge.reward_model import attention, flex, packed_attention, varlen
    from rmforge.train.sft import sft_packing

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)  # head dim 8: no FlexAttention
    assert sft_packing(model, False, "cuda") == (False, False, "packing=false was asked for")
    pack, static, why = sft_packing(model, True, "cpu")
    assert (pack, static) == (True, False) and why.startswith("cpu: a dense") and \
        attention.attn_implementation(model) == "sdpa"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(packed_attention, "use_varlen_attention", lambda m: (False, "rmforge_varlen unavailable: x"))
    with caplog.at_level("WARNING", "rmforge.train"):
        pack, static, why = sft_packing(model, True, "cuda")
    assert (pack, static) == (False, False) and attention.attn_implementation(model) == "sdpa"
    assert why == ("FlexAttention is off (head dimension 8 < 16) and rmforge_varlen is unavailable (rmforge_varlen "
                   "unavailable: x): packing must be off (no dense [rows, 1, width, width] mask on a GPU)")
    assert [r.getMessage() for r in caplog.records if r.name == "rmforge.train"] == [
        f"packing=true: {why}; training on padded rows"]
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    pack, static, why = sft_packing(model, True, "cuda")
    assert (pack, static) == (True, False) and attention.attn_implementation(model) == varlen.VARLEN_IMPL
    assert why == ("FlexAttention is off (head dimension 8 < 16): each document attends within itself through "
                   "rmforge_varlen (no mask)")
    wide = AutoModelForCausalLM.from_pretrained(tiny_model("llama", tmp_path / "wide", hidden_size=64),
                                                dtype=torch.float32)  # head dim 16
    pack, static, why = sft_packing(wide, True, "cuda")
    assert (pack, static) == (True, True) and attention.attn_implementation(wide) == flex.FLEX_IMPL


def _varied_rows(path, n=40):
    rows = [{"messages": [{"role": "user", "content": "tell me " + "more " * (1 + (7 * i) % 23)},
                          {"role": "assistant", "content": "sure " * (1 + (5 * i) % 11)}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_static_rows_under_flex_use_few_shapes(tmp_path, tiny, monkeypatch):
    """Under FlexAttention (forced here; the model stays on SDPA, so CPU can train) every micro-batch is one
    row whose width is one of at most four widths planned before the run, though the micro-batches
    hold many different token counts; the start event records them."""
    from rmforge.reward_model.shapes import MAX_WIDTHS
    from rmforge.train import sft

    monkeypatch.setattr(sft, "switch_packed_attention", lambda model, device_type: ("flex", "forced for the test"))
    shapes, totals = [], []
    real = sft.token_loss_sum

    def spy(model, batch, device):
        if model.training:
            shapes.append(tuple(batch["input_ids"].shape))
            totals.append(int((batch["doc"] >= 0).sum()))
        return real(model, batch, device)

    monkeypatch.setattr(sft, "token_loss_sum", spy)
    data = _varied_rows(tmp_path / "sft.jsonl")
    cfg = load_config(None, [f"model={tiny}", f"data.train={data}", f"output_dir={tmp_path / 'run'}", "packing=true",
                             "train.max_steps=12", "train.batch_size=6", "train.micro_batch_size=3",
                             "logging.progress=false", "train.precision=fp32"], cls=SFTConfig)
    train_sft(cfg)
    start = read_metrics(tmp_path / "run")[0]
    assert (start["packing"], start["attention"], start["packing_reason"]) == (True, "sdpa", "forced for the test")
    widths = start["row_widths"]
    assert len(shapes) == 24 and len(set(totals)) > MAX_WIDTHS  # many token counts ...
    assert {rows for rows, _ in shapes} == {1} and len(set(shapes)) <= len(widths) <= MAX_WIDTHS  # ... few shapes
    assert {w for _, w in shapes} <= set(widths) and all(w % 128 == 0 for w in widths)


def test_sft_trains_padded_where_packing_cannot_run(tmp_path, tiny, monkeypatch):
    from rmforge.train import sft

    why = "FlexAttention is off (x) and rmforge_varlen is unavailable (y): packing must be off"
    monkeypatch.setattr(sft, "switch_packed_attention", lambda model, device_type: ("off", why))
    seen = []
    real = sft.token_loss_sum
    monkeypatch.setattr(sft, "token_loss_sum", lambda m, b, d: seen.append(sorted(b)) or real(m, b, d))
    data = _varied_rows(tmp_path / "sft.jsonl", 8)
    train_sft(load_config(None, [f"model={tiny}", f"data.train={data}", f"output_dir={tmp_path / 'run'}",
                                 "packing=true", "train.max_steps=2", "train.batch_size=4", "logging.progress=false"],
                          cls=SFTConfig))
    start = read_metrics(tmp_path / "run")[0]
    assert (start["packing"], start["packing_reason"], start["row_widths"]) == (False, why, None)
    assert seen and all(keys == ["attention_mask", "input_ids", "labels"] for keys in seen)


def _judge_rows(path, n=24):
    rows = []
    for i in range(n):
        verdict = "A" if i % 2 else "B"
        rows.append({"input": [{"role": "user", "content": f"which is better, one or two? case {i % 5}"}],
                     "output": f"<preference>{verdict}</preference>",
                     "metadata": {"id": f"p{i}", "chosen_position": verdict, "subset": None, "margin": None,
                                  "source": "t"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_loss_falls_and_run_dir(tmp_path, tiny):
    data = _judge_rows(tmp_path / "judge.jsonl")
    cfg = load_config(None, [f"model={tiny}", f"data.train={data}", f"data.validation={data}",
                             f"output_dir={tmp_path / 'run'}", "train.max_steps=30", "train.batch_size=8",
                             "train.lr=1e-2", "train.scheduler=constant", "logging.every_steps=5", "logging.progress=false",
                             "train.warmup_ratio=0", "seed=3"], cls=SFTConfig)
    summary = train_sft(cfg)
    rows = [r for r in read_metrics(tmp_path / "run") if "loss" in r and "event" not in r]
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert summary["validation"]["loss"] < rows[0]["loss"]
    for name in ("manifest.json", "config.yaml", "model.safetensors", "tokenizer_config.json"):
        assert (tmp_path / "run" / name).exists()


def test_sft_resume_matches_uninterrupted(tmp_path, tiny):
    data = _judge_rows(tmp_path / "judge.jsonl", 16)
    common = [f"model={tiny}", f"data.train={data}", "train.batch_size=4", "train.lr=1e-3",
              "logging.progress=false", "logging.every_steps=1", "train.precision=fp32"]
    full = train_sft(load_config(None, common + [f"output_dir={tmp_path / 'a'}", "train.max_steps=6"], cls=SFTConfig))
    train_sft(load_config(None, common + [f"output_dir={tmp_path / 'b'}", "train.max_steps=6",
                                          "checkpoint.every_steps=3"], cls=SFTConfig))
    run_b = tmp_path / "b"  # as if killed after step 3: drop what the last 3 steps wrote
    (run_b / "manifest.json").unlink()
    resumed = train_sft(load_config(None, common + [f"output_dir={run_b}", "train.max_steps=6", "resume=auto"],
                                    cls=SFTConfig))
    assert resumed["last_logged_loss"] == pytest.approx(full["last_logged_loss"], rel=1e-5)


def test_sft_lora_saves_adapter_and_merged(tmp_path, tiny):
    data = _judge_rows(tmp_path / "judge.jsonl", 8)
    cfg = load_config(None, [f"model={tiny}", f"data.train={data}", f"output_dir={tmp_path / 'run'}",
                             "train.max_steps=2", "train.batch_size=4", "lora.enabled=true", "lora.r=4",
                             "logging.progress=false"], cls=SFTConfig)
    train_sft(cfg)
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "run")  # merged plain model loads without peft


def test_sft_bad_data(tmp_path, tiny):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "prompt": [], "chosen": [], "rejected": []}) + "\n")
    cfg = load_config(None, [f"model={tiny}", f"data.train={bad}", f"output_dir={tmp_path / 'run'}"], cls=SFTConfig)
    with pytest.raises(DataError, match=r"bad.jsonl, line 1: SFT needs 'messages' rows"):
        train_sft(cfg)
    assert not (tmp_path / "run").exists()


def test_sft_stops_on_a_non_finite_loss(tmp_path, tiny):
    from rmforge.errors import NonFiniteLossError

    data = _judge_rows(tmp_path / "judge.jsonl", 16)
    cfg = load_config(None, [f"model={tiny}", f"data.train={data}", f"output_dir={tmp_path / 'run'}",
                             "train.max_steps=6", "train.batch_size=4", "train.lr=1e30", "train.max_grad_norm=null",
                             "logging.progress=false", "train.precision=fp32", "seed=3"], cls=SFTConfig)
    with pytest.raises(NonFiniteLossError, match=r"training stopped at step \d of 6: the loss is nan \(not finite\), "
                                                  r"so no model was saved from this state\. Try: lower train\.lr"):
        train_sft(cfg)
    assert not (tmp_path / "run" / "manifest.json").exists()
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert any(r.get("event") == "non_finite_loss" for r in read_metrics(tmp_path / "run"))


def test_failed_sft_leaves_no_run_folder_and_brackets_print(tmp_path, tiny):
    """The run folder is created only once the data, model and tracker checks pass (a model that cannot
    load used to leave an empty folder behind); the CLI prints a path with square brackets as it is."""
    from typer.testing import CliRunner

    from rmforge.cli import app
    from rmforge.errors import RmforgeError

    data = _judge_rows(tmp_path / "judge.jsonl", 8)
    with pytest.raises(RmforgeError):
        train_sft(load_config(None, [f"model={tmp_path / 'no-such-model'}", f"data.train={data}",
                                     f"output_dir={tmp_path / 'run'}"], cls=SFTConfig))
    assert not (tmp_path / "run").exists()
    from accelerate.tracking import get_available_trackers

    from rmforge.train.config import TRACKERS

    missing = sorted(set(TRACKERS) - {str(t) for t in get_available_trackers()})
    if missing:  # a tracker whose package is not installed
        with pytest.raises(RmforgeError, match=f"logging.report_to has {missing[0]} but its package is missing"):
            train_sft(load_config(None, [f"model={tiny}", f"data.train={data}", f"output_dir={tmp_path / 'run'}",
                                         f"logging.report_to=[{missing[0]}]"], cls=SFTConfig))
        assert not (tmp_path / "run").exists()
    out = tmp_path / "run [a]"
    result = CliRunner().invoke(app, ["train", "sft", f"model={tiny}", f"data.train={data}", f"output_dir={out}",
                                      "train.max_steps=1", "train.batch_size=4", "logging.progress=false"])
    assert result.exit_code == 0, result.output
    assert f"model saved to {out}\n" in result.output and (out / "manifest.json").is_file()
