"""Write-audit-publish: a day the quality gate withholds never reaches the analysts' schema.

On DuckDB (a copy of the session's built warehouse) and PostgreSQL (inside a transaction that
is rolled back, so the shared database keeps nothing), with the gate's own KPI suite: a day of
a KPI mart is corrupted in its build schema (a rate of 1.5); the gate withholds it and
publication leaves it out of ``analytics_published``, every mart of it; a passed day corrupted
later in the build schema stays as the gate saw it until the gate passes it again; the fixed
day, re-gated, appears with its fixed rows. On PostgreSQL the analyst role reads the published
schema and nothing of the build schemas.
"""

from __future__ import annotations

import shutil

import psycopg
import pytest

from ingestion.warehouse.duckdb import DuckDBWarehouse
from ingestion.warehouse.postgres import PostgresWarehouse
from orchestration.defs.gate.checks import kpi_suite_by_day
from quality import verdicts
from quality.verdicts import as_date
from reporting import published
from reporting.kpis import KPI_MARTS
from reporting.tableau.exposures import extracts
from tests.reporting.test_tableau import relation_of
from tokenwatch import kpis

MART, DAY_COLUMN, RATE = "wallet_provisioning_daily", "request_date", "provision_success_rate"


class RolledBack(Exception):
    pass


def _gate(wh, relation, days) -> dict:
    """The gate's KPI suite of the mart on each day, recorded as the gate records it, then
    publication, as orchestration/defs/gate/checks.py runs them."""
    results = kpi_suite_by_day(wh, relation(MART), DAY_COLUMN, MART, days)
    verdicts.record(wh, {d: [(f"{MART}:kpi_suite", r.passed)] for d, r in results.items()},
                    "test-run")
    return {"results": results, "published": published.publish(wh, relation, days)}


def _days(wh, relation: str, column: str) -> set:
    return {as_date(d) for (d,) in wh.query(f"select distinct {column} from {relation}")}


def _rates(wh, relation: str, day) -> dict:
    """``{wallet_network_day_id: rate}`` of the mart's rows of ``day``."""
    return {key: (None if rate is None else float(rate)) for key, rate in wh.query(
        f"select wallet_network_day_id, {RATE} from {relation} "
        f"where {DAY_COLUMN} = cast('{day}' as date)")}


def _scenario(wh, relation) -> None:
    build, shown = relation(MART), f"{published.SCHEMA}.{MART}"
    days = sorted(_days(wh, build, DAY_COLUMN))
    assert len(days) >= 3, days
    first, bad = days[0], days[1]
    original = _rates(wh, build, bad)

    # the gate passes every day: each analyst mart shows each day the build has
    clean = _gate(wh, relation, days)
    assert all(r.passed for r in clean["results"].values())
    assert set(clean["published"].days) == set(days)
    assert _days(wh, shown, DAY_COLUMN) == set(days)
    assert _rates(wh, shown, bad) == original

    # a corrupted day: withheld, and gone from every analyst mart
    wh.execute(f"update {build} set {RATE} = 1.5 where {DAY_COLUMN} = cast('{bad}' as date)")
    corrupted = _gate(wh, relation, [bad])
    assert not corrupted["results"][bad].passed
    assert corrupted["published"].removed == (bad,)
    for mart in published.ANALYST_MARTS:
        if mart.day_column:
            held = _days(wh, f"{published.SCHEMA}.{mart.model}", mart.day_column)
            assert bad not in held, mart.model
    assert 1.5 not in {r for (r,) in wh.query(f"select {RATE} from {shown}")}

    # a passed day changed in the build after the gate saw it: the analysts keep what it saw
    # until the gate passes it again
    seen_first = _rates(wh, shown, first)
    wh.execute(f"update {build} set {RATE} = 0 where {DAY_COLUMN} = cast('{first}' as date)")
    published.publish(wh, relation, [])  # another run's publication, for no day of these
    assert _rates(wh, shown, first) == seen_first

    # fixed and re-gated: it appears, with the fixed rows
    for key, rate in original.items():
        wh.execute(f"update {build} set {RATE} = %s where wallet_network_day_id = %s",
                   [rate, key])
    fixed = _gate(wh, relation, [bad])
    assert fixed["results"][bad].passed
    assert bad in fixed["published"].days and bad in fixed["published"].rewritten
    assert _rates(wh, shown, bad) == original


@pytest.fixture()
def duck(built_duckdb, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy2(built_duckdb.path, path)
    wh = DuckDBWarehouse(path)
    try:
        yield wh, relation_of(built_duckdb)
    finally:
        wh.close()


def test_duckdb_withheld_day_never_reaches_the_analysts(duck):
    _scenario(*duck)


def test_postgres_withheld_day_never_reaches_the_analysts(built_postgres, monkeypatch):
    analyst, compliance = built_postgres.roles
    monkeypatch.setenv("TOKENWATCH_ANALYST_ROLES", analyst)
    wh = PostgresWarehouse(built_postgres.dsn)
    try:
        with pytest.raises(RolledBack), wh.transaction():
            _scenario(wh, relation_of(built_postgres))
            can = wh.query(
                "select has_table_privilege(%s, 'analytics_published.wallet_provisioning_daily',"
                " 'select'), has_table_privilege(%s, 'analytics_wallet."
                "wallet_provisioning_daily', 'select'), has_schema_privilege(%s, "
                "'analytics_published', 'usage'), has_table_privilege(%s, "
                "'analytics_published.wallet_provisioning_daily', 'select')",
                [analyst, analyst, analyst, compliance])[0]
            raise RolledBack
    finally:
        wh.close()
    assert can == (True, False, True, False)
    with psycopg.connect(built_postgres.dsn) as conn:  # the shared database kept nothing
        assert conn.execute("select count(*) from information_schema.schemata "
                            "where schema_name = 'analytics_published'").fetchone() == (0,)


def test_the_analyst_marts_cover_every_kpi_mart_and_analyst_extract():
    by_model = {m.model: m.day_column for m in published.ANALYST_MARTS}
    compliance = {p.stem for p in (kpis.dbt_project_dir() / kpis.MARTS_DIR / "compliance")
                  .glob("*.sql")}
    for mart in kpis.contract().marts:
        if mart.model not in compliance:
            assert by_model.get(mart.model) == mart.day_column, mart.model
    for extract in extracts():
        for table in extract.tables:
            if table.model not in compliance:
                assert by_model.get(table.model, "missing") == table.day_column, table.model
    assert not compliance & set(by_model)
    assert set(KPI_MARTS) - compliance <= set(by_model)
