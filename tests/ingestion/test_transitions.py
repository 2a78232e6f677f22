"""The transition log into the raw layer: late commits are never skipped, and a run killed in
the middle of a batch, then re-run, leaves exactly the source's rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import psycopg
import pyarrow as pa
import pytest

from ingestion.accounting import transitions_accounting
from ingestion.read_ahead import read_ahead
from ingestion.sources.transitions import STATE_KEY, _rechunk, load_transitions

TARGETS = ["duckdb", "postgres"]
HASH = "0" * 64


def _write_token(conn: psycopg.Connection, token_ref: str, transitions: int = 1) -> None:
    """A token and ``transitions`` rows of its log, in the caller's transaction (the hash chain
    is not what these tests are about)."""
    conn.execute(
        "insert into tokens values (%s, 'apple_pay', 'visa', 'hce', 'ref', 'TokenRequested', "
        "%s, %s, now(), now())", [token_ref, transitions, HASH])
    conn.execute(
        "insert into token_state_transitions (token_ref, version, event_id, from_state, "
        "to_state, actor, wallet_id, network, token_type, occurred_at, recorded_at, "
        "request_hash, prev_hash, row_hash) "
        "select %s, v, %s || '-' || v, null, 'TokenRequested', 'wallet', 'apple_pay', 'visa', "
        "'hce', now(), now(), %s, %s, %s from generate_series(1, %s) v",
        [token_ref, token_ref, HASH, HASH, HASH, transitions])


def _load_until(source_dsn: str, wh, rows: int, timeout: float = 90) -> int:
    """Load until ``rows`` rows arrived. xmin is cluster-wide: a long transaction elsewhere on
    the server (another test session, a benchmark) delays rows, never loses them."""
    loaded, deadline = 0, time.monotonic() + timeout
    while loaded < rows and time.monotonic() < deadline:
        loaded += load_transitions(source_dsn, wh).rows_loaded
        if loaded < rows:
            time.sleep(0.5)
    return loaded


def _ids(wh) -> list[int]:
    return [r[0] for r in wh.query("select transition_id from raw.token_state_transitions "
                                   "order by 1")]


@pytest.mark.parametrize("target", TARGETS)
def test_a_transaction_that_commits_late_is_loaded_exactly_once(source_dsn, warehouse_factory,
                                                                target):
    wh = warehouse_factory(target)
    with psycopg.connect(source_dsn) as slow, psycopg.connect(source_dsn,
                                                              autocommit=True) as fast:
        _write_token(slow, "tok-slow")  # begins first, stays open
        slow_xact = int(slow.execute("select pg_current_xact_id()::text").fetchone()[0])
        with fast.transaction():
            _write_token(fast, "tok-fast")  # a later transaction that commits first
        first = load_transitions(source_dsn, wh)
        # the open transaction holds the snapshot's xmin: nothing at or above it is read yet
        assert first.rows_loaded == 0 and first.watermark_to <= slow_xact
        slow.commit()
    assert _load_until(source_dsn, wh, 2) == 2
    third = load_transitions(source_dsn, wh)
    assert third.rows_loaded == 0 and third.rows_read == 0
    refs = [r[0] for r in wh.query("select token_ref from raw.token_state_transitions "
                                   "order by 1")]
    assert refs == ["tok-fast", "tok-slow"]
    assert int(wh.get_state(STATE_KEY)) > slow_xact


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys, time
    from ingestion.sources.transitions import load_transitions
    from ingestion.warehouse import open_warehouse

    wh = open_warehouse(sys.argv[2])

    def die(chunk):
        if chunk == 3:  # rows of the third chunk are written, its commit has not happened
            os.kill(os.getpid(), signal.SIGKILL)

    deadline = time.monotonic() + 90  # a long transaction elsewhere may hold xmin back
    while time.monotonic() < deadline:
        load_transitions(sys.argv[1], wh, inside_chunk=die, chunk_bytes=20_000)
        time.sleep(0.5)
    sys.exit("never reached the third chunk")
""")


@pytest.mark.parametrize("target", TARGETS)
def test_a_run_killed_mid_batch_then_rerun_loads_exactly_the_source(
        source_dsn, warehouse_factory, target, monkeypatch):
    with psycopg.connect(source_dsn) as conn:
        for t in range(40):  # 40 transactions of 25 rows: chunks end inside transactions
            _write_token(conn, f"tok-{t:03d}", transitions=25)
            conn.commit()
        source_ids = [r[0] for r in conn.execute(
            "select transition_id from token_state_transitions order by 1")]
    wh = warehouse_factory(target)
    env = {"TOKENWATCH_WAREHOUSE": target}
    if target == "duckdb":
        env["TOKENWATCH_DUCKDB_PATH"] = str(wh.path)
        wh.close()  # one writer at a time on a DuckDB file
    else:
        env["TOKENWATCH_WAREHOUSE_DSN"] = wh.dsn
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, source_dsn, target],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # killed, not a clean exit
    if target == "duckdb":
        wh = warehouse_factory("duckdb").__class__(wh.path)  # reopen: recovers the WAL
    partial = _ids(wh)
    assert 0 < len(partial) < len(source_ids)  # two chunks committed, the third did not
    assert len(set(partial)) == len(partial)
    assert _load_until(source_dsn, wh, len(source_ids) - len(partial)) == (
        len(source_ids) - len(partial))
    assert _ids(wh) == source_ids
    wh.close()


@pytest.mark.parametrize("target", TARGETS)
def test_a_timestamp_the_raw_layer_cannot_hold_is_quarantined_not_a_stop(
        source_dsn, warehouse_factory, target):
    """PostgreSQL holds 'infinity' and years past 9999 (9999-12-31T23:59:59-14:00 is in year
    10000 in UTC); Arrow and the raw layer do not. The append-only log cannot lose such a row:
    it goes to quarantine, once, and the rows around it load."""
    from tokenwatch.pan import find_pan_like

    wh = warehouse_factory(target)
    with psycopg.connect(source_dsn) as conn:
        _write_token(conn, "tok-before", transitions=3)
        conn.commit()
        for ref, when in (("tok-y10k", "9999-12-31T23:59:59-14:00"), ("tok-inf", "infinity"),
                          ("tok-bc", "0044-03-15 12:00:00+00 BC"),
                          ("tok-neginf", "-infinity")):
            conn.execute("insert into tokens values (%s, 'apple_pay', 'visa', 'hce', 'ref', "
                         "'TokenRequested', 1, %s, now(), now())", [ref, HASH])
            conn.execute(
                "insert into token_state_transitions (token_ref, version, event_id, to_state, "
                "actor, wallet_id, network, token_type, occurred_at, recorded_at, request_hash, "
                "prev_hash, row_hash) values (%s, 1, %s, 'TokenRequested', 'wallet', "
                "'apple_pay', 'visa', 'hce', %s::timestamptz, now(), %s, %s, %s)",
                [ref, ref, when, HASH, HASH, HASH])
            conn.commit()
        _write_token(conn, "tok-after", transitions=2)
        conn.commit()
        ids = dict(conn.execute("select token_ref, min(transition_id) from "
                                "token_state_transitions group by 1").fetchall())
    # a first run stops after the chunk holding tok-y10k (one row per chunk): the next run
    # re-reads that chunk's transaction, and quarantines its row once only
    def stop(chunk: int) -> None:
        if chunk == 5:
            raise RuntimeError("stopped")

    deadline = time.monotonic() + 90  # a long transaction elsewhere may hold xmin back
    while time.monotonic() < deadline:
        try:
            load_transitions(source_dsn, wh, inside_chunk=stop, chunk_bytes=1)
        except RuntimeError:
            break
        time.sleep(0.5)
    assert wh.query("select location from raw.quarantine") == [
        (f"pg:token_state_transitions/{ids['tok-y10k']}",)]
    assert _load_until(source_dsn, wh, 2) == 2  # the three bad rows do not stop it
    refs = [r[0] for r in wh.query("select distinct token_ref from raw.token_state_transitions "
                                   "order by 1")]
    assert refs == ["tok-after", "tok-before"]
    rows = dict(wh.query("select location, reason from raw.quarantine "
                         "where source = 'token_state_transitions'"))
    assert set(rows) == {f"pg:token_state_transitions/{ids[r]}"
                         for r in ("tok-y10k", "tok-inf", "tok-bc", "tok-neginf")}
    assert all(r.startswith("field 'occurred_at' is ") for r in rows.values())
    assert any("10000-01-01" in r for r in rows.values())
    for (raw_text,) in wh.query("select raw_text from raw.quarantine"):
        assert not find_pan_like(raw_text) and "tok-" in raw_text
    again = load_transitions(source_dsn, wh)
    assert again.rows_loaded == again.quarantined == 0
    assert wh.count("quarantine") == 4
    accounted = transitions_accounting(wh, source_dsn)  # quarantined lines count as read
    assert accounted.passed, accounted.summary
    assert accounted.observed["rows_in_quarantine"] == 4


@pytest.mark.parametrize("target", TARGETS)
def test_every_transition_read_is_a_row_or_quarantined(source_dsn, warehouse_factory, target):
    """The raw check's ledger: what was read below the watermark is in the raw layer; a row
    deleted after loading, or one replaced by another transition_id, fails it."""
    wh = warehouse_factory(target)
    assert transitions_accounting(wh, source_dsn).passed  # nothing read, nothing owed
    with psycopg.connect(source_dsn) as conn:
        for i in range(4):
            _write_token(conn, f"tok-acc-{i}", transitions=3)
            conn.commit()
    assert _load_until(source_dsn, wh, 12) == 12
    clean = transitions_accounting(wh, source_dsn)
    assert clean.passed, clean.summary
    assert clean.observed["read_below_watermark"] == 12
    assert clean.summary.startswith("12 transitions read below watermark")

    (lost,), = wh.query("select max(transition_id) from raw.token_state_transitions")
    wh.execute(f"update raw.token_state_transitions set transition_id = {lost + 1000} "
               f"where transition_id = {lost}")  # as many rows, another id
    swapped = transitions_accounting(wh, source_dsn)
    assert not swapped.passed and "other transition_ids" in swapped.summary
    wh.execute(f"delete from raw.token_state_transitions where transition_id = {lost + 1000}")
    broken = transitions_accounting(wh, source_dsn)
    assert not broken.passed
    assert "12 transitions read" in broken.summary and "difference -1" in broken.summary
    assert broken.observed["rows_in_raw_token_state_transitions"] == 11


def test_a_chunk_is_regrouped_to_its_size_down_to_one_row():
    batch = pa.RecordBatch.from_pydict({"n": list(range(10)), "s": ["x" * 100] * 10})
    assert [t.num_rows for t in _rechunk([batch], 1)] == [1] * 10
    assert [t.num_rows for t in _rechunk([batch, batch], 10 ** 9)] == [20]
    per_row = batch.nbytes // batch.num_rows
    sizes = [t.num_rows for t in _rechunk([batch, batch], per_row * 3)]
    assert sum(sizes) == 20 and max(sizes) <= 3
    joined = pa.concat_tables(_rechunk([batch, batch], per_row * 3))
    assert joined["n"].to_pylist() == list(range(10)) * 2  # order kept


def test_read_ahead_hands_over_the_readers_error_and_stops_when_the_consumer_does():
    def failing():
        yield 1
        raise ValueError("the socket went away")

    got = []
    with pytest.raises(ValueError, match="socket went away"):
        for item in read_ahead(failing(), depth=1, name="transitions-read-ahead"):
            got.append(item)
    assert got == [1]

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    reading = read_ahead(endless(), depth=2, name="transitions-read-ahead")
    assert next(reading) == 0
    reading.close()
    before = len(produced)
    time.sleep(0.3)
    assert len(produced) == before <= 4  # the thread stopped, a bounded distance ahead
    assert not [t for t in threading.enumerate() if t.name == "transitions-read-ahead"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_write_that_fails_mid_load_leaves_no_reader_and_no_source_session(
        source_dsn, warehouse_factory, target):
    """The source is read on a thread ahead of the writes: a failing write stops it, closes
    the source's transaction, and keeps what was committed."""
    wh = warehouse_factory(target)
    with psycopg.connect(source_dsn) as conn:
        _write_token(conn, "tok-many", transitions=300)
        conn.commit()

    def fail(chunk: int) -> None:
        if chunk == 3:
            raise RuntimeError("the warehouse went away")

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            load_transitions(source_dsn, wh, inside_chunk=fail, chunk_bytes=1)
        except RuntimeError:
            break
        time.sleep(0.5)  # xmin held back by a transaction elsewhere: nothing read yet
    else:
        pytest.fail("the load never reached its third chunk")
    assert not [t for t in threading.enumerate() if t.name == "transitions-read-ahead"]
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        me = conn.execute("select pg_backend_pid()").fetchone()[0]
        readers = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and pid <> %s and backend_xmin is not null and query like '%%xact_id%%'",
            [me]).fetchone()[0]
    assert readers == 0
    assert wh.count("token_state_transitions") == 2  # chunks 1 and 2 committed
    assert _load_until(source_dsn, wh, 298) == 298
