from __future__ import annotations

import typer
import uvicorn


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Run the state service (HTTP API) against the resolved PostgreSQL."""
    from state_service.migrate import migrate
    from state_service.server import dsn_from_env

    migrate(dsn_from_env())  # once, before the workers start
    uvicorn.run("state_service.server:app_from_env", factory=True, host=host, port=port,
                workers=workers, access_log=False)
