"""`tokenwatch stack up | down | status` with real processes: moto's server and the intake."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import psutil

from orchestration.local import stack as stack_mod


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
        assert set(stack.health().values()) == {"ok"}
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
        return subprocess.run([sys.executable, "-m", "orchestration.cli", "stack", *args],
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
