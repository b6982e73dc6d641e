"""Server settings (limits, batching, timeouts, auth) as one typed config; the CLI builds it from its options.

:class:`Access` is the authentication rule the ASGI guard applies to every request's headers before
its body is read: a bearer token, a client allow-list (``--allow-from CIDR``, checked against the TCP
peer address, never ``X-Forwarded-For``), both, or neither (``--no-auth``, loopback only).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass

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
    read_timeout_s: float = Field(30.0, gt=0)
    """A connection must send a complete request head within this many seconds of opening (or of its
    previous answer: idle keep-alive connections close too), and its whole body within as many
    seconds of the head (408 past it); a slow client is then disconnected."""
    max_connections: int = Field(256, ge=1)
    """Open connections (and running requests) beyond which uvicorn answers 503 (``limit_concurrency``)."""
    normalize: bool = False
    """``/get_reward`` and the grader return normalised rewards ``(r - mean) / std`` (manifest statistics)."""


def check_auth(host: str, token: str | None, no_auth: bool, allow_from: list[str] | tuple[str, ...] = ()) -> None:
    """Authentication is off only when asked for explicitly and the server listens on loopback."""
    if no_auth and token:
        raise ConfigError("give either --token or --no-auth, not both")
    if no_auth and allow_from:
        raise ConfigError("give either --allow-from or --no-auth, not both")
    if not no_auth and not token and not allow_from:
        raise ConfigError("a bearer token is required: --token TOKEN (or RMFORGE_SERVE_TOKEN), "
                          "--allow-from CIDR for clients that send no header, or --no-auth on a loopback host")
    if no_auth and not is_loopback(host):
        raise ConfigError(f"--no-auth is only allowed on a loopback host (127.0.0.1, ::1, localhost), not '{host}'")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: list[str] | tuple[str, ...] | None) -> tuple[Network, ...]:
    """``--allow-from`` values (``10.0.0.0/8``, ``192.168.1.7``, ``fd00::/8``) as networks; host bits
    are ignored (``10.1.2.3/8`` is ``10.0.0.0/8``); an IPv4-mapped IPv6 network (``::ffff:10.0.0.0/104``)
    is its IPv4 network (peers are compared as IPv4, :func:`peer_address`); a network holding every
    address (``::/0``, ``0.0.0.0/0``, ``::ffff:0:0/96``) is refused."""
    out = []
    for value in values or ():
        try:
            net = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"--allow-from {value!r} is not an IP address or network "
                              "(e.g. 10.0.0.0/8, 192.168.1.7, fd00::/8)") from None
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and \
                net.network_address.ipv4_mapped is not None:  # ::ffff:10.0.0.0/104: peers are compared as IPv4
            net = ipaddress.IPv4Network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
        if net.prefixlen == 0:
            raise ConfigError(f"--allow-from {value} admits every client: use --token, "
                              "or --no-auth on a loopback host")
        out.append(net)
    return tuple(out)


def peer_address(client: tuple | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The TCP peer of an ASGI scope (``scope["client"]``) as an address; IPv4-mapped IPv6 as IPv4."""
    if not client:
        return None
    try:
        addr = ipaddress.ip_address(str(client[0]).split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@dataclass(frozen=True)
class Access:
    """Who may call the protected endpoints: clients in ``allow_from`` (no header needed), then
    anyone sending ``Authorization: Bearer <token>``. Neither set: everyone (``--no-auth``)."""

    token: str | None = None
    allow_from: tuple[Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.token is not None or bool(self.allow_from)

    def check(self, client: tuple | None, authorization: bytes | None) -> tuple[int, str] | None:
        """None when the request may go on, else ``(status, detail)``: 401 no token, 403 wrong token
        or (allow-list only) a client outside the list."""
        if not self.enabled:
            return None
        addr = peer_address(client)
        if addr is not None and any(addr.version == net.version and addr in net for net in self.allow_from):
            return None
        if self.token is None:
            return 403, f"client address {addr if addr is not None else 'unknown'} is not allowed (--allow-from)"
        scheme, _, credentials = (authorization or b"").strip().partition(b" ")
        if scheme.lower() != b"bearer" or not credentials.strip():
            return 401, "missing bearer token (Authorization: Bearer TOKEN)"
        if not secrets.compare_digest(credentials.strip(), self.token.encode()):
            return 403, "invalid token"
        return None
