from __future__ import annotations

import typer
import uvicorn


def serve(
    host: str = typer.Option("127.0.0.1", metavar="ADDRESS", help="Address to listen on."),
    port: int = typer.Option(8080, metavar="PORT", help="Port to listen on."),
    workers: int = typer.Option(1, min=1, metavar="N", help="Worker processes."),
) -> None:
    """Run the state service (HTTP API) against the resolved PostgreSQL, as its role."""
    from state_service.server import migrate_if_admin

    # once, before the workers start (which connect as tokenwatch_service and cannot migrate)
    migrate_if_admin()
    uvicorn.run("state_service.server:app_from_env", factory=True, host=host, port=port,
                workers=workers, access_log=False)
