"""Running dbt in-process against this repository's dbt project, one target at a time.

Each run gets its own target/ and logs/ directories (DBT_TARGET_PATH, DBT_LOG_PATH), and the
target's settings through environment variables, set only for the duration of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def duckdb_env(path: Path) -> dict[str, str]:
    return {"TOKENWATCH_DUCKDB_PATH": str(path)}


def postgres_env(dsn: str) -> dict[str, str]:
    """The dbt postgres target's variables for a libpq connection string."""
    params = conninfo_to_dict(dsn)
    return {"TOKENWATCH_WH_PG_HOST": str(params.get("host") or "127.0.0.1"),
            "TOKENWATCH_WH_PG_PORT": str(params.get("port") or "5432"),
            "TOKENWATCH_WH_PG_USER": str(params.get("user") or "postgres"),
            "TOKENWATCH_WH_PG_PASSWORD": str(params.get("password") or ""),
            "TOKENWATCH_WH_PG_DBNAME": str(params["dbname"])}


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after a run, so the file
    can be opened again (by a test, or read-only) with another configuration. dbt-duckdb
    exposes no public call for this: its connection manager holds the one environment."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager
    except ImportError:
        return
    with manager._LOCK:
        if manager._ENV is not None:
            manager._ENV.close()
            manager._ENV = None
    import gc

    gc.collect()


@dataclass
class DbtResult:
    args: list[str]
    success: bool
    result: Any
    exception: BaseException | None
    target_path: Path

    def failures(self) -> list[str]:
        """One line per node that errored or failed, with dbt's message."""
        lines = []
        if self.exception is not None:
            lines.append(f"dbt raised {type(self.exception).__name__}: {self.exception}")
        for res in getattr(self.result, "results", None) or []:
            status = str(getattr(res, "status", ""))
            if status in ("error", "fail", "runtime error", "skipped"):
                node = getattr(res, "node", None)
                name = getattr(node, "unique_id", "?")
                lines.append(f"{status.upper()} {name}: {(res.message or '').strip()[:2000]}")
        return lines

    def explain(self) -> str:
        head = f"dbt {' '.join(self.args)} failed"
        return "\n".join([head, *self.failures(),
                          f"(logs under {self.target_path.parent / 'logs'})"])

    def statuses(self) -> dict[str, str]:
        return {r.node.unique_id: str(r.status)
                for r in getattr(self.result, "results", None) or []}


def run_dbt(args: Sequence[str], target: str, env: Mapping[str, str], workdir: Path,
            vars_: Mapping[str, Any] | None = None) -> DbtResult:
    """``dbt <args> --target <target>`` in-process; target/ and logs/ under ``workdir``."""
    from dbt.cli.main import dbtRunner

    workdir.mkdir(parents=True, exist_ok=True)
    target_path = workdir / "target"
    full = [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
            "--target", target]
    if vars_:
        import json

        full += ["--vars", json.dumps(dict(vars_))]
    run_env = {"DBT_TARGET_PATH": str(target_path), "DBT_LOG_PATH": str(workdir / "logs"),
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_PARTIAL_PARSE": "false",
               **env}
    with environment(run_env):
        try:
            res = dbtRunner().invoke(full)
        finally:
            _release_duckdb()
    return DbtResult(list(full), bool(res.success), res.result, res.exception, target_path)
