from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="The Custom Reports API: metrics by any dimension, token timelines.",
                  no_args_is_help=True)
out = Console()


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", metavar="ADDRESS", help="Address to listen on."),
    port: int = typer.Option(8090, metavar="PORT", help="Port to listen on."),
) -> None:
    """Run the reports API (HTTP, OpenAPI at /docs) on the configured warehouse: DuckDB's read
    replica, PostgreSQL or Snowflake. Keys: TOKENWATCH_REPORT_KEYS."""
    import uvicorn

    uvicorn.run("reporting.api.server:app_from_env", factory=True, host=host, port=port,
                access_log=False)


@app.command("metrics")
def metrics_cmd() -> None:
    """List the metrics the API answers: name, unit, type, dimensions."""
    from ingestion.warehouse import target_name
    from reporting import semantic

    table = Table("metric", "unit", "type", "dimensions", "description")
    for info in semantic.for_engine(target_name()).metrics().values():
        table.add_row(info.name, info.unit, info.type, escape(", ".join(info.dimensions)),
                      escape(info.description.splitlines()[0] if info.description else ""))
    out.print(table)
