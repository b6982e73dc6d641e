"""Run an app under uvicorn and announce ``serving on http://HOST:PORT`` once it listens.

Port 0 picks a free port (the announced one is the real one). SIGTERM/SIGINT stop accepting
connections, let in-flight requests finish (at most ``graceful_s``), then drain the batcher.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import uvicorn


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str, int], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            port = self.servers[0].sockets[0].getsockname()[1]
            self._on_ready(self.config.host, port)


def announce(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"serving on http://{shown}:{port}\n")
    sys.stdout.flush()


def run_server(app: Any, host: str = "127.0.0.1", port: int = 8000, *, graceful_s: float = 30.0,
               on_ready: Callable[[str, int], None] = announce, log_level: str = "warning") -> None:
    """Serve until SIGTERM/SIGINT (uvicorn logs go to stderr; no access log)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=graceful_s, timeout_keep_alive=30)
    _Server(config, on_ready).run()
