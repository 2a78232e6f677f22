"""The command line as the ecosystem expects it: real metavars in every --help, a usage error
(exit 2, the option named) for every bad option value, JSON where a machine reads it, and no
spinner or colour code in redirected output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "tokenwatch.cli"]
#: typer's type placeholders (`<bool>`, `<str>`, `<int range>`, `<list[str]>`), not a range
#: such as `[2<=x<=31]`
PLACEHOLDER = re.compile(r"<[a-z][\w\[\] ,|]*>")
ANSI = re.compile(r"\x1b\[")


def _run(*args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"COLUMNS": "200"} | (env or {}))


def _commands() -> list[list[str]]:
    from tokenwatch.cli import command

    found = []

    def walk(cmd, path):
        found.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(command(), [])
    return found


def test_every_command_is_listed():
    commands = {" ".join(c) for c in _commands()}
    for name in ("", "serve", "db info", "db migrate", "audit verify", "audit checkpoint",
                 "lifecycle show", "lifecycle seed", "demo", "simulate", "stack up",
                 "stack down", "stack status", "ingest", "datadog push", "datadog check",
                 "reports serve", "reports metrics", "tableau extract", "tableau publish"):
        assert name in commands, name


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a) or "tokenwatch")
def test_help_has_real_metavars(args):
    r = _run(*args, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage: tokenwatch" in r.stdout
    assert not PLACEHOLDER.findall(r.stdout), PLACEHOLDER.findall(r.stdout)
    assert not ANSI.search(r.stdout)


def test_help_names_what_each_value_is():
    assert re.search(r"--target\s+-t\s+\[duckdb\|postgres\|snowflake\]",
                     _run("ingest", "--help").stdout)
    sim = _run("simulate", "--help").stdout
    assert re.search(r"--fault\s+NAME=RATE", sim) and re.search(r"--start\s+YYYY-MM-DD", sim)
    assert re.search(r"--tokens\s+N", sim)


@pytest.mark.parametrize(("args", "option"), [
    (["ingest", "--target", "bigquery"], "'--target'"),
    (["ingest", "--source", "kafka"], "'--source'"),
    (["simulate", "--fault", "retries=lots"], "'--fault'"),
    (["simulate", "--fault", "nonsense=0.1"], "'--fault'"),
    (["simulate", "--start", "2026-13-01"], "'--start'"),
    (["simulate", "--tokens", "0"], "'--tokens'"),
    (["demo", "--days", "1"], "'--days'"),
    (["serve", "--port", "eighty"], "'--port'"),
    (["audit", "verify", "--since", "x"], "'--since'"),
])
def test_a_bad_option_value_is_a_usage_error(args, option):
    r = _run(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert f"Invalid value for {option}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "ValueError" not in r.stderr


def test_a_bad_warehouse_in_the_environment_is_a_usage_error_too():
    r = _run("ingest", env={"TOKENWATCH_WAREHOUSE": "bigquery"})
    assert r.returncode == 2 and "TOKENWATCH_WAREHOUSE" in r.stderr, r.stderr


def test_db_info_says_which_server_and_why(pg_server):
    r = _run("db", "info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["source"] == pg_server.source and info["database"] == pg_server.database
    assert info["why"] and "password" not in r.stdout.lower()
    table = _run("db", "info")
    assert table.returncode == 0, table.stderr
    assert "chosen because" in table.stdout and info["why"][:40] in table.stdout
    assert "{'" not in table.stdout  # no Python dict


def test_db_info_with_a_dsn_says_so(pg_dsn):
    r = _run("db", "info", "--json", env={"TOKENWATCH_PG_DSN": pg_dsn})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["source"] == "env" and "TOKENWATCH_PG_DSN is set" in info["why"]


def test_stack_status_json(tmp_path):
    r = _run("stack", "status", "--json", env={"TOKENWATCH_HOME": str(tmp_path)})
    assert r.returncode == 1
    assert json.loads(r.stdout)["up"] is False


def test_stack_status_json_of_a_running_stack(local_stack):
    r = _run("stack", "status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    status = json.loads(r.stdout)
    assert status["up"] is True and status["aws_endpoint"] == local_stack.aws_endpoint
    assert set(status["health"].values()) == {"ok"}


def test_no_progress_display_in_redirected_output(local_stack, tmp_path):
    r = _run("ingest", env={"TOKENWATCH_WAREHOUSE": "duckdb",
                            "TOKENWATCH_DUCKDB_PATH": str(tmp_path / "cli.duckdb")})
    assert r.returncode == 0, r.stderr
    assert "ingested into duckdb" in r.stdout
    assert not ANSI.search(r.stdout + r.stderr)
    for spinner in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏":
        assert spinner not in r.stdout + r.stderr
