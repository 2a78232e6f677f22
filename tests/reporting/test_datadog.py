"""Publishing to Datadog, against the local intake over real HTTP with the real ``datadog``
package: KPI points, publication events, dashboards and monitors as code, the CLI."""

from __future__ import annotations

import json
import re
import shutil
import sys

import httpx
import pytest
from typer.testing import CliRunner

from reporting.datadog import as_code, client
from reporting.datadog.catalog import CONTROL_METRICS, KPI_METRICS, PIPELINE_METRICS
from reporting.datadog.events import publication_done, publication_withheld
from reporting.datadog.rules import metric_problem
from reporting.datadog.series import KpiPoint, publish
from sandbox.intake import IntakeThread, read_records
from tokenwatch import cli, kpis
from tokenwatch.stack_file import StackError

KEY = "publishing-test-key"
DAY = 1767225600  # 2026-01-01T00:00:00Z, the partition's start
PAN = "4111111111111111"  # passes the Luhn check
METRIC_IN_QUERY = re.compile(r"tokenwatch\.[a-z0-9_.]+")


@pytest.fixture()
def intake(tmp_path):
    with IntakeThread(tmp_path / "records.jsonl", api_key=KEY) as it:
        yield it


@pytest.fixture(scope="module")
def shared_intake(tmp_path_factory):
    """One intake for the refusal cases: each checks that nothing new was recorded."""
    with IntakeThread(tmp_path_factory.mktemp("shared") / "records.jsonl", api_key=KEY) as it:
        yield it


def _options(intake) -> dict:
    return {"api_key": KEY, "app_key": "app", "api_host": intake.url}


def _points() -> list[KpiPoint]:
    out = []
    for wallet, rate, requests in (("apple_pay", 0.93, 1200), ("google_pay", 0.88, 950)):
        env_wallet = ("env:prod", f"wallet:{wallet}")
        out += [KpiPoint("tokenwatch.provisioning.success_rate", rate, DAY, env_wallet),
                KpiPoint("tokenwatch.provisioning.requests", requests, DAY, env_wallet)]
        for decision, share in (("green", 0.8), ("yellow", 0.15), ("red", 0.05)):
            out.append(KpiPoint("tokenwatch.provisioning.decision_share", share, DAY,
                                (f"wallet:{wallet}", f"decision:{decision}", "env:prod")))
    out.append(KpiPoint("tokenwatch.audit.exceptions", 0, DAY,
                        ("env:prod", "exception_type:chain_break")))
    return out


def _sent(intake) -> list[dict]:
    return [s for r in read_records(intake.records, "/api/v1/series") for s in r["body"]["series"]]


def test_points_are_recorded_exactly_as_sent(intake):
    points = _points()
    result = publish(points, _options(intake), batch_size=4)
    sent = _sent(intake)
    assert [(s["metric"], s["tags"], s["points"], s["type"]) for s in sent] == sorted(
        (p.metric, list(p.tags), [[p.timestamp, float(p.value)]], "gauge") for p in points)
    assert all("host" not in s for s in sent)  # a re-run elsewhere hits the same series
    assert (result.points, result.batches) == (11, 3)
    assert len(read_records(intake.records, "/api/v1/series")) == 3
    assert result.responses == ({"status": "ok"},) * 3
    assert result.metrics == ("tokenwatch.audit.exceptions",
                              "tokenwatch.provisioning.decision_share",
                              "tokenwatch.provisioning.requests",
                              "tokenwatch.provisioning.success_rate")
    decision = next(s for s in sent if s["metric"].endswith("decision_share"))
    assert decision["tags"] == ["decision:green", "env:prod", "wallet:apple_pay"]  # sorted


def test_republishing_a_partition_sends_identical_payloads(intake):
    points = _points()
    publish(points, _options(intake))
    publish(list(reversed(points)), _options(intake))
    first, second = (r["body"] for r in read_records(intake.records, "/api/v1/series"))
    assert first == second


def test_nothing_to_publish_sends_nothing(shared_intake):
    before = len(read_records(shared_intake.records))
    assert publish([], _options(shared_intake)).points == 0
    assert len(read_records(shared_intake.records)) == before


GOOD = KpiPoint("tokenwatch.tokens.active", 10, DAY, ("env:prod", "wallet:apple_pay"))


def _bad(**change) -> KpiPoint:
    fields = {"metric": GOOD.metric, "value": GOOD.value, "timestamp": GOOD.timestamp,
              "tags": GOOD.tags, **change}
    return KpiPoint(**fields)


@pytest.mark.parametrize(("point", "reason"), [
    (_bad(metric="provisioning.success_rate"), "tokenwatch.<area>.<kpi>"),
    (_bad(metric="tokenwatch.Tokens.active"), "tokenwatch.<area>.<kpi>"),
    (_bad(metric="tokenwatch.tokens.dormant"), "not in KPI_METRICS"),
    (_bad(metric="tokenwatch.tokens-active"), "not a valid Datadog metric name"),
    (_bad(metric="tokenwatch.tokens." + "a" * 200), "at most 200 characters"),
    (_bad(metric=f"tokenwatch.tokens.{PAN}"), "PAN-like"),
    (_bad(tags=("env:prod", "token_ref:tok-7-0000001")), "tag key 'token_ref' is not allowed"),
    (_bad(tags=("env:prod", "wallet:tok-7-0000001")), "token or card reference"),
    (_bad(tags=("env:prod", "wallet:cref-9f2c")), "token or card reference"),
    (_bad(tags=("env:prod", f"wallet:{PAN}")), "PAN-like"),
    (_bad(tags=("env:prod", f"reason:card_{PAN}")), "PAN-like"),
    (_bad(tags=("env:prod", "wallet:Apple_Pay")), "lowercase"),
    (_bad(tags=("env:prod", "wallet apple_pay")), "'key:value'"),
    (_bad(tags=("env:prod", 7)), "a tag must be a 'key:value' string"),
    (_bad(tags=("wallet:apple_pay",)), "env:..."),
    (_bad(tags=("env:prod", "wallet:apple_pay", "wallet:google_pay")), "more than once"),
    (_bad(value=float("nan")), "finite"),
    (_bad(value=float("inf")), "finite"),
    (_bad(value="0.93"), "must be a number"),
    (_bad(value=True), "must be a number"),
    (_bad(timestamp=DAY * 1000), "milliseconds"),
    (_bad(timestamp=float(DAY)), "must be an int"),
    (GOOD, "same metric, tags and timestamp as point #0"),
])
def test_bad_points_are_refused_before_anything_is_sent(shared_intake, point, reason):
    before = len(read_records(shared_intake.records))
    with pytest.raises(ValueError, match=re.escape(reason)) as info:
        publish([GOOD, point], _options(shared_intake))  # the bad one comes second
    assert "KPI point #1" in str(info.value) and "nothing was sent" in str(info.value)
    assert PAN not in str(info.value)
    assert len(read_records(shared_intake.records)) == before


def test_a_rejected_request_says_how_far_publishing_got(shared_intake):
    before = len(read_records(shared_intake.records))
    with pytest.raises(RuntimeError, match=r"batch 1/1 was refused after 0 points.*Forbidden"):
        publish([GOOD], dict(_options(shared_intake), api_key="wrong-key"))
    assert len(read_records(shared_intake.records)) == before


def test_the_withheld_event_arrives_with_its_reasons(intake):
    failures = {"raw_wallet_events_accounted": "3 records  unaccounted\nfor",
                "pan_scan": f"a PAN-like value {PAN} in raw.apigw_logs.body"}
    answer = publication_withheld("2026-01-01", failures, _options(intake), env="prod")
    assert answer["status"] == "ok"
    [event] = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert event["alert_type"] == "error"
    assert event["title"] == "tokenwatch: KPI publication withheld for 2026-01-01"
    assert event["tags"] == ["env:prod", "partition:2026-01-01", "publication:withheld"]
    assert "**raw_wallet_events_accounted**: 3 records unaccounted for" in event["text"]
    assert "**pan_scan**: a PAN-like value <PAN-like value redacted> in raw" in event["text"]
    assert PAN not in json.dumps(event)
    assert "host" not in event


def test_the_done_event_lists_what_was_published(intake):
    result = publish(_points(), _options(intake))
    publication_done("2026-01-01", result, _options(intake), env="prod")
    [event] = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert event["alert_type"] == "info"
    assert "publication:done" in event["tags"]
    assert "11 points of 4 metrics" in event["text"]


@pytest.mark.parametrize(("partition", "failures", "reason"), [
    ("2026-01-01", {}, "without a failed check"),
    ("tok-7-0000001", {"c": "x"}, "token or card reference"),
    ("2026 01 01", {"c": "x"}, "not a partition key"),
])
def test_bad_events_are_refused(shared_intake, partition, failures, reason):
    before = len(read_records(shared_intake.records))
    with pytest.raises(ValueError, match=reason):
        publication_withheld(partition, failures, _options(shared_intake), env="prod")
    assert len(read_records(shared_intake.records)) == before


def _listed(intake) -> tuple[list[dict], list[dict]]:
    headers = {"DD-API-KEY": KEY}
    dashboards = httpx.get(f"{intake.url}/api/v1/dashboard", headers=headers).json()
    monitors = httpx.get(f"{intake.url}/api/v1/monitor", headers=headers).json()
    return dashboards["dashboards"], monitors


def test_dashboards_and_monitors_are_created_then_updated_never_duplicated(intake):
    first = as_code.push(_options(intake))
    assert [(p.kind, p.action) for p in first] == [("dashboard", "created")] * 4 + [
        ("monitor", "created")] * 12
    assert [p.title for p in first][:4] == [
        "tokenwatch: Compliance", "tokenwatch: Provision States", "tokenwatch: Token States",
        "tokenwatch: Wallet Performance"]
    writes = len(read_records(intake.records))
    again = as_code.push(_options(intake))
    assert [(p.title, p.id, p.action) for p in again] == [
        (p.title, p.id, "unchanged") for p in first]
    assert len(read_records(intake.records)) == writes  # nothing was rewritten
    # someone edits a dashboard and a monitor in Datadog: the next push puts ours back
    dash, mon = first[0].id, first[4].id
    headers = {"DD-API-KEY": KEY}
    edited = dict(as_code.definitions("dashboard")[0], widgets=[])
    assert httpx.put(f"{intake.url}/api/v1/dashboard/{dash}", json=edited,
                     headers=headers).status_code == 200
    monitor = dict(as_code.definitions("monitor")[0], query="avg(last_5m):avg:x{*} > 1")
    httpx.put(f"{intake.url}/api/v1/monitor/{mon}", json=monitor, headers=headers)
    third = as_code.push(_options(intake))
    assert {p.id: p.action for p in third if p.action != "unchanged"} == {
        dash: "updated", mon: "updated"}
    dashboards, monitors = _listed(intake)
    assert len(dashboards) == 4 and len(monitors) == 12
    assert {d["title"] for d in dashboards} == {p.title for p in first[:4]}
    assert all(as_code.MARKER in d["description"] for d in dashboards)
    assert all(as_code.MANAGED_TAG in m["tags"] for m in monitors)
    restored = next(d for d in dashboards if d["id"] == dash)
    assert as_code.contains(restored, as_code.definitions("dashboard")[0])


def test_a_dashboard_of_the_same_title_that_is_not_ours_is_left_alone(intake):
    theirs = {"title": "tokenwatch: Compliance", "layout_type": "ordered", "widgets": [],
              "description": "made by hand"}
    mine = httpx.post(f"{intake.url}/api/v1/dashboard", json=theirs,
                      headers={"DD-API-KEY": KEY}).json()
    pushed = as_code.push(_options(intake))
    assert pushed[0].action == "created" and pushed[0].id != mine["id"]
    dashboards, _ = _listed(intake)
    assert next(d for d in dashboards if d["id"] == mine["id"])["description"] == "made by hand"


def test_pushing_needs_an_application_key(shared_intake):
    with pytest.raises(ValueError, match="DD_APP_KEY"):
        as_code.push(dict(_options(shared_intake), app_key=None))


def _queries(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k in ("q", "query") and isinstance(v, str)] + [
            q for v in node.values() for q in _queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in _queries(v)]
    return []


def _undeclared_and_unshown() -> tuple[set[str], set[str]]:
    """The tokenwatch.* metrics the dashboards and monitors query that are declared neither by
    the dbt project (tokenwatch/kpis.py) nor as control or pipeline metrics
    (catalog.CONTROL_METRICS, PIPELINE_METRICS), and the declared ones that no dashboard or
    monitor shows."""
    referenced = set()
    for kind in as_code.FOLDERS:
        for body in as_code.definitions(kind):
            queries = _queries(body)
            assert queries, f"{kind} {body[as_code.TITLE[kind]]!r} has no query"
            for query in queries:
                referenced |= set(METRIC_IN_QUERY.findall(query))
    declared = set(kpis.contract().metrics) | set(CONTROL_METRICS) | set(PIPELINE_METRICS)
    return referenced - declared, declared - referenced


def test_every_metric_in_a_dashboard_or_monitor_is_declared():
    assert _undeclared_and_unshown() == (set(), set())  # and every KPI is on some dashboard
    assert set(KPI_METRICS) == set(kpis.contract().metrics)  # what publish accepts
    assert [name for name in {**KPI_METRICS, **CONTROL_METRICS, **PIPELINE_METRICS}
            if metric_problem(name)] == []
    # a metric is declared in one place
    assert not set(KPI_METRICS) & set(CONTROL_METRICS)
    assert not (set(KPI_METRICS) | set(CONTROL_METRICS)) & set(PIPELINE_METRICS)


def test_a_dashboard_querying_an_undeclared_metric_fails_the_check(tmp_path, monkeypatch):
    folder = tmp_path / "dashboards"
    shutil.copytree(as_code.FOLDERS["dashboard"], folder)
    dashboard = folder / "wallet_performance.json"
    text = dashboard.read_text()
    assert "tokenwatch.service.latency_p99_ms" in text
    dashboard.write_text(text.replace("tokenwatch.service.latency_p99_ms",
                                      "tokenwatch.service.latency_p999_ms"))
    monkeypatch.setitem(as_code.FOLDERS, "dashboard", folder)
    assert _undeclared_and_unshown() == ({"tokenwatch.service.latency_p999_ms"},
                                         {"tokenwatch.service.latency_p99_ms"})


@pytest.fixture()
def clean_env(monkeypatch, tmp_path):
    for name in ("TOKENWATCH_DD_API_HOST", "DD_API_KEY", "DD_APP_KEY", "DD_SITE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path / "home"))
    return monkeypatch


def test_the_resolver_reads_one_set_of_variables(clean_env):
    clean_env.setenv("TOKENWATCH_ENV", "prod")
    with pytest.raises(ValueError, match="DD_API_KEY is not set"):
        client.datadog_options()
    clean_env.setenv("DD_API_KEY", "k")
    clean_env.setenv("DD_SITE", "datadoghq.eu")
    assert client.datadog_options() == {"api_key": "k", "app_key": None,
                                        "api_host": "https://api.datadoghq.eu"}
    clean_env.setenv("DD_SITE", "https://evil.example/")
    with pytest.raises(ValueError, match="DD_SITE"):
        client.datadog_options()
    clean_env.setenv("TOKENWATCH_DD_API_HOST", "http://127.0.0.1:9/")
    clean_env.setenv("DD_APP_KEY", "a")
    target = client.resolve()
    assert target.options == {"api_key": "k", "app_key": "a", "api_host": "http://127.0.0.1:9"}
    assert "override" in target.source
    clean_env.delenv("TOKENWATCH_DD_API_HOST")
    clean_env.setenv("TOKENWATCH_ENV", "local")
    with pytest.raises(StackError, match="tokenwatch stack up"):
        client.datadog_options()


def test_cli_push_and_check_against_the_intake(intake, clean_env):
    clean_env.setenv("TOKENWATCH_DD_API_HOST", intake.url)
    clean_env.setenv("DD_API_KEY", KEY)
    clean_env.setenv("DD_APP_KEY", "app")
    runner = CliRunner()
    first = runner.invoke(cli.app, ["datadog", "push"])
    assert first.exit_code == 0, first.output
    assert "16 created, 0 updated, 0 unchanged" in first.output
    assert "Compliance" in first.output
    assert "[tokenwatch]" in first.output  # monitor names are not eaten as rich markup
    second = runner.invoke(cli.app, ["datadog", "push"])
    assert "0 created, 0 updated, 16 unchanged" in second.output
    check = runner.invoke(cli.app, ["datadog", "check"])
    assert check.exit_code == 0 and "API key valid" in check.output
    assert intake.url in check.output and KEY not in check.output
    clean_env.setenv("DD_API_KEY", "wrong-key")
    rejected = runner.invoke(cli.app, ["datadog", "check"])
    assert rejected.exit_code == 1 and "rejected" in rejected.output
    for args in (["datadog", "--help"], ["datadog", "push", "--help"],
                 ["datadog", "check", "--help"]):
        assert runner.invoke(cli.app, args).exit_code == 0


def test_cli_errors_are_one_line(clean_env, capsys):
    clean_env.setenv("TOKENWATCH_DD_API_HOST", "http://127.0.0.1:9")
    clean_env.setattr(sys, "argv", ["tokenwatch", "datadog", "push"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: ValueError: DD_API_KEY is not set: it is required to reach Datadog"


@pytest.mark.parametrize("written", [
    "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111",
    "x\uff14\uff11\uff11\uff11111111111111"])
def test_a_pan_in_a_tag_or_name_is_refused_and_never_echoed_however_written(written):
    from reporting.datadog.rules import tag_problem

    for problem in (tag_problem(f"wallet:{written}", {"wallet"}),
                    metric_problem(f"tokenwatch.wallet.{written}")):
        assert problem is not None and "PAN" in problem
        assert "1111 1111" not in problem and "1111-1111" not in problem
        assert "4111111111111111" not in problem


# -- the compliance controls: their metrics, events and monitors ------------------------------

AUDIT_MONITORS = {"chain_break": "10.3.4", "missed_daily_review": "10.4.1.1",
                  "stale_audit_mart": "10.5.1", "failed_audit_pack": "10.7.2"}


def test_a_built_pack_sends_its_control_points_and_event(intake):
    from reporting.datadog import controls
    from reporting.datadog.events import audit_pack_built

    verdicts = {"10.3.4": "fail", "10.5.1": "pass", "10.2.1.4": "not checked"}
    points = controls.pack_points("day", verdicts, {"postgres": 2, "warehouse": 2}, "prod",
                                  at=DAY)
    points += [controls.review_point(2.5, "prod", at=DAY),
               controls.missing_days_point("hot", 0, "prod", at=DAY)]
    result = controls.send(points, _options(intake))
    sent = {(s["metric"], tuple(s["tags"])): s["points"][0][1] for s in _sent(intake)}
    assert sent == {
        ("tokenwatch.audit.chain.findings", ("env:prod", "side:postgres")): 2.0,
        ("tokenwatch.audit.chain.findings", ("env:prod", "side:warehouse")): 2.0,
        ("tokenwatch.audit.marts.missing_days", ("env:prod", "tier:hot")): 0.0,
        ("tokenwatch.audit.pack.controls_failed", ("env:prod", "period:day")): 1.0,
        ("tokenwatch.audit.pack.generated", ("env:prod", "period:day")): 1.0,
        ("tokenwatch.audit.review.age_hours", ("env:prod",)): 2.5}
    assert set(result.metrics) <= set(CONTROL_METRICS)
    audit_pack_built("2026-01-01", "day", verdicts, "/packs/tokenwatch-audit-2026-01-01",
                     _options(intake), env="prod")
    [event] = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert event["alert_type"] == "error"
    assert event["tags"] == ["env:prod", "partition:2026-01-01", "audit:pack", "status:failed"]
    assert "1 failed" in event["text"] and "**10.3.4**: fail" in event["text"]


def test_a_side_that_was_not_checked_sends_no_false_zero():
    from reporting.datadog.controls import pack_points

    points = pack_points("month", {"10.3.4": "not checked"}, {"warehouse": 0}, "prod", at=DAY)
    assert [p.metric for p in points].count("tokenwatch.audit.chain.findings") == 1
    assert {p.tags for p in points if "chain" in p.metric} == {("env:prod", "side:warehouse")}


@pytest.mark.parametrize(("call", "reason"), [
    (lambda c: c.pack_points("week", {}, {}, "prod"), "period 'week'"),
    (lambda c: c.pack_points("day", {}, {"mysql": 1}, "prod"), "unknown side"),
    (lambda c: c.missing_days_point("cold", 1, "prod"), "tier 'cold'"),
])
def test_bad_control_points_are_refused(call, reason):
    from reporting.datadog import controls

    with pytest.raises(ValueError, match=reason):
        call(controls)


def test_an_audit_failure_event_names_the_control_and_its_runbook(intake):
    from reporting.datadog.events import audit_failed

    audit_failed("2026-01-01", "retention", f"lacks 2026-01-01 (note {PAN})", _options(intake),
                 env="prod", runbook="re-run the compliance job")
    [event] = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert event["alert_type"] == "error"
    assert event["tags"] == ["env:prod", "partition:2026-01-01", "audit:retention",
                             "status:failed"]
    assert "Runbook: re-run the compliance job" in event["text"] and PAN not in event["text"]
    with pytest.raises(ValueError, match="without a reason"):
        audit_failed("2026-01-01", "retention", "", _options(intake), env="prod")


def test_every_audit_monitor_has_a_runbook_and_watches_a_control_metric():
    monitors = {path.stem: json.loads(path.read_text())
                for path in as_code.FOLDERS["monitor"].glob("*.json")}
    assert set(AUDIT_MONITORS) <= set(monitors)
    for name, requirement in AUDIT_MONITORS.items():
        body = monitors[name]
        assert "\nRunbook: " in body["message"], name
        assert f"pci:{requirement}" in body["tags"] and requirement in body["message"]
        (metric,) = METRIC_IN_QUERY.findall(body["query"])
        assert metric in CONTROL_METRICS, name
    # a missed review, stale marts and a pack that never came alert on silence too
    for name in ("missed_daily_review", "stale_audit_mart", "failed_audit_pack"):
        assert monitors[name]["options"]["notify_no_data"] is True
        assert monitors[name]["options"]["no_data_timeframe"] == 26 * 60


def test_the_compliance_dashboard_shows_every_control_metric():
    [dashboard] = [d for d in as_code.definitions("dashboard")
                   if d["title"] == "tokenwatch: Compliance"]
    shown = {m for q in _queries(dashboard) for m in METRIC_IN_QUERY.findall(q)}
    assert set(CONTROL_METRICS) | {"tokenwatch.audit.exceptions"} == shown
    titles = " ".join(w["definition"].get("title", "") for w in dashboard["widgets"])
    for topic in ("by type", "Chain", "Review", "Pack generation"):
        assert topic in titles


# -- the pipeline itself: a finished run's points, its event and the batch path's monitors ----

PIPELINE_MONITORS = ("pipeline_run_failed", "pipeline_run_slow", "pipeline_no_successful_run",
                     "pipeline_gate_withheld")


def _run_report(**changes):
    from reporting.datadog.pipeline import RunReport

    fields = {"run_id": "0f3c2a9e-1b7d-4c55-9a1e-7d2b0c4e8f11", "job": "republish",
              "outcome": "failure", "started": DAY + 100.0, "ended": DAY + 412.5,
              "partition": "2026-01-01..2026-01-02", "failed_steps": ("quality_gate",),
              "failed_checks": ("wallet/wallet_provisioning_daily:kpi_suite [2026-01-02]",),
              "gate": {"2026-01-01": (),
                       "2026-01-02": ("wallet/wallet_provisioning_daily:kpi_suite",)}}
    return RunReport(**(fields | changes))


def test_a_finished_run_sends_its_points_and_one_event(intake):
    from reporting.datadog.pipeline import send

    send(_run_report(), _options(intake), "prod")
    sent = {(s["metric"], tuple(s["tags"])): (s["type"], s["points"][0], s.get("interval"))
            for s in _sent(intake)}
    run_tags = ("env:prod", "job:republish", "outcome:failure")
    assert sent == {
        ("tokenwatch.pipeline.gate.withheld_days", run_tags[:2]): ("gauge", [DAY + 412, 1.0],
                                                                    None),
        ("tokenwatch.pipeline.run.count", run_tags): ("count", [DAY + 412, 1.0], 60),
        ("tokenwatch.pipeline.run.duration_s", run_tags): ("gauge", [DAY + 412, 312.5], None)}
    [event] = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert event["alert_type"] == "error"
    assert event["tags"] == ["env:prod", "job:republish", "outcome:failure",
                             "partition:2026-01-01..2026-01-02", "gate:withheld"]
    assert event["aggregation_key"] == "tokenwatch-run-republish-2026-01-01..2026-01-02"
    text = event["text"]
    assert "0f3c2a9e-1b7d-4c55-9a1e-7d2b0c4e8f11" in text and "312.5 s" in text
    assert "`quality_gate`" in text and "2026-01-01: passed" in text
    assert "2026-01-02: withheld (wallet/wallet_provisioning_daily:kpi_suite)" in text


def test_a_run_without_the_gate_or_a_start_sends_no_false_values(intake):
    from reporting.datadog.pipeline import run_points, send

    canceled = _run_report(job="__ASSET_JOB", outcome="canceled", started=None, partition=None,
                           failed_steps=(), failed_checks=(), gate={})
    assert [(p.metric, p.tags) for p in run_points(canceled, "prod")] == [
        ("tokenwatch.pipeline.run.count", ("env:prod", "job:asset_job", "outcome:canceled"))]
    send(canceled, _options(intake), "prod")
    [event] = [r["body"] for r in read_records(intake.records, "/api/v1/events")]
    assert event["alert_type"] == "warning" and "before it started" in event["text"]
    assert event["tags"] == ["env:prod", "job:asset_job", "outcome:canceled"]
    ok = _run_report(outcome="success", failed_steps=(), failed_checks=(),
                     gate={"2026-01-01": ()}, partition="2026-01-01")
    assert run_points(ok, "prod")[-1].value == 0  # the gate ran and passed: a true zero
    with pytest.raises(ValueError, match="outcome"):
        _run_report(outcome="skipped")


def test_the_batch_path_monitors_watch_the_pipeline_metrics():
    monitors = {path.stem: json.loads(path.read_text())
                for path in as_code.FOLDERS["monitor"].glob("*.json")}
    assert set(PIPELINE_MONITORS) <= set(monitors)
    watched = set()
    for name in PIPELINE_MONITORS:
        body = monitors[name]
        assert "\nRunbook: " in body["message"] and "path:batch" in body["tags"], name
        (metric,) = METRIC_IN_QUERY.findall(body["query"])
        assert metric in PIPELINE_METRICS, name
        watched.add(metric)
    assert watched == set(PIPELINE_METRICS)
    # no successful run alerts on silence too (the runs, or their reports, stopped)
    assert monitors["pipeline_no_successful_run"]["options"]["notify_no_data"] is True
    assert "outcome:success" in monitors["pipeline_no_successful_run"]["query"]
    assert "outcome:failure" in monitors["pipeline_run_failed"]["query"]
