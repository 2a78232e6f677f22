from __future__ import annotations

import contextlib
import logging

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Datadog: push the dashboards and monitors, check the API key.",
                  no_args_is_help=True)
out = Console()


def _quiet() -> None:
    """The package logs every request at INFO: the table says it better."""
    logging.getLogger("datadog.api").setLevel(logging.WARNING)


def _masked(key: str | None) -> str:
    return "not set" if not key else f"...{key[-4:]}" if len(key) > 8 else "***"


@app.command("push")
def push_cmd() -> None:
    """Create or update the dashboards and monitors of reporting/datadog (never
    duplicates: ours are found by title and a managed-by marker)."""
    from reporting.datadog.as_code import push
    from reporting.datadog.client import resolve

    _quiet()
    target = resolve()
    with (out.status(f"pushing to {target.options['api_host']}") if out.is_terminal
          else contextlib.nullcontext()):
        pushed = push(target.options)
    table = Table("kind", "title", "action", "id")
    colour = {"created": "green", "updated": "yellow", "unchanged": "dim"}
    for item in pushed:
        table.add_row(item.kind, escape(item.title), f"[{colour[item.action]}]{item.action}[/]",
                      str(item.id))
    out.print(table)
    counts = {a: sum(p.action == a for p in pushed) for a in colour}
    out.print(", ".join(f"{n} {a}" for a, n in counts.items()))
    out.print(escape(f"at {target.options['api_host']} ({target.source})"))


@app.command("check")
def check_cmd() -> None:
    """Show where Datadog calls go and validate the API key there (exit 1 if rejected)."""
    import httpx

    from reporting.datadog.client import resolve

    target = resolve()
    options = target.options
    table = Table(show_header=False)
    table.add_row("target", escape(target.source))
    table.add_row("API", escape(options["api_host"]))
    table.add_row("API key", _masked(options.get("api_key")))
    table.add_row("application key", _masked(options.get("app_key")))
    out.print(table)
    try:
        resp = httpx.get(f"{options['api_host']}/api/v1/validate", timeout=10,
                         headers={"DD-API-KEY": options["api_key"]})
    except httpx.HTTPError as exc:
        raise RuntimeError(f"{options['api_host']} is unreachable: {exc}") from exc
    if resp.status_code == 200 and resp.json().get("valid") is True:
        out.print("[green]API key valid[/]")
        return
    out.print(f"[red]API key rejected[/]: {resp.status_code} {escape(resp.text[:200])}")
    raise typer.Exit(1)
