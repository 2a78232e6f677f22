"""The transition log reconciles with PostgreSQL below the extraction watermark, on DuckDB and
PostgreSQL warehouses; a missing or an extra warehouse row fails with the right numbers."""

from __future__ import annotations

import json
import time

import pytest

from ingestion.sources.transitions import STATE_KEY, load_transitions
from quality.reconcile import reconcile_transitions
from tests.quality.conftest import write_token

TARGETS = ["duckdb", "postgres"]
FUNNEL = ["TokenRequested", "ProvisionInitiated", "ProvisionPending", "ProvisionSuccess"]


def _load_all(source_dsn: str, wh, rows: int, timeout: float = 90) -> None:
    """Load until ``rows`` rows arrived: a long transaction elsewhere on the server holds the
    snapshot's xmin back, which delays rows and never loses them."""
    loaded, deadline = 0, time.monotonic() + timeout
    while loaded < rows and time.monotonic() < deadline:
        loaded += load_transitions(source_dsn, wh).rows_loaded
        if loaded < rows:
            time.sleep(0.5)
    assert loaded == rows


@pytest.fixture(params=TARGETS)
def loaded(request, source_dsn, warehouse_factory):
    """A warehouse holding the source's 12 rows: 2 tokens through the funnel, 1 failed."""
    write_token(source_dsn, "tok-a", FUNNEL)
    write_token(source_dsn, "tok-b", FUNNEL)
    write_token(source_dsn, "tok-c", FUNNEL[:3] + ["ProvisionFailed"])
    wh = warehouse_factory(request.param)
    _load_all(source_dsn, wh, 12)
    return wh


def test_equal_data_passes(source_dsn, loaded):
    result = reconcile_transitions(source_dsn, loaded)
    assert result.passed, result.summary
    meta = result.metadata
    assert meta["source_rows"] == meta["warehouse_rows"] == 12 and meta["difference"] == 0
    assert meta["watermark"] == int(loaded.get_state(STATE_KEY))
    assert meta["source_rows_by_state"] == {"ProvisionFailed": 1, "ProvisionInitiated": 3,
                                            "ProvisionPending": 3, "ProvisionSuccess": 2,
                                            "TokenRequested": 3}
    assert meta["state_differences"] == {}
    assert "12 rows" in result.summary
    json.dumps(meta)


def test_rows_written_after_the_watermark_are_not_judged(source_dsn, loaded):
    write_token(source_dsn, "tok-late", FUNNEL)  # not loaded yet: above the watermark
    result = reconcile_transitions(source_dsn, loaded)
    assert result.passed, result.summary
    assert result.metadata["source_rows"] == 12


def test_a_row_missing_in_the_warehouse_fails_with_the_numbers(source_dsn, loaded):
    loaded.execute("delete from raw.token_state_transitions where token_ref = %s "
                   "and to_state = %s", ["tok-b", "ProvisionSuccess"])
    result = reconcile_transitions(source_dsn, loaded)
    assert not result.passed
    meta = result.metadata
    assert (meta["source_rows"], meta["warehouse_rows"], meta["difference"]) == (12, 11, -1)
    assert list(meta["state_differences"]) == ["ProvisionSuccess"]
    diff = meta["state_differences"]["ProvisionSuccess"]
    assert (diff["source"], diff["warehouse"], diff["difference"]) == (2, 1, -1)
    assert "warehouse has 11 rows, source 12" in result.summary
    assert "difference -1" in result.summary and "ProvisionSuccess 1 vs 2" in result.summary


def test_an_extra_row_in_the_warehouse_fails_with_the_numbers(source_dsn, loaded):
    loaded.execute("insert into raw.token_state_transitions (transition_id, token_ref, version, "
                   "event_id, to_state, actor, wallet_id, network, token_type, xact_id) "
                   "select 999999, token_ref, 9, 'forged', 'TokenSuspended', actor, wallet_id, "
                   "network, token_type, xact_id from raw.token_state_transitions "
                   "where token_ref = 'tok-a' and version = 1")
    result = reconcile_transitions(source_dsn, loaded)
    assert not result.passed
    meta = result.metadata
    assert (meta["source_rows"], meta["warehouse_rows"], meta["difference"]) == (12, 13, 1)
    assert meta["state_differences"] == {"TokenSuspended": {
        "source": 0, "warehouse": 1, "difference": 1, "source_id_sum": 0,
        "warehouse_id_sum": 999999}}
    assert "difference +1" in result.summary and "TokenSuspended 1 vs 0" in result.summary


def test_a_swapped_row_keeps_the_count_and_still_fails(source_dsn, loaded):
    loaded.execute("update raw.token_state_transitions set transition_id = 777777 "
                   "where token_ref = 'tok-c' and to_state = 'ProvisionFailed'")
    result = reconcile_transitions(source_dsn, loaded)
    assert not result.passed and result.metadata["difference"] == 0
    assert list(result.metadata["state_differences"]) == ["ProvisionFailed"]
    assert "same count, other transition_ids" in result.summary


def test_an_empty_warehouse_before_any_load_passes(source_dsn, warehouse_factory):
    write_token(source_dsn, "tok-a", FUNNEL)
    result = reconcile_transitions(source_dsn, warehouse_factory("duckdb"))
    assert result.passed and result.metadata["watermark"] == 0
    assert result.metadata["source_rows"] == result.metadata["warehouse_rows"] == 0


def _row_around_the_service(source_dsn: str, ref: str, when: str) -> int:
    """A transition written straight into the log (not through the service) with an
    impossible timestamp: the loader quarantines it; the append-only log keeps it forever."""
    import psycopg

    from tests.quality.conftest import HASH

    with psycopg.connect(source_dsn) as conn:
        conn.execute("insert into tokens values (%s, 'apple_pay', 'visa', 'hce', 'ref', "
                     "'TokenRequested', 1, %s, now(), now())", [ref, HASH])
        (tid,), = conn.execute(
            "insert into token_state_transitions (token_ref, version, event_id, to_state, "
            "actor, wallet_id, network, token_type, occurred_at, recorded_at, request_hash, "
            "prev_hash, row_hash) values (%s, 1, %s, 'TokenRequested', 'wallet', 'apple_pay', "
            "'visa', 'hce', %s::timestamptz, now(), %s, %s, %s) returning transition_id",
            [ref, ref, when, HASH, HASH, HASH]).fetchall()
    return tid


@pytest.mark.parametrize(("target", "when"), [
    ("duckdb", "infinity"), ("postgres", "infinity"), ("duckdb", "-infinity"),
    ("duckdb", "0044-03-15 12:00:00+00 BC"), ("duckdb", "9999-12-31T23:59:59-14:00")])
def test_a_quarantined_source_row_is_accounted_for_not_a_failure_for_good(
        target, when, source_dsn, warehouse_factory):
    # Regression: the reconciliation ignored raw.quarantine, so one row the loader refused
    # failed it on every run after, and the gate withheld every day from then on.
    write_token(source_dsn, "tok-a", FUNNEL)
    # the loader's range (Arrow's) and the reconciliation's (SQL's) must agree on every kind
    tid = _row_around_the_service(source_dsn, "tok-odd", when)
    wh = warehouse_factory(target)
    _load_all(source_dsn, wh, 4)
    assert wh.query("select location from raw.quarantine") == [(f"pg:token_state_transitions/"
                                                                 f"{tid}",)]
    result = reconcile_transitions(source_dsn, wh)
    assert result.passed, result.summary
    assert result.metadata["source_rows_quarantined"] == 1
    assert result.metadata["quarantined_transition_ids"] == [tid]
    assert "1 more in raw.quarantine" in result.summary


@pytest.mark.parametrize("target", TARGETS)
def test_a_forged_quarantine_entry_does_not_hide_a_deleted_row(target, source_dsn,
                                                               warehouse_factory):
    # someone with the warehouse's write rights deletes a loaded row and files a quarantine
    # entry for it: the source row is an ordinary one, so it still counts, and the check fails
    write_token(source_dsn, "tok-a", FUNNEL)
    wh = warehouse_factory(target)
    _load_all(source_dsn, wh, 4)
    (tid,), = wh.query("select transition_id from raw.token_state_transitions "
                       "where version = 4")
    wh.execute("delete from raw.token_state_transitions where transition_id = %s", [tid])
    wh.execute("insert into raw.quarantine (source, location, raw_text, reason) values "
               "('token_state_transitions', %s, '{}', 'field occurred_at is out of range')",
               [f"pg:token_state_transitions/{tid}"])
    result = reconcile_transitions(source_dsn, wh)
    assert not result.passed, result.summary
    assert result.metadata["difference"] == -1
