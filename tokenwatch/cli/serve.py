from __future__ import annotations

import os

import typer
import uvicorn


def serve(
    host: str = typer.Option("127.0.0.1", metavar="ADDRESS", help="Address to listen on."),
    port: int = typer.Option(8080, metavar="PORT", help="Port to listen on."),
    workers: int = typer.Option(
        0, min=0, metavar="N", help="Worker processes (0: one per core)."),
) -> None:
    """Run the state service (HTTP API) against the resolved PostgreSQL, as its role."""
    from state_service.server import migrate_if_admin

    # once, before the workers start (which connect as tokenwatch_service and cannot migrate)
    migrate_if_admin()
    uvicorn.run("state_service.server:app_from_env", factory=True, host=host, port=port,
                workers=workers or cores(), access_log=False, loop="uvloop", http="httptools")


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
