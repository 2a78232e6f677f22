"""Retention as checks (PCI DSS 10.5.1), on a copy of the built DuckDB warehouse against the
world's PostgreSQL: ``audit_retention`` and ``audit_hot_tier`` pass on good data, fail on a
missing recent day (both) and on an old gap (retention only), and each failure reaches the
local Datadog intake as an ``audit:<check>`` event and a ``missing_days`` point."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import dagster as dg
import pytest

from ingestion.warehouse.duckdb import DuckDBWarehouse
from orchestration.defs.audit.retention import CHECKS, MART, RETENTION_CHECKS
from orchestration.defs.dbt.assets import mart_relation
from orchestration.resources import DatadogResource, SourcesResource, WarehouseResource
from quality import retention
from sandbox.intake import IntakeThread, read_records
from tests.warehouses import Built, rows

KEY = "retention-test-key"


@pytest.fixture()
def copy(built_duckdb: Built, tmp_path, monkeypatch):
    """A writable copy of the built warehouse, as the configured DuckDB target."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_duckdb.path, path)
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(path))
    monkeypatch.setenv("TOKENWATCH_DUCKDB_REPLICA_PATH", str(tmp_path / "replica.duckdb"))
    return path


@pytest.fixture()
def intake(tmp_path):
    with IntakeThread(tmp_path / "records.jsonl", api_key=KEY) as it:
        yield it


def _days(built: Built) -> list[date]:
    return [d for (d,) in rows(built, f"select distinct cast(occurred_at as date) from "
                                      f"{mart_relation('audit_token_transitions')} order by 1")]


def _delete_day(path, day: date) -> None:
    wh = DuckDBWarehouse(path)
    try:
        for mart, column in retention.AUDIT_MART_DAYS.items():
            wh.execute(f"delete from {mart_relation(mart)} where {column} = %s", [day])
    finally:
        wh.close()


def _run(world, intake, partition: str):
    """The two checks alone (the marts are built), as the compliance job runs them."""
    from orchestration.defs.dbt.assets import dbt_resource, tokenwatch_dbt

    checks = [dg.AssetCheckKey(MART, name) for name in CHECKS]
    return dg.materialize(
        # a selection of checks only has no asset to take the partitions from: the run's
        # partition is given as its tag, as the schedule's run request sets it
        [tokenwatch_dbt, *RETENTION_CHECKS], tags={"dagster/partition": partition},
        selection=dg.AssetSelection.checks(*checks),
        resources={"warehouse": WarehouseResource(), "dbt": dbt_resource(),
                   "sources": SourcesResource(pg_dsn=world.pg_dsn),
                   "datadog": DatadogResource(env="prod", api_key=KEY, api_host=intake.url)})


def _by_name(result) -> dict[str, dg.AssetCheckEvaluation]:
    found = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {e.asset_key for e in found.values()} == {MART}
    return found


def test_the_window_is_twelve_months_and_the_hot_tier_ninety_days():
    assert retention.retention_start(date(2027, 2, 28)) == date(2026, 3, 1)
    assert retention.retention_start(date(2028, 2, 29)) == date(2027, 3, 1)
    assert retention.hot_start(date(2026, 12, 1)) == date(2026, 9, 3)
    assert (date(2026, 12, 1) - retention.hot_start(date(2026, 12, 1))).days + 1 == 90


def test_good_data_passes_and_a_missing_day_fails_both_checks(built_duckdb, world, copy,
                                                               intake):
    days = _days(built_duckdb)
    assert len(days) >= 3
    last = days[-1].isoformat()

    good = _by_name(_run(world, intake, last))
    assert good["audit_retention"].passed and good["audit_hot_tier"].passed
    assert good["audit_retention"].metadata["source_days"].value == len(days)
    assert good["audit_retention"].metadata["missing_days"].value == 0
    assert not read_records(intake.records, "/api/v1/events")  # nothing to raise
    sent = [s for r in read_records(intake.records, "/api/v1/series") for s in r["body"]["series"]]
    assert sorted((s["metric"], s["tags"], s["points"][0][1]) for s in sent) == [
        ("tokenwatch.audit.marts.missing_days", ["env:prod", "tier:hot"], 0.0),
        ("tokenwatch.audit.marts.missing_days", ["env:prod", "tier:retention"], 0.0)]

    _delete_day(copy, days[1])
    bad = _by_name(_run(world, intake, last))
    for name in ("audit_retention", "audit_hot_tier"):
        check = bad[name]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert check.metadata["missing_days"].value == 2  # one day, two marts
        assert check.metadata["missing_by_mart"].value == {
            "audit_token_transitions": [days[1].isoformat()],
            "audit_daily_summary": [days[1].isoformat()]}
        assert f"audit_token_transitions lacks 1 day(s): {days[1]}" in check.description
    events = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert sorted(e["tags"][2] for e in events) == ["audit:hot_tier", "audit:retention"]
    assert all(e["alert_type"] == "error" and f"partition:{last}" in e["tags"]
               and "Runbook: " in e["text"] and str(days[1]) in e["text"] for e in events)
    latest = [s for r in read_records(intake.records, "/api/v1/series")[-1:]
              for s in r["body"]["series"]]
    assert {s["points"][0][1] for s in latest} == {2.0}


def test_an_old_gap_fails_retention_only(built_duckdb, world, copy):
    days = _days(built_duckdb)
    _delete_day(copy, days[0])
    as_of = days[0] + timedelta(days=retention.HOT_DAYS + 5)  # the first day is no longer hot
    wh = DuckDBWarehouse(copy)
    try:
        kept = retention.retention_check(wh, mart_relation, world.pg_dsn, as_of)
        hot = retention.hot_tier_check(wh, mart_relation, world.pg_dsn, as_of)
        a_year_on = retention.retention_check(wh, mart_relation, world.pg_dsn,
                                              days[0] + timedelta(days=366))
    finally:
        wh.close()
    assert not kept.passed
    assert kept.metadata["missing_by_mart"]["audit_token_transitions"] == [days[0].isoformat()]
    assert hot.passed and hot.metadata["source_days"] == 0  # nothing of the data is that recent
    # past the 12 months the day is out of the window: no longer retention's to hold
    assert a_year_on.passed
