"""The demo's world: reset at its start, so a previous run's rows are gone, and nothing outside
it (another database on the server, another warehouse file) is touched; the summary reads
only the demo's warehouse. The whole demo takes minutes: its pieces are tested here."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import date

import duckdb
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sandbox.demo import world as demo_world
from tokenwatch.postgres import drop_database, ensure_database


@pytest.fixture()
def world(pg_server, tmp_path):
    """A demo world of this test's own (never the user's ``tokenwatch_demo``)."""
    name = f"tokenwatch_demo_test_{uuid.uuid4().hex[:8]}"
    yield demo_world.DemoWorld(pg_server, name, tmp_path / "home" / "warehouse.duckdb")
    drop_database(pg_server, name)


def _previous_run(world) -> None:
    """What an earlier demo leaves behind: a token in its database, marts in its warehouse
    and in the replica."""
    from state_service.migrate import migrate

    migrate(ensure_database(world.server, world.database))
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        conn.execute("create table leftover (id int)")
        conn.execute("insert into leftover values (1)")
    world.warehouse.parent.mkdir(parents=True)
    for path in (world.warehouse, world.replica):
        with duckdb.connect(str(path)) as con:
            con.execute("create schema analytics_wallet")
            con.execute("create table analytics_wallet.wallet_comparison as "
                        "select 'apple_pay' as wallet_id, 3700 as requests")


def test_reset_removes_a_previous_run_and_touches_nothing_else(world, pg_server, tmp_path):
    _previous_run(world)
    other = f"tokenwatch_other_{uuid.uuid4().hex[:8]}"
    other_dsn = ensure_database(pg_server, other)
    other_file = tmp_path / "home" / "someone-elses.duckdb"
    try:
        with psycopg.connect(other_dsn, autocommit=True) as conn:
            conn.execute("create table mine (id int)")
            conn.execute("insert into mine values (42)")
        with duckdb.connect(str(other_file)) as con:
            con.execute("create table mine as select 42 as id")

        line = demo_world.reset(world)

        assert world.database in line and str(world.warehouse) in line
        with psycopg.connect(world.dsn) as conn:  # the demo's database: new and migrated
            tables = {r[0] for r in conn.execute(
                "select tablename from pg_tables where schemaname = 'public'")}
            assert "leftover" not in tables
            assert "token_state_transitions" in tables
            assert conn.execute("select count(*) from token_state_transitions").fetchone() == (0,)
        assert not world.warehouse.exists() and not world.replica.exists()
        with psycopg.connect(other_dsn) as conn:  # someone else's database: as it was
            assert conn.execute("select id from mine").fetchall() == [(42,)]
        with duckdb.connect(str(other_file), read_only=True) as con:
            assert con.execute("select id from mine").fetchall() == [(42,)]
    finally:
        drop_database(pg_server, other)


def test_reset_empties_the_lake_and_the_stream(world, local_stack):
    s3, kinesis = local_stack.s3_client(), local_stack.kinesis_client()
    stack = replace(local_stack, bucket=f"demo-lake-{uuid.uuid4().hex[:8]}",
                    stream=f"demo-stream-{uuid.uuid4().hex[:8]}", shards=2)
    s3.create_bucket(Bucket=stack.bucket)
    kinesis.create_stream(StreamName=stack.stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stack.stream)
    for i in range(3):
        s3.put_object(Bucket=stack.bucket, Key=f"apigw/dt=2026-11-01/part-{i}.json.gz", Body=b"x")
    kinesis.put_record(StreamName=stack.stream, PartitionKey="k", Data=b'{"old": true}')

    assert demo_world.reset_lake(stack) == 3

    assert s3.list_objects_v2(Bucket=stack.bucket).get("KeyCount", 0) == 0
    shards = kinesis.list_shards(StreamName=stack.stream)["Shards"]
    assert len(shards) == 2
    for shard in shards:
        it = kinesis.get_shard_iterator(StreamName=stack.stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert kinesis.get_records(ShardIterator=it)["Records"] == []


def test_the_stack_file_names_the_demo_database(world, local_stack, monkeypatch, tmp_path):
    """After the reset, everything that reads stack.json (ingestion, make dagster) reads the
    demo's database, and the data start is the demo's to record."""
    from tokenwatch.stack_file import Stack

    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    changes = {"data_start": "2026-01-01"} if hasattr(local_stack, "data_start") else {}
    replace(local_stack, **changes).save()
    stack = demo_world.point_stack_at(Stack.load(), world)
    assert conninfo_to_dict(stack.pg_dsn)["dbname"] == world.database
    saved = json.loads((tmp_path / "stack.json").read_text())
    assert conninfo_to_dict(saved["pg_dsn"])["dbname"] == world.database
    assert saved.get("data_start", "") == ""
    assert "password" not in conninfo_to_dict(saved["pg_dsn"])


def test_the_summary_reads_only_the_demo_world(world, monkeypatch, tmp_path):
    """Activated, the demo's process resolves its database and opens its warehouse file: not
    TOKENWATCH_DUCKDB_PATH's or TOKENWATCH_PG_DATABASE's as the user set them."""
    from ingestion.warehouse import duckdb_path, open_warehouse
    from sandbox.demo.readback import wallet_summary
    from state_service.server import dsn_from_env

    user_file = tmp_path / "users-own.duckdb"  # someone's warehouse, with other numbers
    with duckdb.connect(str(user_file)) as con:
        con.execute("create schema analytics_wallet")
        con.execute("create table analytics_wallet.wallet_comparison as "
                    "select 'apple_pay' as wallet_id, 3700 as requests")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(user_file))
    monkeypatch.setenv("TOKENWATCH_PG_DATABASE", "tokenwatch")
    monkeypatch.delenv("TOKENWATCH_DUCKDB_REPLICA_PATH", raising=False)
    if world.server.source == "env":
        monkeypatch.setenv("TOKENWATCH_PG_DSN", world.server.dsn)
    else:  # (the session's local_stack fixture sets one for the tests that use it)
        monkeypatch.delenv("TOKENWATCH_PG_DSN", raising=False)
    for key, value in world.environment().items():  # demo_world.activate, undone after
        monkeypatch.setenv(key, value)
    assert duckdb_path() == world.warehouse
    demo_world.reset(world)
    assert conninfo_to_dict(dsn_from_env())["dbname"] == world.database
    world.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(world.warehouse)) as con:  # the demo's marts, one wallet
        for sql in ("create schema analytics_wallet",
                    "create table analytics_wallet.wallet_comparison as select "
                    "'apple_pay' as wallet_id, 12 as requests, 0.9 as "
                    "provision_success_rate, 0.5 as yellow_completion_rate, "
                    "0.01 as api_error_rate",
                    "create table analytics_wallet.wallet_service_daily as select "
                    "'apple_pay' as wallet_id, 800.0 as gateway_latency_p99_ms",
                    "create table analytics_wallet.wallet_token_usage_daily as select "
                    "'apple_pay' as wallet_id, date '2026-11-30' as usage_date, "
                    "10 as active_tokens"):
            con.execute(sql)
    wh = open_warehouse(create=False)
    try:
        rows = wallet_summary(wh, lambda name: f"analytics_wallet.{name}", date(2026, 11, 30))
    finally:
        wh.close()
    assert [(r["wallet"], r["requests"], r["active_tokens"]) for r in rows] == [
        ("apple_pay", 12, 10)]
    with duckdb.connect(str(user_file), read_only=True) as con:  # and theirs is as it was
        assert con.execute("select requests from analytics_wallet.wallet_comparison"
                           ).fetchall() == [(3700,)]
