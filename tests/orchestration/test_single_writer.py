"""One writer at a time on the local DuckDB warehouse, and readers that cannot stop a load.

The ``ingest`` job runs here as it runs in the UI and on its schedule: through Dagster's
multiprocess executor (one process per step), on a persistent instance configured by the
shipped template ``orchestration/dagster.yaml`` (the ``warehouse`` pool, limit 1), while a
reader keeps the read replica open the whole time. A negative control shows what the replica
is for: a reader on the loaders' own file locks every writer out.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion.warehouse import open_warehouse, read_replica_path
from ingestion.warehouse.duckdb import DuckDBWarehouse, WarehouseLocked, publish_replica
from orchestration.resources import WAREHOUSE_POOL
from tokenwatch import config

#: Enough runs that a second, third and fourth find the warehouse, its replica and the
#: instance as the runs before left them (each run takes 10-15 s on 2 cores).
RUNS = 4
TEMPLATE = config.project_root() / "orchestration" / "dagster.yaml"


def ingest_job():
    """The ``ingest`` job of the one Definitions, rebuilt in each step's process."""
    from orchestration.definitions import defs

    return defs.resolve_job_def("ingest")


def lake_job():
    from orchestration.definitions import defs

    return defs.resolve_job_def("load_lake")


@pytest.fixture()
def instance(tmp_path):
    """A persistent instance (SQLite under a home of its own) with the repository's
    dagster.yaml, as ``make dagster`` gets it."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(TEMPLATE, home / "dagster.yaml")
    inst = dg.DagsterInstance.from_config(str(home))
    try:
        yield inst
    finally:
        inst.dispose()


@pytest.fixture()
def warehouse_env(tmp_path, monkeypatch):
    """A warehouse file of this test's own; the steps' processes inherit the environment."""
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("TOKENWATCH_DUCKDB_REPLICA_PATH", raising=False)
    return tmp_path / "warehouse.duckdb"


#: The multiprocess executor, each step in a process of its own; forked from a server that has
#: imported the definitions once, so that a step starts in a second rather than in the ten a
#: fresh interpreter takes to import dagster-dbt and the manifest on this machine (the
#: default, spawn, behaves the same, only slower).
MULTIPROCESS = {"multiprocess": {"start_method": {"forkserver": {
    "preload_modules": ["orchestration.definitions"]}}}}


def _run_config(world) -> dict:
    t = world.target
    return {"execution": {"config": MULTIPROCESS},
            "resources": {"sources": {"config": {
                "pg_dsn": world.pg_dsn, "stream": t.stream, "bucket": t.bucket}}}}


def _count_in_new_process(path: Path, table: str) -> int:
    """What a new reader (another process, as Tableau is) sees in ``path``."""
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute(f'select count(*) from raw.{sys.argv[2]}').fetchone()[0])")
    r = subprocess.run([sys.executable, "-c", code, str(path), table], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


def _run_lake_job(home: str, run_config: dict, into) -> None:
    """The ``load_lake`` run, in a process of its own on the instance at ``home``: as the
    daemon launches every run. (Two runs in threads of one process deadlock in Dagster
    itself: each run's start calls ``logging.config.dictConfig``, which shuts down every
    handler of the process, the other run's mid-``emit`` included.)"""
    inst = dg.DagsterInstance.from_config(home)
    try:
        with dg.execute_job(dg.reconstructable(lake_job), instance=inst,
                            run_config=run_config, raise_on_error=False) as result:
            into.put((result.success, result.run_id))
    finally:
        inst.dispose()


def _pool_steps(inst: dg.DagsterInstance, run_id: str) -> list[tuple[float, float, str]]:
    """(start, end, step) of every step of the run in the warehouse pool, from its events."""
    starts, ends = {}, {}
    for record in inst.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS,
                                  dg.DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = record.timestamp
    return [(starts[k], ends[k], k) for k in starts if k in ends]


def _overlaps(spans: list[tuple[float, float, str]]) -> list[tuple[str, str]]:
    spans = sorted(spans)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]


def test_every_step_that_opens_the_warehouse_is_in_the_pool():
    from orchestration.definitions import defs

    job = defs.resolve_job_def("ingest")
    pools = {node.name: node.definition.pool for node in job.graph.node_dict.values()}
    assert set(pools.values()) == {WAREHOUSE_POOL}, pools
    assert len(pools) >= 5  # three loads, two checks at least
    marts = defs.resolve_job_def("marts_and_kpis")
    assert {n.definition.pool for n in marts.graph.node_dict.values()} == {WAREHOUSE_POOL}
    compliance = defs.resolve_job_def("compliance")
    by_node = {n.name: n.definition.pool for n in compliance.graph.node_dict.values()}
    assert by_node["raw__chain_checkpoints"] == WAREHOUSE_POOL, by_node
    assert by_node["tokenwatch_dbt"] == WAREHOUSE_POOL
    assert by_node["audit__pack"] == by_node["audit_retention_checks"] == WAREHOUSE_POOL


def test_the_shipped_instance_limits_the_pool_to_one_writer(instance):
    pool = instance.get_concurrency_config().pool_config
    assert pool.default_pool_limit == 1
    assert pool.pool_granularity.value == "op"  # per step, within a run and across runs
    assert instance.event_log_storage.supports_global_concurrency_limits


def test_ingest_job_runs_again_and_again_through_the_multiprocess_executor_with_a_reader_open(
        world, local_stack, warehouse_env, instance):
    writer = warehouse_env
    replica = read_replica_path()
    assert replica == writer.with_name("warehouse-read.duckdb")
    open_warehouse().close()  # an empty warehouse, and its first replica
    reader = duckdb.connect(str(replica), read_only=True)  # an analyst's session, all along
    spawn = mp.get_context("spawn")
    other = spawn.Queue()
    beside = spawn.Process(target=_run_lake_job,
                           args=(instance.root_directory, _run_config(world), other))
    try:
        before = reader.execute("select count(*) from raw.token_state_transitions").fetchone()
        recon = dg.reconstructable(ingest_job)
        for i in range(RUNS):
            # the first run with the lake sensor's run beside it, as the schedule and the
            # sensor start them: two runs at once take turns on the warehouse too
            if i == 0:
                beside.start()
            with dg.execute_job(recon, instance=instance, run_config=_run_config(world),
                                raise_on_error=False) as result:
                failures = [e.message for e in result.all_events
                            if e.event_type == dg.DagsterEventType.STEP_FAILURE]
                assert result.success, f"run {i + 1} of {RUNS} failed: {failures}"
                steps = _pool_steps(instance, result.run_id)
                assert len(steps) >= 5
            if i == 0:
                lake_ok, lake_run = other.get(timeout=300)
                beside.join(timeout=60)
                assert lake_ok, "the load_lake run beside the first failed"
                steps += _pool_steps(instance, lake_run)
            # the pool, not luck or the lock retry: no two warehouse steps at once
            assert _overlaps(steps) == [], f"run {i + 1}: warehouse steps ran at once"
            # the reader saw no failure and still reads the copy it opened
            assert reader.execute(
                "select count(*) from raw.token_state_transitions").fetchone() == before
    finally:
        reader.close()
        if beside.is_alive():
            beside.kill()
    loaded = world.summary["transitions"]["total"]
    assert before == (0,) and loaded > 0
    # a new connection opens the newest replica: every row, once (every run, exactly once)
    assert _count_in_new_process(replica, "token_state_transitions") == loaded
    assert _count_in_new_process(writer, "token_state_transitions") == loaded


def test_negative_control_without_the_pool_the_steps_run_at_once(world, local_stack,
                                                                  warehouse_env, tmp_path):
    """The same run on an instance without the pool's limit: the executor starts the three
    loads at once (the overlap the test above would catch); only the lock wait in
    ``ingestion.warehouse.duckdb.connect`` keeps them from failing as they did in the UI."""
    home = tmp_path / "no-pool-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    unlimited = dg.DagsterInstance.from_config(str(home))
    try:
        assert unlimited.get_concurrency_config().pool_config.default_pool_limit is None
        open_warehouse().close()
        with dg.execute_job(dg.reconstructable(ingest_job), instance=unlimited,
                            run_config=_run_config(world), raise_on_error=False) as result:
            assert _overlaps(_pool_steps(unlimited, result.run_id)) != []
            assert result.success
    finally:
        unlimited.dispose()


def test_tokenwatch_ingest_succeeds_while_a_reader_holds_the_replica(local_stack, client,
                                                                    warehouse_env):
    created = client.post("/v1/tokens", json={
        "token_ref": "tok-replica", "wallet_id": "samsung_pay", "network": "visa",
        "token_type": "hce", "card_ref": "card-replica", "event_id": "replica-create",
        "occurred_at": "2026-11-02T09:59:00+00:00"})
    assert created.status_code in (200, 201), created.text
    open_warehouse().close()
    replica = read_replica_path()
    reader = duckdb.connect(str(replica), read_only=True)
    try:
        r = subprocess.run([sys.executable, "-m", "tokenwatch.cli", "ingest", "--json"],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ))
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        loaded = report["transitions"]["rows_loaded"]
        assert loaded > 0
        assert reader.execute(
            "select count(*) from raw.token_state_transitions").fetchone() == (0,)
    finally:
        reader.close()
    # the CLI published the replica when it closed the warehouse
    assert _count_in_new_process(replica, "token_state_transitions") == loaded


def _create(writer: Path, replica: Path | None = None) -> None:
    wh = DuckDBWarehouse(writer, replica=replica)
    wh.ensure_schema()
    wh.close()


@pytest.fixture()
def reader_process():
    """``hold(path)``: another process (an analyst's DuckDB session) with ``path`` open
    read-only until the test ends; returns its PID."""
    procs = []

    def hold(path: Path) -> int:
        code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
                "print('open', flush=True); time.sleep(120)")
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "open"
        return proc.pid

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_negative_control_a_reader_on_the_writers_file_locks_every_load_out(
        tmp_path, reader_process):
    """Why the replica exists: DuckDB gives a file one writer process, and a reader in
    another process keeps it. Opening fails after the bounded wait, naming the holder."""
    writer, replica = tmp_path / "warehouse.duckdb", tmp_path / "warehouse-read.duckdb"
    _create(writer, replica)
    pid = reader_process(writer)
    with pytest.raises(WarehouseLocked) as locked:
        DuckDBWarehouse(writer, lock_wait=1)
    assert f"PID {pid}" in str(locked.value) and "read replica" in str(locked.value)
    assert "Could not set lock" in str(locked.value.__cause__)


def test_a_reader_on_the_replica_does_not(tmp_path, reader_process):
    writer, replica = tmp_path / "warehouse.duckdb", tmp_path / "warehouse-read.duckdb"
    _create(writer, replica)
    reader_process(replica)
    wh = DuckDBWarehouse(writer, replica=replica, lock_wait=1)
    wh.execute("create table raw.extra as select 42 as answer")
    wh.close()
    assert _count_in_new_process(replica, "extra") == 1


def test_the_lock_wait_lets_a_finishing_writer_close(tmp_path, reader_process):
    """A writer that closes within the wait is waited for, not failed on."""
    writer = tmp_path / "warehouse.duckdb"
    _create(writer)
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); time.sleep(2); c.close(); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(writer)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        DuckDBWarehouse(writer, lock_wait=30).close()
    finally:
        proc.kill()
        proc.wait()


def test_publish_copies_only_a_changed_file_and_replaces_it_whole(tmp_path):
    writer, replica = tmp_path / "warehouse.duckdb", tmp_path / "warehouse-read.duckdb"
    _create(writer)
    assert publish_replica(writer, replica) is True
    assert publish_replica(writer, replica) is False  # current already: no copy
    old = replica.stat().st_ino
    wh = DuckDBWarehouse(writer, replica=replica)
    wh.execute("create table raw.more as select 1 as one")
    wh.close()
    assert replica.stat().st_ino != old  # a new file took its place; no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse-read.duckdb",
                                                          "warehouse.duckdb"]
