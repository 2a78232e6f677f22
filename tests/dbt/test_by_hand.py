"""dbt run by hand, as a user types it: from the repository root with ``--project-dir dbt_project
--profiles-dir dbt_project``, and from inside ``dbt_project/`` with ``--profiles-dir .``, in
either order. Both find the same DuckDB file (``<repo>/.tokenwatch/warehouse.duckdb`` by
default, whatever the current directory), and neither leaves a partial-parse cache that breaks
the other (it used to: a cache written with a relative ``--project-dir`` made every seed fail
inside ``dbt_project/``).

Each test runs the venv's ``dbt`` in subprocesses on a copy of the repository's dbt project
placed as in a checkout (``<tmp>/repo/dbt_project``), so its cache (``target/``) and its
default warehouse (``<tmp>/repo/.tokenwatch``) are the test's own, not the working tree's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.dbt.dbt_runner import PROJECT_DIR

DBT = str(Path(sys.executable).parent / "dbt")
FROM_ROOT = ("--project-dir", "dbt_project", "--profiles-dir", "dbt_project")
FROM_INSIDE = ("--profiles-dir", ".")
SEEDS = ("wallets", "reason_codes", "lifecycle_states", "lifecycle_transitions",
         "lifecycle_enums", "audit_exception_types")


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """``<tmp>/repo`` holding a copy of dbt_project/ (no target/, logs/ or packages)."""
    repo = tmp_path / "repo"
    shutil.copytree(PROJECT_DIR, repo / "dbt_project",
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml",
                                                  "__pycache__"))
    return repo


def _env(**settings: str) -> dict[str, str]:
    """The caller's environment without any of tokenwatch's or dbt's own settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOKENWATCH_", "DBT_"))}
    return env | {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **settings}


def dbt(repo: Path, where: str, command: str, env: dict[str, str]) -> None:
    cwd, flags = (repo, FROM_ROOT) if where == "root" else (repo / "dbt_project", FROM_INSIDE)
    r = subprocess.run([DBT, command, *flags], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"dbt {command} from {where} failed:\n{r.stdout[-4000:]}"


def seeded(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {s: con.execute(f"select count(*) from analytics_reference.{s}").fetchone()[0]
                for s in SEEDS}


def _only_warehouse(tmp_path: Path, expected: Path) -> None:
    found = sorted(p for p in tmp_path.rglob("*.duckdb"))
    assert found == [expected], f"warehouse files: {found}"


@pytest.mark.parametrize("first, then", [("root", "inside"), ("inside", "root")])
def test_parse_and_seed_from_either_directory(checkout: Path, tmp_path: Path, first: str,
                                              then: str):
    env = _env()  # no TOKENWATCH_HOME: the profile's default, <repo>/.tokenwatch
    warehouse = checkout / ".tokenwatch" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    dbt(checkout, first, "parse", env)
    dbt(checkout, first, "seed", env)
    counts = seeded(warehouse)
    assert all(counts.values()), counts
    dbt(checkout, then, "parse", env)  # reads the cache the other directory wrote
    dbt(checkout, then, "seed", env)
    assert seeded(warehouse) == counts
    dbt(checkout, first, "seed", env)  # and back, on the cache the second one left
    _only_warehouse(tmp_path, warehouse)


def test_seed_with_tokenwatch_home_from_root_then_inside(checkout: Path, tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    env = _env(TOKENWATCH_HOME=str(home))
    dbt(checkout, "root", "seed", env)
    dbt(checkout, "inside", "seed", env)
    assert all(seeded(home / "warehouse.duckdb").values())
    _only_warehouse(tmp_path, home / "warehouse.duckdb")
