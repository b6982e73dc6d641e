"""Serving (issue 6): HTTP server with dynamic batching, clients, and the grader API.

``create_app(backend, cfg, token)`` builds the FastAPI app; ``ScalarBackend.load(model)`` loads a
run/model, ``JudgeBackend.load(model)`` a generative judge (verdicts parsed into rewards);
``RewardClient`` / ``AsyncRewardClient`` call a server; ``RewardModelGrader`` scores locally or over
HTTP and doubles as a TRL ``reward_funcs`` callable. See docs/serve.md.
"""

from rmforge.serve.backend import Group, ItemError, ScalarBackend, TextItem
from rmforge.serve.client import AsyncRewardClient, RewardClient, ServeError
from rmforge.serve.config import ServeConfig
from rmforge.serve.grader import GraderScore, RewardModelGrader
from rmforge.serve.judge_backend import JudgeBackend, Judged

__all__ = ["AsyncRewardClient", "GraderScore", "Group", "ItemError", "JudgeBackend", "Judged", "RewardClient",
           "RewardModelGrader", "ScalarBackend", "ServeConfig", "ServeError", "TextItem", "create_app"]


def create_app(*args, **kwargs):
    """See :func:`rmforge.serve.app.create_app` (imported lazily: FastAPI is only needed to serve)."""
    from rmforge.serve.app import create_app as _create

    return _create(*args, **kwargs)
