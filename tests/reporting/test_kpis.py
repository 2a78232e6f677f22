"""The KPI points of a day, read from real DuckDB marts as the dbt project's declarations say
(``tokenwatch/kpis.py``): the same metrics, tags and values as before the declarations moved to
the yml, and one more yml block is enough for a KPI to be gated and published."""

from __future__ import annotations

from datetime import date

import pytest

from ingestion.warehouse.duckdb import DuckDBWarehouse
from quality import suites
from reporting.datadog import catalog
from reporting.kpis import KPI_MARTS, day_timestamp, kpi_points
from tests.tokenwatch.test_kpis import WALLET_YML, copy_project, edit, kpi_of
from tokenwatch import kpis

DAY = date(2026, 1, 1)
MARTS = {
    "wallet_provisioning_daily": """
        select 'apple_pay' as wallet_id, 'VISA' as network, date '2026-01-01' as request_date,
            100 as requests, 0.8 as green_share, 0.15 as yellow_share, 0.05 as red_share,
            0.9 as provision_success_rate, cast(null as double) as yellow_completion_rate,
            420.5 as time_to_activate_p95_seconds""",
    "wallet_service_daily": """
        select 'google_pay' as wallet_id, date '2026-01-01' as activity_date,
            1000 as api_requests, 0.01 as client_error_rate, 0.002 as server_error_rate,
            0.012 as error_rate, 120.0 as gateway_latency_p50_ms,
            300.0 as gateway_latency_p95_ms, 310.0 as gateway_latency_p99_ms,
            320.0 as provisioning_latency_p50_ms, 900.0 as provisioning_latency_p95_ms,
            2500.0 as provisioning_latency_p99_ms, 40.0 as lambda_duration_p50_ms,
            80.0 as lambda_duration_p95_ms, 95.0 as lambda_duration_p99_ms,
            990 as lambda_invocations""",
    "wallet_token_usage_daily": """
        select 'acme_wallet' as wallet_id, date '2026-01-01' as usage_date, 50 as active_tokens,
            20 as transacting_tokens, 90 as authorisations, 0 as authorisations_other_currency,
            1.8 as authorisations_per_active_token""",
    "audit_daily_summary": """
        select date '2026-01-01' as calendar_date, 'edited_row' as exception_type, 2 as findings
        union all select date '2025-12-31', 'edited_row', 7""",
}
#: What was published before the declarations moved into the yml (reporting/kpis.py's
#: KPI_SOURCES then): metric, value, tags besides env.
EXPECTED = {
    ("tokenwatch.provisioning.requests", 100.0, ("network:visa", "wallet:apple_pay")),
    ("tokenwatch.provisioning.success_rate", 0.9, ("network:visa", "wallet:apple_pay")),
    ("tokenwatch.provisioning.time_to_activate_p95_s", 420.5,
     ("network:visa", "wallet:apple_pay")),
    ("tokenwatch.provisioning.decision_share", 0.8,
     ("decision:green", "network:visa", "wallet:apple_pay")),
    ("tokenwatch.provisioning.decision_share", 0.15,
     ("decision:yellow", "network:visa", "wallet:apple_pay")),
    ("tokenwatch.provisioning.decision_share", 0.05,
     ("decision:red", "network:visa", "wallet:apple_pay")),
    ("tokenwatch.service.requests", 1000.0, ("wallet:google_pay",)),
    ("tokenwatch.service.error_rate_4xx", 0.01, ("wallet:google_pay",)),
    ("tokenwatch.service.error_rate_5xx", 0.002, ("wallet:google_pay",)),
    ("tokenwatch.service.latency_p50_ms", 120.0, ("wallet:google_pay",)),
    ("tokenwatch.service.latency_p95_ms", 300.0, ("wallet:google_pay",)),
    ("tokenwatch.service.latency_p99_ms", 310.0, ("wallet:google_pay",)),
    ("tokenwatch.tokens.active", 50.0, ("wallet:acme_wallet",)),
    ("tokenwatch.tokens.transacting", 20.0, ("wallet:acme_wallet",)),
    ("tokenwatch.tokens.authorisations_per_active", 1.8, ("wallet:acme_wallet",)),
    ("tokenwatch.audit.exceptions", 2.0, ("exception_type:edited_row",)),
}


@pytest.fixture()
def warehouse(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    wh.ensure_schema()
    wh.execute("create schema if not exists marts")
    for mart, select in MARTS.items():
        wh.execute(f"create table marts.{mart} as {select}")
    yield wh
    wh.close()


def relation(model: str) -> str:
    return f"marts.{model}"


def _published(points) -> set[tuple]:
    assert {p.timestamp for p in points} == {day_timestamp(DAY)}
    assert all("env:prod" in p.tags for p in points)
    return {(p.metric, p.value, tuple(t for t in p.tags if t != "env:prod")) for p in points}


def test_the_points_are_those_published_before(warehouse):
    points = kpi_points(warehouse.query, relation, DAY, "prod")
    assert _published(points) == EXPECTED  # the null yellow completion rate is not sent
    assert len(points) == len(EXPECTED)
    assert points == kpi_points(warehouse.query, relation, DAY, "prod")  # a stable order
    assert set(KPI_MARTS) == set(MARTS)
    assert {m for m, _, _ in EXPECTED} | {"tokenwatch.provisioning.yellow_completion_rate"} == (
        set(catalog.KPI_METRICS))


def test_a_new_declaration_is_gated_and_published_with_no_other_edit(warehouse, tmp_path,
                                                                      monkeypatch):
    from orchestration.defs.gate.checks import KPI_SUITES, kpi_suite_by_day

    metric = "tokenwatch.service.lambda_invocations"
    project = copy_project(tmp_path)
    edit(project, WALLET_YML, "wallet_service_daily", "lambda_invocations",
         lambda node: kpi_of(node).update(metric=metric, unit="requests", bounds=[0, None],
                                          description="Lambda invocations of the wallet's calls"))
    assert metric not in catalog.KPI_METRICS
    monkeypatch.setattr(kpis, "dbt_project_dir", lambda: project)

    assert metric in catalog.kpi_metrics() and catalog.kpi_metrics()[metric].unit == "requests"
    points = kpi_points(warehouse.query, relation, DAY, "prod")
    assert _published(points) == EXPECTED | {(metric, 990.0, ("wallet:google_pay",))}

    day_column, mart = KPI_SUITES[("wallet", "wallet_service_daily")]
    suite = suites.kpi_suite(mart)
    assert {"column": "lambda_invocations", "min_value": 0, "max_value": None} in [
        e.kwargs for e in suite.expectations]
    passed = kpi_suite_by_day(warehouse, relation(mart), day_column, mart, [DAY])[DAY]
    assert passed.passed, passed.summary
    warehouse.execute(f"update {relation(mart)} set lambda_invocations = -1")
    failed = kpi_suite_by_day(warehouse, relation(mart), day_column, mart, [DAY])[DAY]
    assert not failed.passed
    assert "lambda_invocations" in failed.summary and "expect_column_values_to_be_between" in (
        failed.summary)

    monkeypatch.undo()  # the checkout's declarations: the column is neither gated nor sent
    assert kpi_suite_by_day(warehouse, relation(mart), day_column, mart, [DAY])[DAY].passed
    assert metric not in {p.metric for p in kpi_points(warehouse.query, relation, DAY, "prod")}
