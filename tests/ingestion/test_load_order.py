"""Loads are numbered in commit order (raw._loads), whatever their rows' stamps say.

``_loaded_at`` is the worker's clock, taken before the load commits; the incremental models'
watermark is the load's number instead (dbt_project/macros/numbers.sql). These tests make a
load that stamped its rows first commit last, and check the numbers follow the commits, on
DuckDB, PostgreSQL (two connections, the later one open across the earlier one's commit) and
fakesnow; a rolled-back load takes no number.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from ingestion.raw_schema import QUARANTINE
from ingestion.records import ARROW_TYPES
from ingestion.warehouse.postgres import PostgresWarehouse

STAMP = datetime(2026, 11, 2, 12, tzinfo=UTC)


def _rows(stamp: datetime, n: int = 2, tag: str = "x") -> pa.Table:
    cols = {c.name: [f"{tag}-{i}" for i in range(n)] for c in QUARANTINE.columns
            if c.type == "text"}
    cols["_loaded_at"] = [stamp] * n
    return pa.table({c.name: pa.array(cols[c.name], ARROW_TYPES[c.type])
                     for c in QUARANTINE.columns})


def _loads(wh) -> list[tuple]:
    return [(int(seq), table, stamp, int(n)) for seq, table, stamp, n in wh.query(
                "select load_seq, table_name, loaded_at, row_count from raw._loads "
                "order by load_seq")]


def _utc(value) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.mark.parametrize("target", ["duckdb", "postgres", "snowflake"])
def test_each_append_gets_the_next_number_and_a_rollback_none(warehouse_factory, target):
    wh = warehouse_factory(target)
    wh.append(QUARANTINE, _rows(STAMP, tag="a"))
    with pytest.raises(RuntimeError), wh.transaction():
        wh.append(QUARANTINE, _rows(STAMP + timedelta(minutes=1), tag="rolled-back"))
        raise RuntimeError("the load fails before its commit")
    with wh.transaction():  # one transaction, two stamps: two numbers, both at its commit
        wh.append(QUARANTINE, _rows(STAMP - timedelta(hours=5), tag="b"))
        wh.append(QUARANTINE, _rows(STAMP + timedelta(minutes=2), tag="c"))
    loads = _loads(wh)
    assert [(seq, table, n) for seq, table, _, n in loads] == [
        (1, "quarantine", 2), (2, "quarantine", 2), (3, "quarantine", 2)]
    assert [_utc(stamp) for _, _, stamp, _ in loads] == [
        STAMP, STAMP - timedelta(hours=5), STAMP + timedelta(minutes=2)]
    assert int(wh.query("select last_seq from raw._load_counter")[0][0]) == 3
    wh.ensure_schema()  # again: the counter keeps its one row and its value
    assert wh.query("select count(*), max(last_seq) from raw._load_counter")[0] in (
        (1, 3), (1.0, 3.0))


def test_a_load_that_stamped_first_and_commits_last_is_numbered_last(warehouse_factory):
    """PostgreSQL, two workers: the slow one stamps its rows five hours before the fast one,
    and is still open when the fast one commits; it takes the next number at its own commit,
    so a dbt run between the two commits (watermark: the fast one's number) reads it next."""
    first = warehouse_factory("postgres")
    second = PostgresWarehouse(first.dsn)
    try:
        slow_started, fast_done = threading.Event(), threading.Event()

        def slow() -> None:
            with second.transaction():
                second.append(QUARANTINE, _rows(STAMP - timedelta(hours=5), tag="slow"))
                slow_started.set()
                assert fast_done.wait(30)

        worker = threading.Thread(target=slow)
        worker.start()
        assert slow_started.wait(30)
        first.append(QUARANTINE, _rows(STAMP, tag="fast"))
        seen_between = _loads(first)  # what a dbt run at this moment reads
        fast_done.set()
        worker.join(30)
        assert not worker.is_alive()
    finally:
        second.close()
    assert [(seq, _utc(stamp)) for seq, _, stamp, _ in seen_between] == [(1, STAMP)]
    loads = _loads(first)
    # numbered after the fast one: the former watermark (the newest stamp read minus 3
    # hours) would never have read it; tests/dbt/test_incremental.py builds on such a load
    assert [(seq, _utc(stamp)) for seq, _, stamp, _ in loads] == [
        (1, STAMP), (2, STAMP - timedelta(hours=5))]
