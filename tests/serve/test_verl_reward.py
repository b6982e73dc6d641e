"""verl Reward Loop adapter (rmforge.serve.verl_reward): rewards equal ``/score`` on a real uvicorn server,
micro-batching, retries with backoff on 5xx / connection errors, timeouts, no retry on 4xx; and, where
verl is installed, verl's own config composition, validation and reward-function loading."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import numpy as np
import pytest

from rmforge.errors import RmforgeError
from rmforge.serve.client import ServeError
from rmforge.serve.verl_reward import RewardServerError, batcher_for, compute_score, Settings

TOKEN = "verl-t0ken"
PROMPTS = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}],
           [{"role": "user", "content": "Name a colour."}], "Say hi.", [{"role": "user", "content": "Why?"}]]
RESPONSES = ["4", "Blue, like the sky.", "hi there", "Because."]


@pytest.fixture(scope="module")
def server(run_dir):
    """``rmforge serve``'s app on the tiny trained llama run, under uvicorn in a thread (real HTTP)."""
    import uvicorn

    from rmforge.serve.app import create_app
    from rmforge.serve.backend import ScalarBackend
    from rmforge.serve.config import ServeConfig

    backend = ScalarBackend.load(str(run_dir), device="cpu")
    app = create_app(backend, ServeConfig(max_wait_ms=1), TOKEN)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
    srv.should_exit = True
    thread.join(30)


def _score_endpoint(url, prompts, responses):
    body = {"items": [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]}
    resp = httpx.post(f"{url}/score", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    resp.raise_for_status()
    return resp.json()


def _extra(prompt):
    return {"split": "test", "index": 0, "prompt": prompt}


async def _gather(n_calls, **kw):
    """``n_calls`` concurrent compute_score calls, the way verl's RewardLoopWorker.compute_score_batch
    runs a chunk (asyncio.gather of one task per sample); returns (results, the loop's batcher)."""
    calls = [compute_score("src", RESPONSES[i % 4], None, _extra(PROMPTS[i % 4]), **kw) for i in range(n_calls)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    settings = Settings.from_kwargs({k: v for k, v in kw.items() if k != "transport"})
    return results, batcher_for(settings)


def test_rewards_equal_score_endpoint_and_batch(server):
    expected = _score_endpoint(server, PROMPTS, RESPONSES)
    results, batcher = asyncio.run(_gather(4, url=server, token=TOKEN))
    assert [r["score"] for r in results] == expected["rewards"]  # exactly: same template, same encoding
    assert [r["raw_reward"] for r in results] == expected["rewards"] and all(r["empty"] == 0.0 for r in results)
    assert batcher.requests == 1  # four concurrent calls, one HTTP request
    results, _ = asyncio.run(_gather(4, url=server, token=TOKEN, normalized=True))
    assert [r["score"] for r in results] == expected["normalized_rewards"]
    assert [r["raw_reward"] for r in results] == expected["rewards"]


def test_prompt_forms_env_settings_and_empty_response(server, monkeypatch):
    monkeypatch.setenv("RMFORGE_SERVE_URL", server)
    monkeypatch.setenv("RMFORGE_SERVE_TOKEN", TOKEN)
    want = _score_endpoint(server, [PROMPTS[1], "Say hi."], ["Blue, like the sky.", "hi there"])["rewards"]

    async def run():
        # parquet list columns reach verl's reward function as numpy arrays of dicts
        as_array = await compute_score("s", "Blue, like the sky.", None, {"prompt": np.array(PROMPTS[1], dtype=object)})
        question = await compute_score("s", "hi there", None, {"question": "Say hi."})  # verl's examples' key
        empty = await compute_score("s", "  ", None, {"prompt": "Say hi."}, empty_reward=-3)
        return as_array, question, empty, batcher_for(Settings.from_kwargs({}))

    as_array, question, empty, batcher = asyncio.run(run())
    # separate requests pack differently from the joint one: equal to float32 round-off, not bit for bit
    assert [as_array["score"], question["score"]] == pytest.approx(want, rel=0, abs=1e-6)
    assert empty == {"score": -3.0, "raw_reward": None, "empty": 1.0}
    assert batcher.requests == 2  # the empty response was not sent


def test_bad_settings_and_missing_prompt_are_clear_errors(monkeypatch):
    monkeypatch.delenv("RMFORGE_SERVE_URL", raising=False)
    with pytest.raises(RmforgeError, match="no server URL; set RMFORGE_SERVE_URL or "
                                           "reward.custom_reward_function.reward_kwargs.url"):
        asyncio.run(compute_score("s", "x", None, {"prompt": "p"}))
    with pytest.raises(RmforgeError, match="unknown setting.s. timout_s"):
        asyncio.run(compute_score("s", "x", None, {"prompt": "p"}, url="http://h", timout_s=3))
    with pytest.raises(RmforgeError, match="extra_info has no prompt .looked for prompt, messages, raw_prompt, "
                                           "question.; copy the dataset's prompt messages into extra_info.prompt"):
        asyncio.run(compute_score("s", "x", None, {"index": 3}, url="http://h"))
    # verl's own extra keyword arguments (reward-model router) are accepted and ignored
    Settings.from_kwargs({"url": "http://h", "reward_router_address": None, "reward_model_tokenizer": None})


class Recorder(httpx.AsyncBaseTransport):
    """A stand-in server: ``answers`` is a list of callables (items -> httpx.Response or an exception to
    raise), used in turn, the last one repeated; records the item count of every request."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    async def handle_async_request(self, request):
        items = json.loads(request.content)["items"]
        self.calls.append(len(items))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1](items)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(items):
    return httpx.Response(200, json={"rewards": [float(len(it["response"])) for it in items],
                                     "normalized_rewards": None})


def status(code, headers=None):
    return lambda items: httpx.Response(code, json={"detail": f"status {code}"}, headers=headers or {})


FAST = {"url": "http://rm.test", "backoff_s": 0.01, "max_backoff_s": 0.05}


def test_concurrent_calls_share_requests_up_to_max_batch():
    fake = Recorder(ok)
    results, batcher = asyncio.run(_gather(10, transport=fake, max_batch=4, **FAST))
    assert fake.calls == [4, 4, 2] and batcher.requests == 3
    assert [r["score"] for r in results] == [float(len(RESPONSES[i % 4])) for i in range(10)]


def test_503_and_connection_errors_are_retried_with_backoff():
    fake = Recorder(status(503, {"Retry-After": "1"}), lambda items: httpx.ConnectError("refused"), ok)
    t0 = time.perf_counter()
    results, batcher = asyncio.run(_gather(3, transport=fake, **FAST))
    assert fake.calls == [3, 3, 3] and [r["score"] for r in results] == [1.0, 19.0, 8.0]
    assert time.perf_counter() - t0 >= 0.05 + 0.02  # Retry-After capped at max_backoff_s, then 2 x backoff_s
    fake = Recorder(status(500))
    results, _ = asyncio.run(_gather(2, transport=fake, retries=2, **FAST))
    assert fake.calls == [2, 2, 2]
    assert all(isinstance(r, RewardServerError) for r in results)
    assert str(results[0]) == "rmforge serve at http://rm.test failed 3 time(s) (retries=2): HTTP 500: status 500"


def test_4xx_is_not_retried_and_fails_only_the_offending_item():
    fake = Recorder(status(401))
    results, _ = asyncio.run(_gather(3, transport=fake, **FAST))
    assert fake.calls == [3]  # no retry, no per-item resend for an auth failure
    assert all(isinstance(r, ServeError) and r.status == 401 for r in results)
    fake = Recorder(status(404))  # a wrong URL is not about an item: no per-item resend (it sent 1 + N requests)
    results, _ = asyncio.run(_gather(3, transport=fake, **FAST))
    assert fake.calls == [3] and all(isinstance(r, ServeError) and r.status == 404 for r in results)

    def refuse_why(items):  # 422 for any request holding the "Why?" prompt, as the server names a bad item
        bad = any(it["prompt"][-1]["content"] == "Why?" for it in items)
        return status(422)(items) if bad else ok(items)

    fake = Recorder(refuse_why)
    results, _ = asyncio.run(_gather(4, transport=fake, **FAST))
    assert fake.calls == [4, 1, 1, 1, 1]  # the batch once, then each item alone; never a retry
    assert [r["score"] for r in results[:3]] == [1.0, 19.0, 8.0]
    assert isinstance(results[3], ServeError) and results[3].status == 422 and "status 422" in str(results[3])


def test_timeout_is_a_clear_error():
    async def run():
        async def hang(reader, writer):  # reads the request, never answers
            await reader.read(1 << 16)
            await asyncio.sleep(5)

        srv = await asyncio.start_server(hang, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        try:
            t0 = time.perf_counter()
            with pytest.raises(RewardServerError) as err:
                await compute_score("s", "x", None, {"prompt": "p"}, url=url, timeout_s=0.2, retries=1,
                                    backoff_s=0.01)
            return str(err.value), time.perf_counter() - t0, url
        finally:
            srv.close()

    message, seconds, url = asyncio.run(run())
    assert message == f"rmforge serve at {url} failed 2 time(s) (retries=1): no answer within timeout_s=0.2 s"
    assert 0.35 <= seconds < 3  # two attempts of 0.2 s


def test_verl_loads_and_awaits_the_adapter(server, tmp_path):
    """verl's own path: compose ppo_trainer with the documented overrides, validate_config, load the function
    with get_custom_reward_fn (it wraps coroutine functions for the reward loop) and await it."""
    pytest.importorskip("verl")
    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    import rmforge.serve.verl_reward as adapter

    base = ["algorithm.adv_estimator=grpo", "actor_rollout_ref.model.path=/models/policy",
                 "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.n=2",
                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                 "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
                 "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
                 "reward.custom_reward_function.name=compute_score",
                 f"+reward.custom_reward_function.reward_kwargs.url={server}",
                 f"+reward.custom_reward_function.reward_kwargs.token={TOKEN}"]
    want = _score_endpoint(server, PROMPTS[:1], RESPONSES[:1])["rewards"][0]
    for path in ("pkg://rmforge.serve.verl_reward", adapter.__file__):  # the package module, or the file
        with initialize_config_dir(config_dir=f"{verl.__path__[0]}/trainer/config", version_base=None):
            config = compose(config_name="ppo_trainer", overrides=[*base, f"reward.custom_reward_function.path={path}"])
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
        fn = get_custom_reward_fn(config)
        result = asyncio.run(fn(data_source="s", solution_str=RESPONSES[0], ground_truth=None,
                                extra_info=_extra(PROMPTS[0])))
        assert result["score"] == want, path


def test_verl_reward_loop_scores_a_chunk_in_one_request(server, run_dir):
    """verl's NaiveRewardManager.run_single on each sample of a chunk, gathered as RewardLoopWorker.
    compute_score_batch does: the rewards are /score's for the decoded responses, in one HTTP request."""
    pytest.importorskip("verl")
    import torch
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    from rmforge.serve.verl_reward import compute_score as adapter_fn

    tok = AutoTokenizer.from_pretrained(str(run_dir))
    ids = [tok(r, add_special_tokens=False)["input_ids"] for r in RESPONSES]
    width = max(map(len, ids)) + 2
    responses = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x in ids])
    prompts = torch.zeros((len(ids), 3), dtype=torch.long)
    mask = torch.cat([torch.ones_like(prompts), torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])], 1)
    data = DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask},
        non_tensors={"data_source": np.array(["rm"] * 4, dtype=object),
                     "reward_model": np.array([{"ground_truth": ""}] * 4, dtype=object),
                     "extra_info": np.array([_extra(p) for p in PROMPTS], dtype=object)})

    async def chunk():
        async def fn(**kw):
            return await adapter_fn(**kw, url=server, token=TOKEN)

        manager = NaiveRewardManager(None, tok, fn)
        out = await asyncio.gather(*(manager.run_single(data[i:i + 1]) for i in range(len(data))))
        return out, batcher_for(Settings.from_kwargs({"url": server, "token": TOKEN}))

    out, batcher = asyncio.run(chunk())
    decoded = [tok.decode(x, skip_special_tokens=True) for x in ids]
    assert [o["reward_score"] for o in out] == _score_endpoint(server, PROMPTS, decoded)["rewards"]
    assert set(out[0]["reward_extra_info"]) == {"score", "raw_reward", "empty"} and batcher.requests == 1
