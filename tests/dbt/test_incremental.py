"""Incremental models give the same marts as a full rebuild.

The world's raw layer is split in two loads (transitions by id, so tokens have rows in both;
wallet events by time, plus a share of old events arriving late; API logs by time). A
warehouse is built on the first load, then gets the second and an incremental ``dbt build``.
Every table must equal the session's full build of the same rows (``built_duckdb``), load
times aside.

The second load is one that committed hours after its rows were stamped: its ``_loaded_at``
is five hours before the first load's, as a worker that stamps its rows, then stalls (or runs
on a slow clock) leaves them. Loads are numbered in commit order (``raw._loads``), as
ingestion registers them, and the incremental models read by that number: the former
watermark (the newest ``loaded_at`` minus 3 hours) read none of the second load, and these
tests failed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from tests.dbt.dbt_runner import duckdb_env, run_dbt
from tests.warehouses import register_loads

#: per raw table: the condition that puts a row in the second load
#: (transitions: by id from about 70% on, cut just before a token's second row, so that at
#: least that token has rows in both loads however the log interleaves its tokens: most
#: tokens' lifecycles take minutes, so a cut anywhere else may fall between tokens)
SECOND_LOAD = {
    "token_state_transitions": "transition_id >= (select min(transition_id) "
                               "from src.raw.token_state_transitions where version = 2 "
                               "and transition_id > (select quantile_disc(transition_id, 0.7) "
                               "from src.raw.token_state_transitions))",
    "wallet_events": "event_time >= (select quantile_disc(event_time, 0.7) "
                     "from src.raw.wallet_events) or hash(event_id) % 20 = 0",
    "apigw_logs": "request_time >= (select quantile_disc(request_time, 0.7) "
                  "from src.raw.apigw_logs)",
    "lambda_logs": "invoked_at >= (select quantile_disc(invoked_at, 0.6) "
                   "from src.raw.lambda_logs)",
    # the later checkpoints' records: a checkpoint load, late too (audit_token_chains)
    "chain_checkpoints": "seq > (select quantile_disc(seq, 0.5) from src.raw.chain_checkpoints)",
}
OTHER_TABLES = ("quarantine", "_ingest_state", "_s3_manifest", "chain_checkpoint_log")
SKIPPED_SCHEMAS = ("raw", "analytics_snapshots", "analytics_staging")
#: when rows were loaded (shifted here for the first load) and computed: not compared
LOAD_TIME_COLUMNS = {"loaded_at", "last_loaded_at", "transformed_at", "load_seq",
                     "last_load_seq", "checkpoint_load_seq", "first_checkpoint_loaded_at"}


#: the second load's rows are stamped this long before the first load's
LATE_COMMIT = timedelta(hours=5)


def _load(target: Path, source: Path, part: int) -> None:
    """Copy raw rows of load ``part`` (1 or 2) from ``source`` into ``target`` and register
    the load as ingestion does (raw._loads, the next number: commit order). The first load is
    stamped a day before the rows' real load; the second ``LATE_COMMIT`` before the first."""
    shift = timedelta(days=1) if part == 1 else timedelta(days=1) + LATE_COMMIT
    with duckdb.connect(str(target)) as con:
        con.execute("set timezone = 'UTC'")
        con.execute(f"attach '{source}' as src (read_only)")
        con.execute("create schema if not exists raw")
        if part == 1:
            for table in OTHER_TABLES:
                con.execute(f"create table raw.{table} as select * from src.raw.{table}")
            for table in ("_loads", "_load_counter"):
                con.execute(f"create table raw.{table} as select * from src.raw.{table} "
                            "limit 0")
            con.execute("insert into raw._load_counter values (0)")
        for table, second in SECOND_LOAD.items():
            con.execute(f"create table if not exists raw.{table} as "
                        f"select * from src.raw.{table} limit 0")
            which = f"not ({second})" if part == 1 else second
            con.execute(f"""
                insert into raw.{table}
                select * replace (_loaded_at - interval {int(shift.total_seconds())} second
                                  as _loaded_at)
                from src.raw.{table} where {which}""")
            register_loads(con, [table])  # the load's last step: its number, commit order
        con.execute("detach src")


def _marts(path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema not in {SKIPPED_SCHEMAS} and table_type = 'BASE TABLE' "
            "and table_schema like 'analytics%' order by 1, 2").fetchall()
        out = {}
        for schema, table in tables:
            columns = [c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_schema = ? "
                "and table_name = ? order by ordinal_position", [schema, table]).fetchall()
                if c not in LOAD_TIME_COLUMNS]
            rows = con.execute(f"select {', '.join(columns)} from {schema}.{table}").fetchall()
            out[f"{schema}.{table}"] = sorted(rows, key=lambda r: tuple(
                (v is None, str(v)) for v in r))
        return out


@pytest.fixture(scope="module")
def both_ways(raw_duckdb: Path, built_duckdb, tmp_path_factory) -> tuple:
    # built_duckdb: the full build of the same raw rows, in the session's warehouse file
    work = tmp_path_factory.mktemp("dbt-incremental")
    incremental = work / "warehouse.duckdb"
    _load(incremental, raw_duckdb, 1)
    res = run_dbt(["build"], "local", duckdb_env(incremental), work / "first")
    assert res.success, res.explain()
    first = _marts(incremental)
    _load(incremental, raw_duckdb, 2)
    res = run_dbt(["build"], "local", duckdb_env(incremental), work / "second")
    assert res.success, res.explain()
    statuses = res.statuses()
    assert statuses["model.tokenwatch.fct_token_state_transitions"] == "success"
    return first, _marts(incremental), _marts(raw_duckdb), incremental


def test_second_load_is_a_real_increment(both_ways):
    first, incremental, _, _ = both_ways
    for relation in ("analytics_lifecycle.fct_token_state_transitions",
                     "analytics_intermediate.int_wallet_events",
                     "analytics_intermediate.int_api_requests"):
        assert 0 < len(first[relation]) < len(incremental[relation]), relation
    # tokens that existed after the first load changed with the second (open spans closed)
    spans = "analytics_intermediate.int_token_lifecycle_spans"
    assert set(first[spans]) - set(incremental[spans])
    # the second checkpoint load changed tokens' chain rows (more rows checkpointed)
    chains = "analytics_compliance.audit_token_chains"
    assert set(first[chains]) - set(incremental[chains])


@pytest.mark.parametrize("relation", [
    "analytics_intermediate.int_token_transitions", "analytics_intermediate.int_wallet_events",
    "analytics_intermediate.int_token_lifecycle_spans",
    "analytics_intermediate.int_token_current_state",
    "analytics_intermediate.int_provisioning_attempts", "analytics_intermediate.int_api_requests",
    "analytics_lifecycle.fct_token_state_transitions", "analytics_lifecycle.dim_token",
    "analytics_lifecycle.token_state_daily", "analytics_wallet.fct_provisioning_attempts",
    "analytics_wallet.wallet_provisioning_daily", "analytics_wallet.wallet_token_usage_daily",
    "analytics_wallet.wallet_comparison", "analytics_compliance.audit_token_transitions",
    "analytics_compliance.audit_token_chains", "analytics_compliance.audit_exceptions"])
def test_incremental_equals_full_refresh(both_ways, relation):
    _, incremental, full, _ = both_ways
    assert relation in full and full[relation], f"{relation} is empty or missing"
    assert incremental[relation] == full[relation]


def test_every_table_matches(both_ways):
    _, incremental, full, _ = both_ways
    assert set(incremental) == set(full)
    differ = [name for name in full if incremental[name] != full[name]]
    assert not differ, differ


def test_a_checkpoint_load_that_committed_late_is_read(both_ways, tmp_path):
    """A checkpoint load whose rows were stamped days before the last dbt run started, and
    committed after it (numbered next in raw._loads): the next incremental run reads it, and
    the token it checkpointed, absent from the log, is reported erased. The former filter,
    _loaded_at after the last run's start, never read it."""
    import shutil

    *_, built = both_ways
    path = tmp_path / "warehouse.duckdb"
    shutil.copy2(built, path)
    with duckdb.connect(str(path)) as con:
        con.execute("set timezone = 'UTC'")
        con.execute("""
            insert into raw.chain_checkpoints
                (seq, token_ref, version, transition_id, row_hash, content_hash, sealed,
                 _loaded_at)
            values (999, 'tok-checkpointed-late', 1, 99999999, repeat('a', 64),
                    repeat('b', 64), true, now() - interval 5 day)""")
        register_loads(con, ["chain_checkpoints"])
    res = run_dbt(["run", "--select", "stg_audit__chain_checkpoints", "audit_token_chains"],
                  "local", duckdb_env(path), tmp_path / "run")
    assert res.success, res.explain()
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute("select chain_verdict from analytics_compliance.audit_token_chains "
                            "where token_ref = 'tok-checkpointed-late'").fetchall()
    assert found == [("token_erased",)]


def _copy_of_built(both_ways, tmp_path: Path) -> Path:
    import shutil

    *_, built = both_ways
    path = tmp_path / "warehouse.duckdb"
    shutil.copy2(built, path)
    return path


def test_a_token_rebuilt_upstream_with_fewer_transitions_keeps_no_stale_rows(both_ways,
                                                                            tmp_path):
    """The per-token models replace a token's rows whole (delete+insert by token_ref): when an
    operator removes a bad raw row and rebuilds int_token_transitions, the next incremental
    run drops that transition's span and audit row. Keyed by span_id and transition_id, they
    stayed behind for good."""
    path = _copy_of_built(both_ways, tmp_path)
    with duckdb.connect(str(path)) as con:
        token, version, transition = con.execute("""
            select token_ref, max(version), arg_max(transition_id, version)
            from raw.token_state_transitions group by token_ref
            having count(*) >= 3 order by token_ref limit 1""").fetchone()
        con.execute("delete from raw.token_state_transitions where transition_id = ?",
                    [transition])
    env = duckdb_env(path)
    res = run_dbt(["run", "--full-refresh", "--select", "int_token_transitions"], "local", env,
                  tmp_path / "rebuild")
    assert res.success, res.explain()
    res = run_dbt(["run", "--select", "int_token_lifecycle_spans", "audit_token_transitions"],
                  "local", env, tmp_path / "run")
    assert res.success, res.explain()
    with duckdb.connect(str(path), read_only=True) as con:
        versions = [v for (v,) in con.execute(
            "select token_version from analytics_intermediate.int_token_lifecycle_spans "
            "where token_ref = ? order by 1", [token]).fetchall()]
        audited = con.execute(
            "select count(*) from analytics_compliance.audit_token_transitions "
            "where transition_id = ?", [transition]).fetchone()[0]
        current = con.execute(
            "select count(*) from analytics_intermediate.int_token_lifecycle_spans "
            "where token_ref = ? and is_current", [token]).fetchone()[0]
    assert versions and version not in versions and max(versions) == version - 1
    assert audited == 0
    assert current == 1  # the token's span before the removed one is open again


def test_a_copy_redelivered_in_a_later_load_is_kept_once(both_ways, tmp_path):
    """API log records delivered again in a later load (an object re-sent under another
    key): an increment reads the new load's rows, but chooses among every copy of their
    requests, old ones included, so each request keeps its first copy, as a full build (a
    dedupe of the new rows alone would take the re-sent copy)."""
    path = _copy_of_built(both_ways, tmp_path)
    with duckdb.connect(str(path)) as con:
        con.execute("set timezone = 'UTC'")
        before = dict(con.execute(
            "select request_id, source_location from analytics_intermediate.int_api_requests "
            "order by request_id limit 5").fetchall())
        placeholders = ", ".join("?" for _ in before)
        copies_before = con.execute(
            f"select count(*) from raw.apigw_logs where request_id in ({placeholders})",
            list(before)).fetchone()[0]
        con.execute(f"""
            insert into raw.apigw_logs
            select * replace ('s3://lake/re-sent/' || request_id || '.json.gz#1'
                              as _source_location, now() as _loaded_at)
            from raw.apigw_logs where request_id in ({placeholders})""", list(before))
        register_loads(con, ["apigw_logs"])
    res = run_dbt(["run", "--select", "int_api_requests"], "local", duckdb_env(path),
                  tmp_path / "run")
    assert res.success, res.explain()
    with duckdb.connect(str(path), read_only=True) as con:
        after = con.execute(
            "select request_id, source_location, count(*) over (partition by request_id) "
            f"from analytics_intermediate.int_api_requests where request_id in ({placeholders})",
            list(before)).fetchall()
        raw_copies = con.execute(
            f"select count(*) from raw.apigw_logs where request_id in ({placeholders})",
            list(before)).fetchone()[0]
    assert raw_copies == copies_before + len(before)  # the re-sent copies are there
    assert {r: loc for r, loc, _ in after} == before
    assert all(n == 1 for *_, n in after)
