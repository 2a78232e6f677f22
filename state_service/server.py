"""Running the state service: from the environment (``tokenwatch serve``) or in a thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

import httpx
import uvicorn
from fastapi import FastAPI

from state_service.app import create_app
from state_service.database import ensure_database, resolve_server


def dsn_from_env() -> str:
    """The state service's database: resolved (see ``state_service.database``), created if new."""
    server = resolve_server()
    return ensure_database(server) if server.source != "env" else server.dsn_for()


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (one per worker process)."""
    return create_app(dsn_from_env())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceThread:
    """The service on a free loopback port in a background thread, speaking real HTTP."""

    def __init__(self, app: FastAPI, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                             access_log=False)
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name="tokenwatch-state-service")

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the state service did not start on {self.url} within 30 s")

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
