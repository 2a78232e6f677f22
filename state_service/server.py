"""Running the state service: from the environment (``tokenwatch serve``) or in a thread."""

from __future__ import annotations

import threading
import time
from typing import Self

import httpx
import uvicorn
from fastapi import FastAPI

from state_service import roles
from state_service.app import create_app
from state_service.migrate import migrate
from tokenwatch import config
from tokenwatch.ports import free_port
from tokenwatch.postgres import ensure_database, resolve_server


def dsn_from_env() -> str:
    """The state service's database as the admin (the owner of what migrations create):
    resolved (see ``tokenwatch.postgres``), created if new. For migrations; the service
    and the readers connect with their roles (``service_dsn_from_env``, ``reader_dsn_from_env``).
    """
    server = resolve_server()
    return ensure_database(server) if server.source != "env" else server.dsn_for()


def service_dsn_from_env() -> str:
    """How the state service connects: ``TOKENWATCH_SERVICE_PG_DSN`` when set, else the admin
    DSN with the ``tokenwatch_service`` role (``state_service.roles``)."""
    return roles.dsn_for(roles.SERVICE, dsn_from_env)


def reader_dsn_from_env() -> str:
    """How readers (ingestion, the gate, ``tokenwatch audit verify``) connect:
    ``TOKENWATCH_READER_PG_DSN`` when set, else the admin DSN with ``tokenwatch_reader``."""
    return roles.dsn_for(roles.READER, dsn_from_env)


def admin_dsn_available() -> bool:
    """Whether migrations can run here: the admin's DSN is configured (TOKENWATCH_PG_DSN), or
    the service has no DSN of its own and the admin is resolved locally. A deployment that
    gives the service only TOKENWATCH_SERVICE_PG_DSN leaves migrations to
    ``tokenwatch db migrate`` run by the admin."""
    settings = config.settings()
    return bool(settings.pg_dsn or not roles.explicit_dsn(roles.SERVICE, settings))


def migrate_if_admin() -> bool:
    """Migrate (as the admin) when ``admin_dsn_available``; True if it ran."""
    if not admin_dsn_available():
        return False
    migrate(dsn_from_env())
    return True


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (one per worker process): the service under its role.
    It runs no migrations (the service role may not): ``tokenwatch serve`` runs them first."""
    return create_app(service_dsn_from_env(), run_migrations=False)


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
