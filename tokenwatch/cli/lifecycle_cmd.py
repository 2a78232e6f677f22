from __future__ import annotations

import json

import typer

app = typer.Typer(help="The token lifecycle state machine.", no_args_is_help=True)


@app.command("show")
def show_cmd() -> None:
    """Print the lifecycle (states, transitions, vocabularies) as JSON."""
    from state_service.lifecycle import as_dict

    typer.echo(json.dumps(as_dict(), indent=2))


@app.command("seed")
def seed_cmd(check: bool = typer.Option(False, "--check",
                                        help="Write nothing; exit 1 when a seed is stale.")
             ) -> None:
    """Write the dbt seeds generated from the Python definitions: the lifecycle (states,
    transitions, reason codes, enums) from lifecycle.py, the wallets from tokenwatch/wallets.py."""
    import runpy

    from tokenwatch import config

    script = config.project_root() / "dbt_project" / "generate_seeds.py"
    main = runpy.run_path(str(script))["main"]
    raise typer.Exit(main(["--check"] if check else []))
