"""`tokenwatch stack up | down | status` with real processes: moto's server and the intake."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import httpx
import psutil
from psycopg.conninfo import conninfo_to_dict

from reporting.datadog import as_code, client
from reporting.datadog.events import publication_done
from reporting.datadog.series import KpiPoint, publish
from sandbox import stack as stack_mod
from sandbox.intake import read_records

DAY = 1767225600  # 2026-01-01T00:00:00Z


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((parts.hostname, parts.port)) == 0


def test_up_down_twice_leaves_nothing_running(monkeypatch, tmp_path, pg_dsn):
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENWATCH_PG_DSN", pg_dsn)
    monkeypatch.setenv("TOKENWATCH_STREAM_SHARDS", "2")
    for _ in range(2):
        stack = stack_mod.up()
        assert stack_mod.up().processes == stack.processes  # up again reuses it
        assert set(stack_mod.health(stack).values()) == {"ok"}
        assert stack_mod.Stack.load() == stack
        shards = stack.kinesis_client().list_shards(StreamName="wallet-events")["Shards"]
        assert len(shards) == 2
        stack.s3_client().head_bucket(Bucket="tokenwatch-lake")
        urls = [stack.aws_endpoint, stack.intake_url]
        assert all(_port_open(u) for u in urls)

        stopped = stack_mod.down()
        assert len(stopped) == 2
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                       for pid in stack.processes.values())
        assert not any(_port_open(u) for u in urls)
        assert not (tmp_path / "stack.json").exists()
        assert stack_mod.down() == []  # down again: nothing to do


def test_cli_up_status_down(tmp_path, pg_dsn):
    env = os.environ | {"TOKENWATCH_HOME": str(tmp_path), "TOKENWATCH_PG_DSN": pg_dsn,
                        "TOKENWATCH_BUCKET": "other-lake"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "tokenwatch.cli", "stack", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    status = run("status")
    assert status.returncode == 1 and "tokenwatch stack up" in status.stdout
    try:
        assert run("up").returncode == 0
        saved = json.loads((tmp_path / "stack.json").read_text())
        assert saved["bucket"] == "other-lake"
        status = run("status")
        assert status.returncode == 0, status.stdout
        assert saved["intake_url"] in status.stdout and "s3://other-lake" in status.stdout
        # a dead component is reported and makes status fail
        psutil.Process(saved["processes"]["intake"]).kill()
        psutil.Process(saved["processes"]["intake"]).wait(10)
        status = run("status")
        assert status.returncode == 1 and "not running" in status.stdout
    finally:
        down = run("down")
    assert down.returncode == 0
    assert not _port_open(saved["aws_endpoint"])


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _objects(stack) -> tuple[list[dict], list[dict]]:
    headers = {"DD-API-KEY": stack.datadog_options()["api_key"]}
    dashboards = httpx.get(f"{stack.intake_url}/api/v1/dashboard", headers=headers, timeout=5)
    monitors = httpx.get(f"{stack.intake_url}/api/v1/monitor", headers=headers, timeout=5)
    return dashboards.json()["dashboards"], monitors.json()


def test_stack_file_is_private_and_keeps_no_password(monkeypatch, tmp_path, pg_dsn):
    password = "pw-" + uuid.uuid4().hex  # the server trusts 127.0.0.1: any password connects
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENWATCH_PG_DSN", f"{pg_dsn} password={password}")
    monkeypatch.setenv("TOKENWATCH_STREAM_SHARDS", "1")
    (tmp_path / "stack.tmp").write_text("left over")  # a leftover temp file, world-readable
    try:
        stack = stack_mod.up()
        path = tmp_path / "stack.json"
        assert _mode(path) == 0o600
        assert _mode(tmp_path) == 0o700  # the home: the warehouse's WAL and logs live there
        raw = path.read_text()
        assert password not in raw
        saved = json.loads(raw)
        assert "password" not in conninfo_to_dict(saved["pg_dsn"])
        assert conninfo_to_dict(saved["pg_dsn"])["dbname"] == conninfo_to_dict(pg_dsn)["dbname"]
        # readers take the password from the environment, as `stack up` did
        assert conninfo_to_dict(stack_mod.Stack.load().pg_dsn)["password"] == password
        assert stack_mod.Stack.load() == stack
        assert set(stack_mod.health(stack).values()) == {"ok"}
        # the intake's key is the fixed local one, not a secret kept in the file
        assert not any("key" in name for name in saved)
        assert stack.datadog_options()["api_key"] == stack_mod.LOCAL_DD_API_KEY
    finally:
        stack_mod.down()


def test_the_local_warehouse_file_is_private(monkeypatch, tmp_path):
    from ingestion.warehouse import duckdb_path, open_warehouse

    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.delenv("TOKENWATCH_DUCKDB_PATH", raising=False)
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    open_warehouse().close()
    assert duckdb_path() == tmp_path / "warehouse.duckdb"
    assert _mode(duckdb_path()) == 0o600
    os.chmod(duckdb_path(), 0o644)  # made by an older version: tightened on the next open
    open_warehouse(create=False).close()
    assert _mode(duckdb_path()) == 0o600


def test_a_restarted_stack_keeps_what_was_published(monkeypatch, tmp_path, pg_dsn):
    """Series, events, dashboards and monitors published through the project's client; then
    `stack down` and `stack up`: the new intake replays its records."""
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENWATCH_PG_DSN", pg_dsn)
    monkeypatch.setenv("TOKENWATCH_STREAM_SHARDS", "1")
    monkeypatch.setenv("TOKENWATCH_ENV", "local")
    monkeypatch.delenv(client.OVERRIDE, raising=False)
    point = KpiPoint("tokenwatch.provisioning.success_rate", 0.93, DAY,
                     ("env:prod", "wallet:apple_pay"))
    try:
        stack = stack_mod.up()
        options = client.datadog_options()  # found through stack.json
        result = publish([point], options)
        event = publication_done("2026-01-01", result, options, env="prod")
        pushed = as_code.push(options)
        assert {p.action for p in pushed} == {"created"}
        before = _objects(stack)
        series = read_records(stack.intake_records, "/api/v1/series")
        assert len(series) == 1

        stack_mod.down()
        again = stack_mod.up()
        assert again.processes["intake"] != stack.processes["intake"]
        assert set(stack_mod.health(again).values()) == {"ok"}
        assert _objects(again) == before  # the same dashboards and monitors, nothing more
        assert event["event"]["id"] not in [m["id"] for m in before[1]]
        assert read_records(again.intake_records, "/api/v1/series") == series
        # pushing again finds them all: nothing is created twice
        options = client.datadog_options()
        assert [(p.title, p.id, p.action) for p in as_code.push(options)] == [
            (p.title, p.id, "unchanged") for p in pushed]
        # a new object gets an id above every earlier one
        headers = {"DD-API-KEY": options["api_key"]}
        monitor = httpx.post(f"{again.intake_url}/api/v1/monitor", headers=headers, timeout=5,
                             json={"type": "metric alert", "name": "new", "query": "q"}).json()
        assert monitor["id"] == max(p.id for p in pushed if p.kind == "monitor") + 1
        dashboard = httpx.post(f"{again.intake_url}/api/v1/dashboard", headers=headers,
                               timeout=5, json={"title": "new", "layout_type": "ordered",
                                                "widgets": []}).json()
        assert dashboard["id"] > max(str(p.id) for p in pushed if p.kind == "dashboard")
    finally:
        stack_mod.down()
