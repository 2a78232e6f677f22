"""The one command line: every subcommand answers --help, errors are one readable line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "tokenwatch.cli"]


@pytest.mark.parametrize("args", [[], ["serve"], ["db"], ["db", "migrate"], ["db", "info"],
                                  ["audit"], ["audit", "verify"], ["lifecycle", "show"],
                                  ["lifecycle", "seed"], ["ingest"], ["datadog", "push"],
                                  ["demo"]])
def test_help_on_every_subcommand(args):
    r = subprocess.run(CLI + args + ["--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout


def test_db_migrate_and_verify_on_the_session_database(pg_dsn):
    env = os.environ | {"TOKENWATCH_PG_DSN": pg_dsn}
    r = subprocess.run(CLI + ["db", "migrate"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stderr


def test_bad_configuration_is_one_readable_line():
    env = os.environ | {"TOKENWATCH_PG_DSN": "host=127.0.0.1 port=1 dbname=x connect_timeout=1"}
    r = subprocess.run(CLI + ["db", "migrate"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("error: OperationalError:")
    assert "Traceback" not in r.stderr


def test_lifecycle_seeds_are_current():
    r = subprocess.run(CLI + ["lifecycle", "seed", "--check"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "match state_service/lifecycle.py" in r.stdout
