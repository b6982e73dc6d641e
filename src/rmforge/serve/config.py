"""Server settings (limits, batching, auth) as one typed config; the CLI builds it from its options."""

from __future__ import annotations

import ipaddress

from pydantic import Field

from rmforge.config import ConfigModel
from rmforge.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


class ServeConfig(ConfigModel):
    """Limits and batching of ``rmforge serve`` (defaults suit a small RM on CPU)."""

    max_batch_rows: int = Field(64, ge=1)
    """Most responses merged into one worker step (a larger single request still goes alone)."""
    max_wait_ms: float = Field(5.0, ge=0)
    """How long the batcher waits for more requests after the first one arrives."""
    dynamic_batching: bool = True
    """False: one forward per request, in arrival order (the naive baseline of bench/serve_load.py)."""
    max_queue_rows: int = Field(4096, ge=1)
    """Responses waiting in the queue beyond which new requests get 503 (the queue never grows past it)."""
    max_items: int = Field(1024, ge=1)
    """Most responses in one request (413 above it)."""
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Largest request body (413 above it)."""
    timeout_s: float = Field(60.0, gt=0)
    """Per-request limit on queueing + scoring (504 past it)."""
    normalize: bool = False
    """``/get_reward`` and the grader return normalised rewards ``(r - mean) / std`` (manifest statistics)."""


def check_auth(host: str, token: str | None, no_auth: bool) -> None:
    """Authentication is off only when asked for explicitly and the server listens on loopback."""
    if no_auth and token:
        raise ConfigError("give either --token or --no-auth, not both")
    if not no_auth and not token:
        raise ConfigError("a bearer token is required: --token TOKEN (or RMFORGE_SERVE_TOKEN), "
                          "or --no-auth on a loopback host")
    if no_auth and not is_loopback(host):
        raise ConfigError(f"--no-auth is only allowed on a loopback host (127.0.0.1, ::1, localhost), not '{host}'")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
