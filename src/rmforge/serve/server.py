"""Run an app under uvicorn and announce ``serving on http://HOST:PORT`` once it listens.

Port 0 picks a free port (the announced one is the real one). SIGTERM/SIGINT stop accepting
connections, let in-flight requests finish (at most ``graceful_s``), drain the batcher, and return
normally (exit status 0: a graceful stop is a success; uvicorn itself re-raises the signal, 143).

Slow clients: a connection must send a complete request head within ``read_timeout_s`` of opening
(or of its previous answer, so idle keep-alive connections close too), else it is closed; the body
deadline (408) is the app's :class:`~rmforge.serve.app.Guard`. At most ``max_connections`` connections
or running requests (uvicorn ``limit_concurrency``: 503 beyond). ``scope["client"]`` is always the TCP
peer (``proxy_headers`` off), so ``--allow-from`` cannot be fooled by ``X-Forwarded-For``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from typing import Any, Callable

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str, int], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            port = self.servers[0].sockets[0].getsockname()[1]
            self._on_ready(self.config.host, port)

    @contextlib.contextmanager
    def capture_signals(self):
        """uvicorn's handlers, without re-raising the signal after the graceful stop (exit 0, not 143)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def head_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol that closes a connection whose request head is not complete within
    ``seconds`` of opening or of its previous answer (uvicorn alone waits forever for a first head)."""

    class _Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def connection_lost(self, exc) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _arm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(seconds, self._head_timeout)

        def _head_timeout(self) -> None:
            waiting_for_head = self.conn.their_state is h11.IDLE and (self.cycle is None or
                                                                     self.cycle.response_complete)
            if waiting_for_head and not self.transport.is_closing():
                self.timeout_keep_alive_handler()  # closes the connection

    return _Protocol


def default_threads() -> int:
    """torch CPU threads of a server without ``--threads``: half the CPUs this process may use, at least 1.
    The forward shares the machine with the event loop, tokenisation and HTTP work; a full-width thread
    pool stalls at every barrier once the CPU is oversubscribed (measurements in docs/serve.md)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


def announce(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"serving on http://{shown}:{port}\n")
    sys.stdout.flush()


def run_server(app: Any, host: str = "127.0.0.1", port: int = 8000, *, graceful_s: float = 30.0,
               read_timeout_s: float = 30.0, max_connections: int | None = 256,
               on_ready: Callable[[str, int], None] = announce, log_level: str = "warning") -> None:
    """Serve until SIGTERM/SIGINT (uvicorn logs go to stderr; no access log); returns after a graceful stop."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=graceful_s, timeout_keep_alive=max(1, int(read_timeout_s)),
                            http=head_timeout_protocol(read_timeout_s), limit_concurrency=max_connections,
                            proxy_headers=False)
    _Server(config, on_ready).run()
