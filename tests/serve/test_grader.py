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
