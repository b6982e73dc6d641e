"""RewardModelGrader in-process: TRL reward_funcs contract, string and conversational inputs."""

from __future__ import annotations

import asyncio

import pytest

from rmforge.errors import RmforgeError
from rmforge.serve import RewardModelGrader
from rmforge.serve.backend import ScalarBackend


@pytest.fixture(scope="module")
def grader(bert_dir):
    return RewardModelGrader(ScalarBackend.load(str(bert_dir), device="cpu"))


def test_trl_reward_func_contract(grader):
    from trl.trainer.grpo_trainer import get_callable_name, is_async_callable

    assert get_callable_name(grader) == "rmforge_reward" and not is_async_callable(grader)
    prompts = ["How do I bake bread?", [{"role": "user", "content": "How do I bake bread?"}]]
    completions = ["Mix flour and water.", [{"role": "assistant", "content": "Mix flour and water."}]]
    out = grader(prompts=prompts, completions=completions, completion_ids=[[1], [2]], trainer_state=None)
    assert len(out) == 2 and out[0] == pytest.approx(out[1], abs=1e-6)  # string == one-message conversation
    graded = asyncio.run(grader.aevaluate(query=prompts[0], response=completions[0]))
    assert graded.score == pytest.approx(out[0], abs=1e-6) and graded.raw == graded.score


def test_normalize_needs_a_run(bert_dir, grader):
    with pytest.raises(RmforgeError, match="needs an rmforge run directory"):
        RewardModelGrader(grader._backend, normalize=True)
    with pytest.raises(ValueError):
        grader(prompts=["a", "b"], completions=["x"])


# ---------------------------------------------------------------- TRL GRPOTrainer's exact call (issue 16)
TOOL_TEMPLATE = (  # ChatML that renders reasoning_content and tool_calls, as Qwen3-style templates do
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message.reasoning_content %}{{ '<think>' + message.reasoning_content + '</think>\n' }}{% endif %}"
    "{{ message['content'] }}"
    "{% if message.tool_calls %}{% for call in message.tool_calls %}"
    "{{ '<tool_call>' + call.function.name + ' ' + (call.function.arguments | tojson) + '</tool_call>' }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CALL = [{"type": "function", "function": {"name": "multiply", "arguments": {"a": 3, "b": 4}}}]


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    """Graders over one tiny llama: its own template (ignores reasoning/tool keys) and TOOL_TEMPLATE."""
    from transformers import AutoTokenizer

    from rmforge.train.tiny import tiny_model

    root = tmp_path_factory.mktemp("grader_llama")
    plain = tiny_model("llama", root / "plain")
    tools = tiny_model("llama", root / "tools")
    tok = AutoTokenizer.from_pretrained(tools)
    tok.chat_template = TOOL_TEMPLATE
    tok.save_pretrained(tools)
    return {"plain": RewardModelGrader(ScalarBackend.load(str(plain), device="cpu")),
            "tools": RewardModelGrader(ScalarBackend.load(str(tools), device="cpu"))}


def _trl_rewards(reward_func, inputs, prompts, completions, completion_ids):
    """TRL's own GRPOTrainer._calculate_rewards on a stub trainer: the exact reward-function call
    (prompts=, completions=, completion_ids=, the dataset's other columns, trainer_state, log_extra,
    log_metric) and its None -> NaN conversion."""
    import types
    from collections import defaultdict

    import torch
    from accelerate import PartialState
    from trl.trainer.grpo_trainer import GRPOTrainer

    PartialState()  # TRL logs through accelerate's logger
    trainer = types.SimpleNamespace(
        accelerator=types.SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        reward_funcs=[reward_func], reward_processing_classes=[None], reward_func_names=[reward_func.__name__],
        environments=None, state=types.SimpleNamespace(global_step=3), args=types.SimpleNamespace(report_to=[]),
        chat_template_kwargs={}, _pending_extra_logs=defaultdict(list), _pending_metrics=defaultdict(list))
    trainer._log_completion_extra = lambda column, values: GRPOTrainer._log_completion_extra(trainer, column, values)
    trainer._log_metric = lambda name, value: GRPOTrainer._log_metric(trainer, name, value)
    out = GRPOTrainer._calculate_rewards(trainer, inputs, prompts, completions, completion_ids)
    return out[:, 0].tolist(), dict(trainer._pending_metrics)


def test_grpo_call_plain_with_empty_completions(decoders):
    import math

    grader = decoders["plain"]
    prompts = ["How do I bake bread?"] * 3 + ["Say hi."]
    completions = ["Mix flour and water.", "", "  ", "hi"]  # batch_decode(skip_special_tokens=True) of [EOS] is ""
    inputs = [{"prompt": p, "completion": c, "answer": "x"} for p, c in zip(prompts, completions)]
    got, metrics = _trl_rewards(grader, inputs, prompts, completions, [[5, 6], [], [7], [8]])
    want = grader.score([prompts[0], prompts[3]], [completions[0], completions[3]])
    assert got[0] == pytest.approx(want[0], abs=1e-6) and got[3] == pytest.approx(want[1], abs=1e-6)
    assert math.isnan(got[1]) and math.isnan(got[2])  # None: TRL's "no reward"
    assert metrics == {"rmforge_reward/empty_frac": [0.5], "rmforge_reward/unscored_frac": [0.0]}
    fixed = RewardModelGrader(grader._backend, empty_reward=-3.0)
    assert fixed(prompts=prompts, completions=completions, completion_ids=[[5, 6], [], [7], [8]])[1:3] == [-3.0, -3.0]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="the response is empty"):  # score() still refuses an empty response
        grader.score(["q"], [""])


def test_grpo_call_conversational_with_parse_response_messages(decoders):
    """Conversational completions as GRPOTrainer builds them: [{"role": "assistant", "content": ...}], or
    parse_response dicts with reasoning_content and tool_calls (content "" beside a tool call)."""
    import math

    import torch

    grader = decoders["tools"]
    backend = grader._backend
    tok, model = backend.scorer.tokenizer, backend.scorer.model
    prompt = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "What is 3 * 4?"}]
    completions = [
        [{"role": "assistant", "content": ""}],  # EOS first
        [{"role": "assistant", "content": "", "reasoning_content": "I should multiply.", "tool_calls": CALL}],
        [{"role": "assistant", "content": "", "tool_calls": CALL}, {"role": "tool", "name": "multiply", "content": "12"},
         {"role": "assistant", "content": "It is 12.", "reasoning_content": "The tool said 12."}],
        [{"role": "assistant", "content": "12"}],
    ]
    inputs = [{"prompt": prompt, "completion": c} for c in completions]
    got, _ = _trl_rewards(grader, inputs, [prompt] * 4, completions, [[], [1, 2], [3], [4]])
    assert math.isnan(got[0])
    for reward, completion in zip(got[1:], completions[1:]):  # == the template's own render, + EOS
        text = tok.apply_chat_template(prompt + completion, tokenize=False)
        assert "<tool_call>multiply {\"a\": 3, \"b\": 4}</tool_call>" in text or completion == completions[3]
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        with torch.no_grad():
            assert reward == pytest.approx(model(torch.tensor([ids])).logits[0, 0].item(), abs=1e-5)
    assert len({round(r, 6) for r in got[1:]}) == 3  # the reasoning and the calls change the reward


def test_template_without_tool_keys_ignores_them(decoders):
    grader = decoders["plain"]
    prompt = [{"role": "user", "content": "What is 3 * 4?"}]
    with_calls = [{"role": "assistant", "content": "Let me check.", "tool_calls": CALL}]
    without = [{"role": "assistant", "content": "Let me check."}]
    only_call = [{"role": "assistant", "content": None, "tool_calls": CALL}]  # OpenAI style: content null
    got = grader(prompts=[prompt] * 3, completions=[with_calls, without, only_call], completion_ids=[[1], [2], [3]])
    assert got[0] == pytest.approx(got[1], abs=1e-6) and got[2] is not None


def test_unscorable_completion_is_none_and_the_others_are_scored(decoders, caplog):
    grader = decoders["plain"]
    prompts = ["q", "q", "q"]
    completions = ["fine", "word " * 600, [{"role": "robot", "content": "x"}]]  # too long; invalid role
    with caplog.at_level("WARNING", logger="rmforge.serve.grader"):
        got = grader(prompts=prompts, completions=completions, completion_ids=[[1], [2], [3]])
    assert got[1] is None and got[2] is None
    assert got[0] == pytest.approx(grader.score(["q"], ["fine"])[0], abs=1e-6)
    assert "completion 1 cannot be scored" in caplog.text and "completion 2 is not a valid conversation" in caplog.text


def test_grader_over_http_skips_empty_completions(decoders):
    """URL mode: empties never reach the server (whose /score answers 422 for an empty response)."""
    from fastapi.testclient import TestClient

    from rmforge.serve.app import create_app

    backend = decoders["plain"]._backend
    with TestClient(create_app(backend)) as client:
        assert client.post("/score", json={"items": [{"prompt": "q", "response": ""}]}).status_code == 422
        remote = RewardModelGrader("http://testserver")
        remote._client.http = client  # TestClient is an httpx.Client: the real request path, in process
        got = remote(prompts=["q", "q", "q"], completions=["ok", "", [{"role": "assistant", "content": ""}]],
                     completion_ids=[[1], [], []])
        long = remote(prompts=["q", "q"], completions=["word " * 600, "ok"], completion_ids=[[1], [2]])
    assert got[1:] == [None, None] and got[0] == pytest.approx(decoders["plain"].score(["q"], ["ok"])[0], abs=1e-6)
    assert long[0] is None and long[1] == pytest.approx(got[0], abs=1e-6)


def test_rendered_string_prompt_is_not_templated_twice(decoders):
    """TRL's standard format with prompts rendered beforehand (apply_chat_template(..., add_generation_prompt=True))
    and completions decoded with skip_special_tokens=True: the reward of the conversation itself."""
    grader = decoders["plain"]
    tok = grader._backend.scorer.tokenizer
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I bake bread?"}]
    rendered = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    got = grader(prompts=[rendered, "How do I bake bread?"], completions=["Mix flour and water.", "Mix flour and water."],
                 completion_ids=[[1], [1]])
    want = grader(prompts=[conv, [conv[1]]], completions=[[{"role": "assistant", "content": "Mix flour and water."}]] * 2,
                  completion_ids=[[1], [1]])
    assert got == pytest.approx(want, abs=1e-5)


def _run_copy(run_dir, dest, edit):
    import shutil

    shutil.copytree(run_dir, dest)
    edit(dest / "manifest.json")
    return dest


def test_normalize_on_a_run_without_validation_data_says_why(run_dir, tmp_path):
    import json

    from rmforge.errors import RmforgeError
    from rmforge.serve import RewardModelGrader

    def no_validation(path):
        manifest = json.loads(path.read_text())
        manifest["normalization"] = {"source": "none", "reason": "no validation data"}
        path.write_text(json.dumps(manifest))

    run = _run_copy(run_dir, tmp_path / "noval", no_validation)
    with pytest.raises(RmforgeError, match="cannot normalize: the run was trained without validation data, "
                                           "so it has no reward mean and std"):
        RewardModelGrader(str(run), normalize=True)


def test_corrupted_manifest_is_a_one_line_error_in_serve(run_dir, tmp_path):
    from rmforge.errors import ModelLoadError
    from rmforge.serve.backend import ScalarBackend

    run = _run_copy(run_dir, tmp_path / "broken", lambda p: p.write_text('{"encoding": '))
    with pytest.raises(ModelLoadError, match=r"manifest.json: corrupted run manifest: invalid JSON at line 1"):
        ScalarBackend.load(str(run))


TRIM_TEMPLATE = (  # Llama-3 style: content trimmed, turns closed by <|im_end|> (a special token of the tiny model)
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n\n' + message['content'] | trim"
    " + '<|im_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n\n' }}{% endif %}"
)


def test_rendered_string_prompt_with_a_trimming_template(tmp_path):
    """A template that trims content (Llama 3's): a completion with surrounding whitespace, after an
    already rendered prompt, gets the reward of the conversation (the untrimmed text was scored before)."""
    from transformers import AutoTokenizer

    from rmforge.train.tiny import tiny_model

    folder = tiny_model("llama", tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TRIM_TEMPLATE
    tok.save_pretrained(folder)
    grader = RewardModelGrader(ScalarBackend.load(str(folder), device="cpu"))
    conv = [{"role": "user", "content": "How do I bake bread?"}]
    rendered = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    completion = "  Mix flour and water.\n\n"
    got = grader(prompts=[rendered], completions=[completion], completion_ids=[[1]])
    want = grader(prompts=[conv], completions=[[{"role": "assistant", "content": completion}]], completion_ids=[[1]])
    assert got == pytest.approx(want, abs=1e-6)
    assert grader._backend.scorer.encoder.rendered_answer(completion) == "Mix flour and water.<|im_end|>"
