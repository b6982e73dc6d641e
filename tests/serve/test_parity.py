"""Train/serve parity: server rewards == Scorer rewards == a plain AutoModelForSequenceClassification
forward with the manifest's encoding (fp32, CPU), for /score, /compare, /rank and /get_reward."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmforge.reward_model.scorer import load_scorer
from rmforge.serve.app import create_app
from rmforge.serve.backend import ScalarBackend
from rmforge.reward_model.tokenize import RewardEncoder


def _msgs(conv):
    return [m.model_dump(exclude_none=True) for m in conv]


@pytest.fixture(scope="module")
def run_client(run_dir):
    backend = ScalarBackend.load(str(run_dir), batch_size=4, device="cpu")
    with TestClient(create_app(backend)) as client:
        yield client, backend


def _plain_rewards(run_dir, samples):
    """from_pretrained + an encoder built by hand from the manifest, one unbatched forward per row."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    enc = manifest["encoding"]
    tok = AutoTokenizer.from_pretrained(run_dir)
    model = AutoModelForSequenceClassification.from_pretrained(run_dir).eval()
    encoder = RewardEncoder(tok, enc["max_length"], enc["length_policy"], append_eos=enc["append_eos"])
    assert encoder.info()["chat_template_sha256"] == enc["chat_template_sha256"]
    out = []
    with torch.no_grad():
        for s in samples:
            out.append([model(torch.tensor([e.input_ids])).logits[0, 0].item() for e in encoder.encode_sample(s)])
    return out


def test_compare_equals_scorer_and_plain_forward(run_client, run_dir, demo):
    client, _ = run_client
    samples = demo[40:52]
    resp = client.post("/compare", json={"pairs": [{"prompt": _msgs(s.prompt), "a": _msgs(s.chosen),
                                                    "b": _msgs(s.rejected)} for s in samples]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    served = [[a, b] for a, b in zip(body["rewards_a"], body["rewards_b"])]
    flat = [r for pair in served for r in pair]
    scorer_rewards, stats = load_scorer(str(run_dir), batch_size=5, device="cpu").score_samples(samples)
    assert stats.num_dropped == 0
    assert flat == pytest.approx([r for pair in scorer_rewards for r in pair], abs=1e-5)
    assert flat == pytest.approx([r for pair in _plain_rewards(run_dir, samples) for r in pair], abs=1e-5)
    expect = [1 / (1 + torch.exp(torch.tensor(b - a)).item()) for a, b in served]
    assert body["p_a_better"] == pytest.approx(expect, abs=1e-6)
    # training-time validation rewards saved by the trainer match too
    saved = [json.loads(line) for line in (run_dir / "validation_rewards.jsonl").read_text().splitlines()]
    assert [r["chosen"] for r in saved] == pytest.approx(body["rewards_a"], abs=1e-5)


def test_score_rank_and_normalisation(run_client, run_dir, demo):
    client, backend = run_client
    s = demo[40]
    score = client.post("/score", json={"items": [{"prompt": _msgs(s.prompt), "response": _msgs(s.chosen)},
                                                   {"prompt": _msgs(s.prompt), "response": _msgs(s.rejected)}]})
    assert score.status_code == 200, score.text
    rank = client.post("/rank", json={"prompt": _msgs(s.prompt), "candidates": [_msgs(s.rejected), _msgs(s.chosen)]})
    body, ranked = score.json(), rank.json()
    assert ranked["rewards"] == pytest.approx(body["rewards"][::-1], abs=1e-6)
    assert ranked["order"] == sorted(range(2), key=lambda i: -ranked["rewards"][i])
    assert sorted(ranked["ranks"]) == [1, 2]
    norm = json.loads((run_dir / "manifest.json").read_text())["normalization"]
    assert body["normalized_rewards"] == pytest.approx([(r - norm["mean"]) / norm["std"] for r in body["rewards"]])
    assert backend.normalization == (norm["mean"], norm["std"])


def test_get_reward_full_text_equals_conversation(run_client, run_dir, demo):
    """OpenRLHF sends the chat-template render; it scores like the conversation itself, also with
    pad tokens around it and with the prompt text given."""
    client, backend = run_client
    tok = backend.scorer.tokenizer
    samples = demo[40:46]
    texts = [tok.apply_chat_template(_msgs(s.prompt + s.chosen), tokenize=False) for s in samples]
    prompts = [tok.apply_chat_template(_msgs(s.prompt), tokenize=False, add_generation_prompt=True) for s in samples]
    want = client.post("/score", json={"items": [{"prompt": _msgs(s.prompt), "response": _msgs(s.chosen)}
                                                 for s in samples]}).json()["rewards"]
    plain = client.post("/get_reward", json={"query": texts})
    assert plain.status_code == 200, plain.text
    assert plain.json()["rewards"] == pytest.approx(want, abs=1e-5)
    padded = [tok.pad_token * 2 + t + tok.eos_token + tok.pad_token * 3 for t in texts]
    got = client.post("/get_reward", json={"query": padded, "prompts": prompts, "labels": [0] * len(texts)})
    assert got.json()["rewards"] == pytest.approx(want, abs=1e-5)
    assert got.json()["raw_rewards"] == got.json()["rewards"] and got.json()["normalized"] is False


def test_pair_encoder_parity(bert_dir):
    """Text-pair encoders: /score == tokenizer(prompt, response) forward; /get_reward with the prompt
    text splits the full text into the same pair."""
    backend = ScalarBackend.load(str(bert_dir), device="cpu")
    tok = backend.scorer.tokenizer
    model = backend.scorer.model
    pairs = [("How do I bake bread?", "Mix flour, water and yeast, then bake."), ("hi", "hello there")]
    with TestClient(create_app(backend)) as client:
        got = client.post("/score", json={"items": [{"prompt": p, "response": r} for p, r in pairs]}).json()
        full = client.post("/get_reward", json={"query": [p + r for p, r in pairs],
                                                "prompts": [p for p, _ in pairs]}).json()
    with torch.no_grad():
        want = [model(**tok(p, r, return_tensors="pt")).logits[0, 0].item() for p, r in pairs]
    assert got["rewards"] == pytest.approx(want, abs=1e-5)
    assert full["rewards"] == pytest.approx(want, abs=1e-5)
    assert got["normalized_rewards"] is None  # not a run directory


# ---------------------------------------------------------------- one bad request never fails its batch-mates
def test_poisoned_job_gets_its_own_422_and_batch_mates_their_solo_rewards(run_client, demo):
    """A lone surrogate that got past the schema (Message.model_construct) crashes the tokenizer; the
    merged run answers the other jobs exactly as when each runs alone."""
    from rmforge.data.schema import Message
    from rmforge.serve.backend import Group, ItemError, TextItem

    _, backend = run_client
    bad = Message.model_construct(role="user", content="x\ud800", reasoning=None, tool_calls=None, name=None)
    normal = [[Group(s.prompt, [s.chosen, s.rejected])] for s in demo[40:43]]
    poisoned = [Group(demo[43].prompt, [demo[43].chosen]), Group([bad], [demo[43].chosen])]
    solo = [backend.run([job])[0] for job in normal]
    merged = backend.run([normal[0], poisoned, normal[1], [TextItem("x\ud800")], normal[2]])
    for got, want in zip([merged[0], merged[2], merged[4]], solo):
        assert got[0] == pytest.approx(want[0], abs=1e-5)  # padding differs in the merged forward
    for out, index in ((merged[1], 1), (merged[3], 0)):
        assert isinstance(out, ItemError) and (out.status, out.index) == (422, index)
        assert out.reason.startswith("cannot be encoded: TypeError")


def test_lone_surrogate_is_rejected_naming_the_field():
    """The request schemas refuse text with a lone surrogate (json.loads of "x\\ud800"), naming the field."""
    import json

    from pydantic import ValidationError

    from rmforge.data.schema import first_error
    from rmforge.serve.schemas import GetRewardRequest, ScoreRequest

    with pytest.raises(ValidationError) as exc:
        GetRewardRequest.model_validate(json.loads('{"query": ["ok", "x\\ud800"]}'))
    assert first_error(exc.value)[0] == "query.1" and first_error(exc.value)[1].startswith("lone surrogate \\ud800 at ch")
    with pytest.raises(ValidationError) as exc:
        GetRewardRequest.model_validate(json.loads('{"query": ["ok"], "prompts": ["\\udc00"]}'))
    assert first_error(exc.value)[0] == "prompts.0"
    with pytest.raises(ValidationError) as exc:
        ScoreRequest.model_validate(json.loads('{"items": [{"prompt": "hi", "response": '
                                               '[{"role": "assistant", "content": "x\\udfff"}]}]}'))
    assert first_error(exc.value) == ("items.0.response.0.content", "lone surrogate \\udfff at character 1 "
                                      "(not valid Unicode text; send UTF-8 or a valid \\uXXXX pair)")


def test_lone_surrogate_body_is_a_422_over_http(run_client):
    """FastAPI's 422 body repeats the input: it echoes U+FFFD in place of the surrogate (the raw value
    could not be written as UTF-8 and made the answer a 500)."""
    client, _ = run_client
    call = '[{"type": "function", "function": {"name": "f\\ud800", "arguments": {}}}]'
    raw = {"/get_reward": (b'{"query": ["ok", "x\\ud800"]}', ["body", "query", 1]),
           "/score": (b'{"items": [{"prompt": "hi", "response": [{"role": "assistant", "content": "x\\udfff"}]}]}',
                      ["body", "items", 0, "response", 0, "content"]),
           "/rank": (('{"prompt": "q", "candidates": ["a", [{"role": "assistant", "content": "", "tool_calls": %s}]]}'
                      % call).encode(), ["body", "candidates", 1, 0, "tool_calls"])}
    for path, (body, loc) in raw.items():
        got = client.post(path, content=body, headers={"content-type": "application/json"})
        assert got.status_code == 422, (path, got.status_code, got.text)
        detail = got.json()["detail"][0]
        assert detail["loc"] == loc and detail["msg"].startswith("Value error, lone surrogate \\u"), detail
        assert "\ufffd" in json.dumps(detail["input"], ensure_ascii=False)
    assert client.post("/get_reward", json={"query": ["still serving"]}).status_code == 200


def test_lone_surrogate_outside_text_fields_is_a_422_not_a_500(run_client):
    """A lone surrogate where no Text field checks it (an extra or ignored field, a dict key, a value of the
    wrong type) reaches FastAPI's 422 body as echoed input: the answer is still a 422, U+FFFD in its place
    (it was a 500 that could not write the answer as UTF-8)."""
    client, _ = run_client
    bodies = {"/get_reward": [b'{"query": [" "], "labels": ["\\ud800"]}', b'{"query": "\\ud800"}'],
              "/score": [b'{"items": [{"prompt": "a", "response": "b", "x\\ud800": 1}]}',
                         b'{"items": [{"prompt": "a", "response": ["\\ud800"]}]}',
                         b'{"items": [{"prompt": {"\\ud800": 1}, "response": "b"}]}', b'{"items": "\\udc00"}'],
              "/compare": [b'{"pairs": [{"a": "x", "b": "y", "extra": ["\\ud800"]}]}']}
    for path, raws in bodies.items():
        for body in raws:
            got = client.post(path, content=body, headers={"content-type": "application/json"})
            assert got.status_code == 422, (path, body, got.status_code, got.text)
            assert "\ufffd" in got.text and "\\ud8" not in got.text.lower(), got.text
    assert client.post("/get_reward", json={"query": ["still serving"]}).status_code == 200


def test_deeply_nested_body_is_a_4xx_not_a_500(run_client):
    """Nesting that parses but is too deep to echo in the 422 answer: 422 without the input; nesting too deep
    to parse: FastAPI's 400."""
    client, _ = run_client
    for depth in (600, 900):
        nest = "[" * depth + "]" * depth
        for body in ('{"items": [{"prompt": "a", "response": "b", "x": %s}]}' % nest,
                     '{"items": [{"prompt": %s, "response": "b"}]}' % nest):
            got = client.post("/score", content=body.encode(), headers={"content-type": "application/json"})
            assert got.status_code == 422 and got.json()["detail"][0]["loc"][:3] == ["body", "items", 0], got.text
    deep = '{"query": ["a"], "labels": %s}' % ("[" * 5000 + "]" * 5000)
    got = client.post("/get_reward", content=deep.encode(), headers={"content-type": "application/json"})
    assert got.status_code == 400
