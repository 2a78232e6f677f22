"""The semantic layer (dbt_project/models/semantic/) on real warehouses: MetricFlow validates it
against the built DuckDB warehouse, and every published KPI's value from MetricFlow equals the
mart's, day by day and tag by tag, on DuckDB and PostgreSQL. Ratios re-aggregate from their
counts: a week's rate is the week's successes over its requests, never an average of days.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import pytest

from reporting.semantic import Filter, Query, SemanticError, SemanticLayer
from tests.dbt.dbt_runner import PROJECT_DIR
from tests.warehouses import Built, rows
from tokenwatch import kpis

MF = Path(sys.executable).with_name("mf")


def _layer(built: Built) -> SemanticLayer:
    return SemanticLayer(PROJECT_DIR, "duckdb" if built.path is not None else "postgres")


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _parsed_copy(dest: Path, built: Built, edit=None) -> Path:
    """The dbt project copied to ``dest`` and parsed there for ``built``'s warehouse: ``mf``
    reads ``target/semantic_manifest.json`` under the directory it runs in, and the checkout's
    own is whatever was parsed last."""
    project = dest / "dbt_project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns(
        "target", "logs", "dbt_packages"))
    if edit:
        edit(project)
    env = {**os.environ, **built.env, "DBT_PROFILES_DIR": str(project)}
    parsed = subprocess.run([str(MF.with_name("dbt")), "parse", "--profiles-dir", str(project)],
                            cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    return project


def _mf_validate(project: Path, built: Built) -> subprocess.CompletedProcess:
    env = {**os.environ, **built.env, "DBT_PROFILES_DIR": str(project)}
    return subprocess.run([str(MF), "validate-configs"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


def test_mf_validate_configs_against_the_warehouse(built_duckdb: Built, tmp_path: Path) -> None:
    """``mf validate-configs`` with the data-warehouse steps: every semantic model, dimension,
    entity, measure and metric queried on the built DuckDB warehouse."""
    done = _mf_validate(_parsed_copy(tmp_path, built_duckdb), built_duckdb)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Successfully validated metrics against data warehouse (ERRORS: 0" in out, out
    assert "Successfully validated the semantics of built manifest (ERRORS: 0" in out, out


def test_mf_validate_configs_catches_a_measure_on_a_missing_column(
        built_duckdb: Built, tmp_path: Path) -> None:
    """The same validation fails on a copy of the project whose measure reads a column the
    fact does not have: the check above can fail."""
    def misname(project: Path) -> None:
        semantic = project / "models" / "semantic" / "_semantic_models.yml"
        text = semantic.read_text()
        assert "expr: latency_ms\n" in text
        semantic.write_text(text.replace("expr: latency_ms\n", "expr: latency_msec\n", 1))

    done = _mf_validate(_parsed_copy(tmp_path, built_duckdb, misname), built_duckdb)
    out = done.stdout + done.stderr
    assert "Breaking issues found when validating measures against data warehouse" in out, out
    assert "latency_msec" in out, out


def test_every_kpi_is_one_metric() -> None:
    """Each published KPI (a mart column declared in the marts' yml) is the ``meta.kpi`` of
    exactly one metric, and the metric's unit is the KPI's."""
    layer = SemanticLayer(PROJECT_DIR, "duckdb")
    by_kpi = defaultdict(list)
    for metric in layer.metrics().values():
        if metric.kpi:
            by_kpi[(metric.kpi, metric.kpi_tag)].append(metric)
    for kpi in kpis.contract().kpis:
        found = by_kpi.get((kpi.metric, kpi.tag), [])
        assert len(found) == 1, (kpi, found)
        assert found[0].unit == kpi.unit


def _mart_values(built: Built, mart: kpis.KpiMart, column: str) -> dict[tuple, float | None]:
    tags = ", ".join(mart.tag_columns)
    relation = _relation(built, mart.model)
    out = {}
    for row in rows(built, f"select {mart.day_column}, {tags}, {column} from {relation}"):
        out[(_day(row[0]), *row[1:-1])] = row[-1]
    return out


def _relation(built: Built, model: str) -> str:
    import json

    manifest = json.loads((built.workdir / "target" / "manifest.json").read_text())
    node = manifest["nodes"][f"model.tokenwatch.{model}"]
    return f"{node['schema']}.{node['alias']}"


def _metric_values(built: Built, layer: SemanticLayer, metric: str,
                   dims: tuple[str, ...]) -> dict[tuple, float | None]:
    compiled = layer.compile(Query((metric,), ("metric_time", *dims)), limit=1_000_000)
    return {(_day(r[0]), *r[1:-1]): r[-1] for r in rows(built, compiled.sql)}


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1.5e-3)  # marts round to 3


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_each_kpi_from_metricflow_equals_the_mart(target: str, request) -> None:
    """For every KPI, every day and every tag value (wallet, network, exception type): the
    value MetricFlow computes from the facts is the mart's. Where the mart has a row MetricFlow
    has none (a wallet's day without requests), a count is 0 and a rate has no value."""
    built: Built = request.getfixturevalue(f"built_{target}")
    layer = _layer(built)
    metrics = {(m.kpi, m.kpi_tag): m for m in layer.metrics().values() if m.kpi}
    compared = 0
    for mart in kpis.contract().marts:
        dims = tuple(key for _, key in mart.tags)
        for kpi in mart.kpis:
            metric = metrics[(kpi.metric, kpi.tag)]
            expected = _mart_values(built, mart, kpi.column)
            got = _metric_values(built, layer, metric.name, dims)
            assert set(got) <= set(expected), (metric.name, sorted(set(got) - set(expected))[:5])
            counts = kpi.unit in ("requests", "tokens", "exceptions")
            wrong = []
            for key, value in expected.items():
                mf = got.get(key, 0 if counts else None)
                if counts and mf is None:
                    mf = 0
                if not _close(mf, value):
                    wrong.append((key, value, mf))
            assert not wrong, (metric.name, kpi.column, len(wrong), wrong[:5])
            assert any(v not in (None, 0) for v in expected.values()), (kpi.column, "all empty")
            compared += len(expected)
    assert compared > 200  # every KPI x day x tag value of the test world


def _week_start(day: date) -> date:
    return date.fromordinal(day.toordinal() - day.weekday())


def test_a_weeks_rate_is_its_counts_ratio(built_duckdb: Built) -> None:
    """provision_success_rate by wallet and week equals the week's sum of successes over its
    sum of requests from the daily mart (not the mean of the daily rates, which differs)."""
    layer = _layer(built_duckdb)
    compiled = layer.compile(Query(("provision_success_rate",), ("metric_time", "wallet"),
                                   grain="week"), limit=10_000)
    assert compiled.columns == ("metric_time__week", "wallet", "provision_success_rate")
    got = {(_day(r[0]), r[1]): r[2] for r in rows(built_duckdb, compiled.sql)}
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    rates = defaultdict(list)
    relation = _relation(built_duckdb, "wallet_provisioning_daily")
    for day, wallet, successes, requests, rate in rows(built_duckdb, (
            "select request_date, wallet_id, provision_successes, requests, "
            f"provision_success_rate from {relation}")):
        key = (_week_start(day), wallet)
        sums[key][0] += successes
        sums[key][1] += requests
        rates[key].append(rate)
    assert set(got) == set(sums)
    differs = 0
    for key, (successes, requests) in sums.items():
        assert math.isclose(got[key], successes / requests, rel_tol=1e-9), key
        differs += not math.isclose(sum(rates[key]) / len(rates[key]), successes / requests)
    assert differs, "the mean of daily rates should differ somewhere, or this proves nothing"


def test_a_wallet_group_re_aggregates(built_duckdb: Built) -> None:
    """Filtered to two wallets and not grouped by wallet, the success rate is the two wallets'
    successes over their requests."""
    layer = _layer(built_duckdb)
    wallets = [r[0] for r in rows(built_duckdb, (
        f"select wallet_id from {_relation(built_duckdb, 'wallet_provisioning_daily')} "
        "group by wallet_id order by sum(requests) desc limit 2"))]
    compiled = layer.compile(Query(("provision_success_rate", "provisioning_requests"), (),
                                   where=(Filter("wallet", "in", wallets),)), limit=10)
    [(rate, requests)] = rows(built_duckdb, compiled.sql)
    [(successes, expected_requests)] = rows(built_duckdb, (
        "select sum(provision_successes), sum(requests) from "
        f"{_relation(built_duckdb, 'wallet_provisioning_daily')} "
        f"where wallet_id in ('{wallets[0]}', '{wallets[1]}')"))
    assert requests == expected_requests
    assert math.isclose(rate, successes / expected_requests, rel_tol=1e-9)


def test_unknown_names_are_refused_with_the_allowed_ones() -> None:
    layer = SemanticLayer(PROJECT_DIR, "duckdb")
    with pytest.raises(SemanticError, match="allowed: .*provision_success_rate"):
        layer.compile(Query(("provision_sucess_rate",)), limit=1)
    with pytest.raises(SemanticError, match="unknown dimension 'colour'.*network"):
        layer.compile(Query(("provision_success_rate",), ("colour",)), limit=1)
    with pytest.raises(SemanticError, match="unknown grain 'fortnight'.*week"):
        layer.compile(Query(("api_requests",), ("metric_time",), grain="fortnight"), limit=1)
    with pytest.raises(SemanticError, match="unknown operator 'like'"):
        layer.compile(Query(("api_requests",), where=(Filter("wallet", "like", "a%"),)),
                      limit=1)
    # a dimension of another fact: MetricFlow's own reason, as the same error
    with pytest.raises(SemanticError, match="unknown dimension 'http_method'"):
        layer.compile(Query(("provision_success_rate",), ("http_method",)), limit=1)


def test_filter_values_are_quoted_not_spliced(built_duckdb: Built) -> None:
    """A filter value with a quote is data: it matches nothing and runs as SQL."""
    layer = _layer(built_duckdb)
    compiled = layer.compile(Query(("api_requests",), ("wallet",), where=(
        Filter("wallet", "=", "x' or '1'='1"),)), limit=10)
    assert rows(built_duckdb, compiled.sql) == []


def test_hours_add_up_to_their_day(built_duckdb: Built) -> None:
    """At metric_time__hour (the hour spine), a wallet's requests per hour sum to its day's."""
    layer = _layer(built_duckdb)
    hourly = rows(built_duckdb, layer.compile(Query(("api_requests",), ("metric_time", "wallet"),
                                                    grain="hour"), limit=100_000).sql)
    daily = rows(built_duckdb, layer.compile(Query(("api_requests",), ("metric_time", "wallet"),
                                                   grain="day"), limit=100_000).sql)
    summed: dict[tuple, int] = defaultdict(int)
    for hour, wallet, requests in hourly:
        assert hour.minute == 0 and hour.second == 0
        summed[(_day(hour), wallet)] += requests
    assert len(hourly) > len(daily) > 0
    assert summed == {(_day(day), wallet): requests for day, wallet, requests in daily}


def test_the_readme_catalogue_is_the_semantic_layer() -> None:
    """The README's analysts section names every metric, and each dimension it names exists."""
    import re

    readme = (PROJECT_DIR.parent / "README.md").read_text()
    section = readme[readme.index("### For analysts"):readme.index("### For compliance")]
    layer = SemanticLayer(PROJECT_DIR, "duckdb")
    named = set(re.findall(r"`([a-z][a-z0-9_]*)`", section))
    missing = sorted(set(layer.metrics()) - named)
    assert not missing, f"metrics the README does not list: {missing}"
    listed = section[section.index("Dimensions:"):section.index("`metric_time` at")]
    dimensions = {d for m in layer.metrics().values() for d in m.dimensions}
    unknown = sorted(set(re.findall(r"`([a-z_]+)`", listed)) - dimensions)
    assert not unknown, f"dimensions the README names that no metric has: {unknown}"
