"""Generative-judge backend: parity with ``rmforge eval judge`` (real tiny causal LM), verdict -> reward
rules and parse failures (scripted completions over the real tokenizer and templates), auth/limits,
run-config settings, ``--kind auto`` detection, and a real ``rmforge serve`` process."""

from __future__ import annotations

import json
import signal

import httpx
import pytest
from fastapi.testclient import TestClient

from rmforge.data.io import write_samples
from rmforge.data.schema import Message, Sample, Scale
from rmforge.errors import ConfigError
from rmforge.evaluate.judge import evaluate_judge
from rmforge.serve.app import create_app
from rmforge.serve.config import ServeConfig
from rmforge.serve.judge_backend import JudgeBackend, detect_kind, pick_generator, run_settings

TOKEN = "j-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD, BAD = "Mix flour and water, then bake.", "No idea."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny llama with large random weights: at the default init it answers newlines to every prompt,
    with these its greedy completions depend on the prompt (so parity can fail)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rmforge.train.tiny import tiny_model

    path = tiny_model("llama", tmp_path_factory.mktemp("judge_serve") / "m", seed=3)
    model = AutoModelForCausalLM.from_pretrained(path)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.copy_(torch.randn(weight.shape, generator=gen) * 0.5)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


def _user(text):
    return [Message(role="user", content=text)]


def _bot(text):
    return [Message(role="assistant", content=text)]


# ------------------------------------------------------------------ parity with rmforge eval judge
def test_pairwise_parity_with_eval_judge(tmp_path, tiny):
    pairs = [Sample(id=f"p{i}", prompt=_user(q), chosen=_bot(c), rejected=_bot(r)) for i, (q, c, r) in
             enumerate([("How do I bake bread?", GOOD, BAD), ("Say hello", "hello there", "go away"),
                        ("What is two plus two?", "four", "five")])]
    write_samples(tmp_path / "pairs.jsonl", pairs)
    _, rows = evaluate_judge(str(tiny), str(tmp_path / "pairs.jsonl"), "pairwise", batch_size=4, max_new_tokens=6)
    backend = JudgeBackend.load(str(tiny), mode="pairwise", both_orders=True, max_new_tokens=6, batch_size=4,
                                device="cpu")
    body = {"pairs": [{"prompt": s.prompt[0].content, "a": s.chosen[0].content, "b": s.rejected[0].content}
                      for s in pairs]}
    with TestClient(create_app(backend, ServeConfig(), None)) as client:
        out = client.post("/compare", json=body).json()
    by_id = {r["id"]: r for r in rows}
    assert len({r["completion"] for r in rows}) == len(rows)  # prompt-dependent completions
    for s, judged in zip(pairs, out["judgements"]):
        for order, pos in (("AB", "A"), ("BA", "B")):  # chosen shown at A, then at B
            served = next(j for j in judged if j["order"] == order)
            row = by_id[f"{s.id}@{pos}"]
            assert (served["completion"], served["verdict"], served["status"]) == \
                (row["completion"], row["verdict"], row["status"])
    assert len(out["p_a_better"]) == 3 and len(out["parse_ok"]) == 3


def test_pointwise_parity_with_eval_judge(tmp_path, tiny):
    items = [("How do I bake bread?", GOOD, 3.0), ("Say hello", "hello there", 1.0)]
    samples = [Sample(id=f"s{i}", prompt=_user(q), response=_bot(r), scores={"helpfulness": v},
                      scale=Scale(min=0, max=4)) for i, (q, r, v) in enumerate(items)]
    write_samples(tmp_path / "points.jsonl", samples)
    _, rows = evaluate_judge(str(tiny), str(tmp_path / "points.jsonl"), "pointwise", batch_size=2, max_new_tokens=5)
    backend = JudgeBackend.load(str(tiny), mode="pointwise", scale=(0, 4), attribute="helpfulness",
                                max_new_tokens=5, batch_size=2, device="cpu")
    judged = backend.score([backend_group(q, r) for q, r, _ in items])
    assert [j.judgements[0]["completion"] for j in judged] == [r["completion"] for r in rows]
    assert rows[0]["completion"] != rows[1]["completion"]
    other = JudgeBackend.load(str(tiny), mode="pointwise", scale=(0, 4), max_new_tokens=5, batch_size=2, device="cpu")
    assert other.score([backend_group(*items[0][:2])])[0].judgements[0]["completion"] != rows[0]["completion"]
    assert [j.judgements[0]["status"] for j in judged] == [r["status"] for r in rows]


def backend_group(prompt, response):
    from rmforge.serve.backend import Group

    return Group(_user(prompt), [_bot(response)])


# ------------------------------------------------------------------ verdict -> reward (scripted completions)
class Script:
    """Completions by rule over the rendered judge prompt; counts generation calls."""

    def __init__(self, rule):
        self.rule, self.calls, self.seen = rule, [], []

    def __call__(self, prompts):
        self.calls.append(len(prompts))
        self.seen += prompts
        return [self.rule(p) for p in prompts]


def _good_first(prompt):  # a content judge: prefers GOOD wherever it is shown
    if prompt.index(GOOD) < prompt.index(BAD):
        return "<preference>A</preference>"
    return "<think>x</think><preference>B</preference>"


def _client(backend, **cfg):
    return TestClient(create_app(backend, ServeConfig(**cfg), TOKEN))


def test_pairwise_rewards_both_orders_and_failures(tok):
    pair = {"prompt": "How do I bake bread?", "a": GOOD, "b": BAD}
    for both, rule, expect in [(False, _good_first, 1.0), (True, _good_first, 1.0),
                               (True, lambda p: "<preference>A</preference>", 0.5),  # position bias cancels
                               (False, lambda p: "<preference>tie</preference>", 0.5)]:
        with _client(JudgeBackend(Script(rule), tok, "pairwise", both_orders=both)) as client:
            out = client.post("/compare", json={"pairs": [pair, {**pair, "a": BAD, "b": GOOD}]}, headers=AUTH).json()
        flipped = expect if rule is not _good_first else 1 - expect
        assert out["p_a_better"] == [expect, flipped] and out["rewards_a"] == [expect, flipped]
        assert out["rewards_b"] == [1 - expect, 1 - flipped] and out["parse_ok"] == [True, True]
        assert [len(j) for j in out["judgements"]] == [2 if both else 1] * 2
    # a failure in either order: null reward (or the configured one), parse_ok false, never a 500
    half = Script(lambda p: "<preference>A</preference>" if p.index(GOOD) < p.index(BAD) else "I think A")
    with _client(JudgeBackend(half, tok, "pairwise", both_orders=True)) as client:
        r = client.post("/compare", json={"pairs": [pair]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["p_a_better"] == [None] and r.json()["rewards_a"] == [None]
    assert r.json()["parse_ok"] == [False]
    assert [j["status"] for j in r.json()["judgements"][0]] == ["ok", "missing_tag"]
    with _client(JudgeBackend(half, tok, "pairwise", both_orders=True, failure_reward=0.0)) as client:
        out = client.post("/compare", json={"pairs": [pair]}, headers=AUTH).json()
    assert out["rewards_a"] == [0.0] and out["rewards_b"] == [0.0] and out["p_a_better"] == [None]


def test_pairwise_refuses_single_responses(tok):
    with _client(JudgeBackend(Script(_good_first), tok, "pairwise")) as client:
        r = client.post("/score", json={"items": [{"prompt": "hi", "response": "hello"}]}, headers=AUTH)
        assert r.status_code == 422 and "items[0]: a pairwise judge compares exactly two" in r.json()["detail"]
        r = client.post("/get_reward", json={"query": ["hi hello"]}, headers=AUTH)
        assert r.status_code == 422 and "use /compare" in r.json()["detail"]
        r = client.post("/rank", json={"prompt": "hi", "candidates": ["a", "b", "c"]}, headers=AUTH)
        assert r.status_code == 422 and "got 3" in r.json()["detail"]
        assert client.get("/health").status_code == 200  # still serving


def _score_by_length(prompt):
    answer = prompt.split("[Response to evaluate]\n")[1].split("\n")[0]
    return {GOOD: "<score>3</score>", BAD: "<score>1</score>", "loud": "<score>9</score>"}.get(answer, "nope")


def test_pointwise_scores_normalisation_rank_and_failures(tok):
    script = Script(_score_by_length)
    backend = JudgeBackend(script, tok, "pointwise", scale=(0, 4))
    assert "[Response to evaluate]\n{response}\n" in backend.template.text  # the layout the rule reads
    with _client(backend, normalize=True) as client:
        out = client.post("/score", json={"items": [{"prompt": "q", "response": r} for r in (GOOD, BAD, "loud")]},
                          headers=AUTH).json()
        assert out["rewards"] == [3.0, 1.0, None] and out["normalized_rewards"] == [0.75, 0.25, None]
        assert out["parse_ok"] == [True, True, False]
        assert out["judgements"][2][0]["status"] == "out_of_range" and out["judgements"][2][0]["verdict"] == 9.0
        ranked = client.post("/rank", json={"prompt": "q", "candidates": ["loud", BAD, GOOD]}, headers=AUTH).json()
        assert ranked["order"] == [2, 1, 0] and ranked["ranks"] == [3, 2, 1] and ranked["parse_ok"] is False
        cmp = client.post("/compare", json={"pairs": [{"prompt": "q", "a": BAD, "b": GOOD}]}, headers=AUTH).json()
        assert cmp["p_a_better"] == [0.0] and cmp["rewards_a"] == [1.0]
        got = client.post("/get_reward", json={"query": [f"q{GOOD}"], "prompts": ["q"]}, headers=AUTH).json()
        assert got["rewards"] == [0.75] and got["raw_rewards"] == [3.0] and got["normalized"] is True
        info = client.get("/info", headers=AUTH).json()
    assert info["backend"] == "judge" and info["normalization"]["std"] == 4.0 and info["scale"] == [0, 4]


def test_grader_over_a_judge(tok):
    from rmforge.serve import RewardModelGrader

    grader = RewardModelGrader(JudgeBackend(Script(_score_by_length), tok, "pointwise", scale=(0, 4)),
                               normalize=True)
    assert grader(prompts=["q", "q", "q"], completions=[GOOD, BAD, "loud"]) == [0.75, 0.25, None]


def test_jobs_share_one_generation_call_and_duplicates_generate_once(tok):
    from rmforge.serve.backend import Group, ItemError

    script = Script(_score_by_length)
    backend = JudgeBackend(script, tok, "pointwise", scale=(0, 4))
    job = [Group(_user("q"), [_bot(GOOD), _bot(BAD)])]
    out = backend.run([job, job, [Group(_user("q"), [_bot(GOOD)] * 3)]])
    assert script.calls == [2] and [j.rewards for j in out[2]] == [[3.0, 3.0, 3.0]]
    assert out[0][0].p_a_better == 1.0
    pair = JudgeBackend(Script(_good_first), tok, "pairwise")
    bad = pair.run([[Group(_user("q"), [_bot("x")])], [Group(_user("q"), [_bot(GOOD), _bot(BAD)])]])
    assert isinstance(bad[0], ItemError) and bad[0].status == 422 and len(bad[1]) == 1


def test_auth_limits_and_validation(tok):
    backend = JudgeBackend(Script(_good_first), tok, "pairwise", max_prompt_tokens=400)
    pair = {"prompt": "q", "a": GOOD, "b": BAD}
    with _client(backend, max_items=4, max_body_bytes=4096) as client:
        assert client.post("/compare", json={"pairs": [pair]}).status_code == 401
        wrong = {"Authorization": "Bearer no"}
        assert client.post("/compare", json={"pairs": [pair]}, headers=wrong).status_code == 403
        r = client.post("/compare", json={"pairs": [pair] * 3}, headers=AUTH)  # 6 responses > 4
        assert r.status_code == 413 and "limit is 4" in r.json()["detail"]
        r = client.post("/compare", json={"pairs": [{**pair, "a": "word " * 600}]}, headers=AUTH)
        assert r.status_code == 413 and r.json()["detail"].startswith("pairs[0]: the judge prompt has")
        r = client.post("/compare", json={"pairs": [{**pair, "b": " "}]}, headers=AUTH)
        assert r.status_code == 422 and "the response is empty" in r.text
        assert client.post("/compare", json={"pairs": [pair]}, headers=AUTH).status_code == 200


def test_settings_errors(tok):
    with pytest.raises(ConfigError, match="needs its score scale"):
        JudgeBackend(Script(str), tok, "pointwise")
    with pytest.raises(ConfigError, match="rubric"):
        from rmforge.judge.templates import load_template

        JudgeBackend(Script(str), tok, "pairwise", template=load_template("pairwise-rubric", "pairwise"))
    with pytest.raises(ConfigError, match="pointwise or pairwise"):
        JudgeBackend(Script(str), tok, "listwise")
    assert pick_generator("auto", "cpu") == "local"
    with pytest.raises(ConfigError, match="needs the vllm package and a CUDA device"):
        pick_generator("vllm", "cpu")


# ------------------------------------------------------------------ run settings and --kind auto
def test_run_settings_and_detection(tmp_path, tiny, bert_dir, run_dir):
    import shutil

    judge_run = tmp_path / "judge-run"
    shutil.copytree(tiny, judge_run)  # the layout save_final writes: model + config.yaml + manifest.json
    (judge_run / "config.yaml").write_text("kind: train-judge\nmode: pointwise\ndata:\n  scale: [1, 5]\n"
                                           "  template: pointwise-think\nmodel_options:\n  enable_thinking: false\n")
    (judge_run / "manifest.json").write_text(json.dumps({"kind": "train-judge", "mode": "pointwise"}))
    saved = run_settings(str(judge_run))
    assert (saved["mode"], saved["scale"], saved["template"], saved["enable_thinking"]) == \
        ("pointwise", (1, 5), "pointwise-think", False)
    assert detect_kind(str(judge_run)) == "judge" and detect_kind(str(tiny)) == "judge"
    assert detect_kind(str(bert_dir)) == "scalar" and detect_kind(str(run_dir)) == "scalar"
    backend = JudgeBackend.load(str(judge_run), max_new_tokens=2, device="cpu")
    assert (backend.mode, backend.scale, backend.template.source) == ("pointwise", (1, 5), "'pointwise-think'")
    assert JudgeBackend.load(str(judge_run), mode="pairwise", max_new_tokens=2, device="cpu").mode == "pairwise"


# ------------------------------------------------------------------ a real server process
def test_real_process(tiny, serve_process):
    with serve_process(tiny, "--port", "0", "--token", TOKEN, "--both-orders", "--max-new-tokens", "4",
                       "--failure-reward", "0", "--max-wait-ms", "1") as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as http:
            assert http.get("/health").json()["status"] == "ok"
            assert http.post("/compare", json={"pairs": [{"a": GOOD, "b": BAD}]}).status_code == 401
            out = http.post("/compare", json={"pairs": [{"prompt": "q", "a": GOOD, "b": BAD}]}, headers=AUTH)
            assert out.status_code == 200 and out.json()["rewards_a"][0] in (0.0, 0.5, 1.0)
            assert [j["order"] for j in out.json()["judgements"][0]] == ["AB", "BA"]
            assert http.post("/score", json={"items": [{"response": "x"}]}, headers=AUTH).status_code == 422
            info = http.get("/info", headers=AUTH).json()
            assert (info["backend"], info["mode"], info["generator"]) == ("judge", "pairwise", "local")
            assert http.post("/compare", content=b"{oops", headers=AUTH).status_code == 422
        assert srv.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained


@pytest.mark.parametrize("extra,message", [
    (["--kind", "bogus"], "--kind must be auto, scalar or judge"),
    (["--scale", "zero-four"], "--scale must be MIN,MAX"),
    (["--mode", "pointwise"], "needs its score scale: --scale MIN,MAX"),
    (["--thinking", "maybe"], "--thinking must be true or false"),
])
def test_cli_judge_options_refused(tiny, extra, message):
    from typer.testing import CliRunner

    from rmforge.cli import app

    result = CliRunner().invoke(app, ["serve", str(tiny), "--no-auth", *extra])
    assert result.exit_code == 1 and message in result.output, result.output


def test_a_job_that_cannot_be_encoded_never_reaches_the_shared_generation(tok):
    """A lone surrogate that got past the schema (model_construct): its job gets a 422 ItemError, the
    generator never sees it, and the other jobs of the step are judged as when alone."""
    from rmforge.serve.backend import Group, ItemError, TextItem

    script = Script(_score_by_length)
    backend = JudgeBackend(script, tok, "pointwise", scale=(0, 4))
    bad = Message.model_construct(role="user", content="x\ud800", reasoning=None, tool_calls=None, name=None)
    good = [Group(_user("q"), [_bot(GOOD), _bot(BAD)])]
    alone = backend.run([good])[0]
    out = backend.run([good, [Group(_user("q"), [_bot(GOOD)]), Group([bad], [_bot(GOOD)])], [TextItem("y\udfff")]])
    assert [j.rewards for j in out[0]] == [j.rewards for j in alone]
    for job, index in ((out[1], 1), (out[2], 0)):
        assert isinstance(job, ItemError) and (job.status, job.index) == (422, index)
        assert "lone surrogate" in job.reason
    assert all("\ud800" not in p and "\udfff" not in p for p in script.seen)
