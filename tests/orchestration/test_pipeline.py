"""The whole pipeline in Dagster, in-process, on the local target: a simulated world (faults
on) through ingestion, dbt, the quality gate and publication into the local Datadog intake."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from orchestration.resources import DatadogResource, SourcesResource, WarehouseResource
from quality import verdicts
from reporting.kpis import day_timestamp
from sandbox.intake import read_records

PARTITION_TAGS = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _days(world) -> list[date]:
    first = date.fromisoformat(world.summary["start"][:10])
    return [first + timedelta(days=i) for i in range(world.summary["days"])]


@pytest.fixture(scope="module")
def pipeline(world, local_stack, tmp_path_factory):
    """Ingest, then one backfill run over the world's days (dbt, gate, publication)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    mp.setenv("TOKENWATCH_DUCKDB_PATH",
              str(tmp_path_factory.mktemp("pipeline") / "warehouse.duckdb"))
    from orchestration.definitions import defs

    t = world.target
    resources = {"warehouse": WarehouseResource(), "datadog": DatadogResource(),
                 "sources": SourcesResource(pg_dsn=world.pg_dsn, stream=t.stream,
                                            bucket=t.bucket),
                 "dbt": defs.resources["dbt"]}
    instance = dg.DagsterInstance.ephemeral()
    ingest = defs.resolve_job_def("ingest")
    assert ingest.execute_in_process(resources=resources, instance=instance).success
    days = _days(world)
    marts = defs.resolve_job_def("marts_and_kpis")
    before = len(read_records(local_stack.intake_records))
    result = marts.execute_in_process(resources=resources, instance=instance, tags=dict(zip(
        PARTITION_TAGS, (days[0].isoformat(), days[-1].isoformat()), strict=True)))
    sent = read_records(local_stack.intake_records)[before:]
    yield {"result": result, "sent": sent, "days": days, "resources": resources,
           "instance": instance, "defs": defs}
    mp.undo()


def test_full_materialisation_publishes_kpis(pipeline):
    result = pipeline["result"]
    assert result.success
    checks = result.get_asset_check_evaluations()
    failed = [(c.asset_key.to_user_string(), c.check_name, c.description)
              for c in checks if not c.passed]
    assert not failed
    series = [r for r in pipeline["sent"] if r["path"] == "/api/v1/series"]
    assert series, "no KPI reached the intake"
    metrics = {s["metric"] for r in series for s in r["body"]["series"]}
    assert {"tokenwatch.provisioning.success_rate", "tokenwatch.service.latency_p99_ms",
            "tokenwatch.tokens.active", "tokenwatch.audit.exceptions"} <= metrics



def test_the_gate_publishes_the_passed_days_to_the_analysts_schema(pipeline):
    """The run's gate wrote analytics_published (write-audit-publish, reporting/published.py):
    each analyst mart holds exactly the build's rows of the days the gate passed."""
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.published import ANALYST_MARTS

    with pipeline["resources"]["warehouse"].open() as wh:
        passed = verdicts.published_days(wh)
        assert passed == set(pipeline["days"])
        for mart in ANALYST_MARTS:
            build = wh.query(f"select count(*) from {mart_relation(mart.model)}"
                             + (f" where {mart.day_column} in (select day from "
                                f"quality.gate_verdicts where status = 'passed')"
                                if mart.day_column else ""))
            shown = wh.query(f"select count(*) from analytics_published.{mart.model}")
            assert shown == build, mart.model


def _gate_keys() -> set[dg.AssetCheckKey]:
    from orchestration.defs.gate.checks import SPECS

    return {dg.AssetCheckKey(spec.asset_key, spec.name) for spec in SPECS}


def test_a_backfill_records_every_check_once_per_day(pipeline):
    """The world's days in one run: each gate check has one passing result per day, stored
    per partition (what the UI's partition bar shows), and no partitioned check of the run nor
    any raw check of the ingest run is left Skipped. (Right after the backfill: the tests below
    re-check single days.)"""
    from orchestration.partitions import DAILY
    from tests.orchestration import check_records

    instance, run_id = pipeline["instance"], pipeline["result"].run_id
    days = {d.isoformat() for d in pipeline["days"]}
    assert len(days) >= 3
    found = check_records.evaluations(instance, run_id)
    stored = check_records.stored(instance, run_id, _gate_keys())
    for key in _gate_keys():
        assert {p for k, p in found if k == key} == days, key  # no un-partitioned result
        for day in days:
            (evaluation,) = found[(key, day)]
            assert evaluation.passed and evaluation.metadata["partition"].value == day
            assert "observed" not in evaluation.metadata  # a passing day: counts only
            assert stored[(key, day)] == ["SUCCEEDED"]
        assert check_records.partition_statuses(instance, key, DAILY) == {"SUCCEEDED": days}
    # Only unpartitioned checks (dbt's tests) are left planned per day: Dagster 1.13 plans an
    # unpartitioned check of a range run once per partition of the run and records its one
    # result without a partition. Every partitioned check has its days.
    graph = pipeline["defs"].resolve_asset_graph()
    left = {key for key, _ in check_records.skipped(instance, run_id)}
    assert all(graph.get(key).partitions_def is None for key in left)
    assert not left & _gate_keys()
    (ingest,) = instance.get_runs(filters=dg.RunsFilter(job_name="ingest"))
    assert check_records.planned(instance, ingest.run_id)  # the raw layer's checks
    assert not check_records.skipped(instance, ingest.run_id)


def _republish(pipeline, day: date, *, sensor: bool = True):
    """The republish job for ``day``; then, with ``sensor``, publication's run-status sensor
    evaluated on the run as the daemon would (it sends the "publication withheld" event)."""
    from orchestration.defs.publication.sensors import evaluate_after

    job = pipeline["defs"].resolve_job_def("republish")
    result = job.execute_in_process(resources=pipeline["resources"],
                                    partition_key=day.isoformat(),
                                    instance=pipeline["instance"], raise_on_error=False)
    if sensor:
        evaluate_after(result, pipeline["instance"], pipeline["resources"]["datadog"])
    return result


def _new_records(local_stack, before: int) -> list[dict]:
    return read_records(local_stack.intake_records)[before:]


def _series(records: list[dict]) -> list[dict]:
    return [s for r in records if r["path"] == "/api/v1/series" for s in r["body"]["series"]]


def test_published_values_equal_the_marts(pipeline, local_stack):
    from ingestion.warehouse import open_warehouse
    from orchestration.defs.dbt.assets import mart_relation

    day = pipeline["days"][1]
    before = len(read_records(local_stack.intake_records))
    assert _republish(pipeline, day).success
    sent = {(s["metric"], tuple(sorted(s["tags"]))): s["points"][0]
            for s in _series(_new_records(local_stack, before))}
    wh = open_warehouse(create=False)
    try:
        rows = wh.query(f"select wallet_id, network, provision_success_rate, requests from "
                        f"{mart_relation('wallet_provisioning_daily')} where request_date = %s",
                        [day])
        active = wh.query(f"select wallet_id, active_tokens from "
                          f"{mart_relation('wallet_token_usage_daily')} where usage_date = %s",
                          [day])
    finally:
        wh.close()
    assert rows and active
    stamp = day_timestamp(day)
    for wallet, network, rate, requests in rows:
        tags = tuple(sorted(["env:local", f"wallet:{wallet}", f"network:{network}"]))
        assert sent[("tokenwatch.provisioning.requests", tags)] == [stamp, float(requests)]
        assert sent[("tokenwatch.provisioning.success_rate", tags)] == [stamp, float(rate)]
    for wallet, tokens in active:
        tags = tuple(sorted(["env:local", f"wallet:{wallet}"]))
        assert sent[("tokenwatch.tokens.active", tags)] == [stamp, float(tokens)]


def test_republishing_a_partition_sends_the_same_points(pipeline, local_stack):
    day = pipeline["days"][0]
    payloads = []
    for _ in range(2):
        before = len(read_records(local_stack.intake_records))
        assert _republish(pipeline, day).success
        payloads.append(_series(_new_records(local_stack, before)))
    assert payloads[0] and payloads[0] == payloads[1]


def _corrupt_rate(relation):
    return (f"update {relation('wallet_provisioning_daily')} set provision_success_rate = "
            "provision_success_rate + 5 where request_date = %s",
            f"update {relation('wallet_provisioning_daily')} set provision_success_rate = "
            "provision_success_rate - 5 where request_date = %s")


def _corrupt_latency(relation):
    swap = (f"update {relation('wallet_service_daily')} set gateway_latency_p50_ms = "
            "gateway_latency_p99_ms, gateway_latency_p99_ms = gateway_latency_p50_ms "
            "where activity_date = %s and gateway_latency_p99_ms > gateway_latency_p50_ms")
    undo = swap.replace("gateway_latency_p99_ms > gateway_latency_p50_ms",
                        "gateway_latency_p50_ms > gateway_latency_p99_ms")
    return swap, undo


def _lose_a_transition(relation):
    stash = "raw.test_stash"
    return (f"create table {stash} as select * from raw.token_state_transitions "
            "where transition_id = (select max(transition_id) from raw.token_state_transitions);"
            f" delete from raw.token_state_transitions where transition_id in "
            f"(select transition_id from {stash})",
            f"insert into raw.token_state_transitions select * from {stash}; drop table {stash}")


def _plant_a_pan(relation):
    table = relation("audit_token_transitions")
    return (f"update {table} set source_location = source_location || ' 4111111111111111' "
            f"where transition_id = (select min(transition_id) from {table})",
            f"update {table} set source_location = replace(source_location, "
            "' 4111111111111111', '')")


def _duplicate_a_row(relation):
    table = relation("wallet_token_usage_daily")
    return (f"insert into {table} select * from {table} where usage_date = %s limit 1",
            f"delete from {table} where rowid in (select max(rowid) from {table} "
            "where usage_date = %s group by wallet_id having count(*) > 1)")


FAILURE_MODES = {
    "rate outside [0, 1]": ("wallet/wallet_provisioning_daily", _corrupt_rate),
    "latency percentiles out of order": ("wallet/wallet_service_daily", _corrupt_latency),
    "duplicate (wallet, day)": ("wallet/wallet_token_usage_daily", _duplicate_a_row),
    "transition lost after extraction": ("lifecycle/fct_token_state_transitions",
                                         _lose_a_transition),
    "card number in a mart": ("compliance/audit_exceptions", _plant_a_pan),
}


def _run_sql(statements: str, day: date) -> None:
    from ingestion.warehouse import open_warehouse

    wh = open_warehouse(create=False)
    try:
        for sql in statements.split("; "):
            wh.execute(sql, [day] if "%s" in sql else None)
    finally:
        wh.close()


@pytest.mark.parametrize("mode", sorted(FAILURE_MODES))
def test_a_failing_check_withholds_the_partition(pipeline, local_stack, mode):
    from orchestration.defs.dbt.assets import mart_relation

    asset, corrupt = FAILURE_MODES[mode]
    day = pipeline["days"][1]
    break_it, undo = corrupt(mart_relation)
    _run_sql(break_it, day)
    before = len(read_records(local_stack.intake_records))
    try:
        result = _republish(pipeline, day, sensor=False)
    finally:
        _run_sql(undo, day)
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.asset_key.to_user_string() for c in failed] == [asset]
    assert not result.get_asset_materialization_events()  # the publish asset did not run
    assert not _new_records(local_stack, before)  # the gate itself sends nothing
    from orchestration.defs.publication.sensors import evaluate_after

    evaluate_after(result, pipeline["instance"], pipeline["resources"]["datadog"])
    records = _new_records(local_stack, before)
    assert not _series(records)  # no KPI point of that partition reached Datadog
    events = [r["body"] for r in records if r["path"] == "/api/v1/events"]
    assert len(events) == 1 and "publication:withheld" in events[0]["tags"]
    assert f"partition:{day}" in events[0]["tags"]
    assert asset in events[0]["text"]


def test_a_range_with_one_bad_day_fails_that_day_only(pipeline, local_stack):
    """A range re-checked in one run with one day's mart corrupted (as the demo does): that
    day's suite fails with everything it saw, every other result of the range passes, the UI's
    partition status agrees, and the sensor withholds exactly that day."""
    from ingestion.warehouse import open_warehouse
    from orchestration.defs.dbt.assets import mart_relation
    from orchestration.defs.publication.sensors import evaluate_after
    from orchestration.partitions import DAILY
    from sandbox.demo.corruption import corrupt_success_rate, restore_success_rate
    from tests.orchestration import check_records

    days = pipeline["days"]
    bad = days[1]
    wh = open_warehouse(create=False)
    try:
        saved = corrupt_success_rate(wh, mart_relation, bad)
    finally:
        wh.close()
    assert saved
    before = len(read_records(local_stack.intake_records))
    try:
        result = pipeline["defs"].resolve_job_def("republish").execute_in_process(
            resources=pipeline["resources"], instance=pipeline["instance"],
            raise_on_error=False, tags=dict(zip(PARTITION_TAGS, (
                days[0].isoformat(), days[-1].isoformat()), strict=True)))
    finally:
        wh = open_warehouse(create=False)
        try:
            restore_success_rate(wh, mart_relation, bad, saved)
        finally:
            wh.close()
    assert not result.success
    assert not result.get_asset_materialization_events()  # nothing of the range published
    instance, run_id = pipeline["instance"], result.run_id
    found = check_records.evaluations(instance, run_id)
    stored = check_records.stored(instance, run_id, _gate_keys())
    mart = dg.AssetCheckKey(dg.AssetKey(["wallet", "wallet_provisioning_daily"]), "kpi_suite")
    assert set(found) == {(key, d.isoformat()) for key in _gate_keys() for d in days}
    assert all(len(found_) == 1 for found_ in found.values())
    failed = sorted((k.to_user_string(), p) for (k, p), (e,) in found.items() if not e.passed)
    assert failed == [(mart.to_user_string(), bad.isoformat())]
    (evaluation,) = found[(mart, bad.isoformat())]
    observed = evaluation.metadata["observed"].value  # the failing day: everything observed
    assert observed["failed_expectations"] >= 1 and observed["failures"]
    assert any(f["expectation"] == "expect_column_values_to_be_between"
               and "provision_success_rate" in f["columns"] and 1.7 in (
                   f["partial_unexpected_list"]) for f in observed["failures"])
    assert evaluation.metadata["partition"].value == bad.isoformat()
    assert "1.7" in evaluation.description or "provision_success_rate" in evaluation.description
    for day in days:
        if day != bad:
            (passing,) = found[(mart, day.isoformat())]
            assert passing.passed and "observed" not in passing.metadata
    for key in _gate_keys():
        for day in days:
            expected = "FAILED" if (key, day) == (mart, bad) else "SUCCEEDED"
            assert stored[(key, day.isoformat())] == [expected], (key, day)
    assert check_records.partition_statuses(instance, mart, DAILY) == {
        "FAILED": {bad.isoformat()},
        "SUCCEEDED": {d.isoformat() for d in days if d != bad}}
    # the check's page: its latest execution is the range's last day, a real result; the
    # failed day, selected, shows its failure
    assert check_records.latest(instance, mart) == (run_id, days[-1].isoformat(), "SUCCEEDED")
    assert check_records.latest(instance, mart, bad.isoformat()) == (
        run_id, bad.isoformat(), "FAILED")
    assert not check_records.skipped(instance, run_id)
    # the same verdicts in the warehouse, for the readers that are not Dagster
    wh = open_warehouse(create=False)
    try:
        stored_verdicts = verdicts.latest(wh, days)
    finally:
        wh.close()
    assert {d: v.status for d, v in stored_verdicts.items()} == {
        d: "withheld" if d == bad else "passed" for d in days}
    assert stored_verdicts[bad].failed_checks == (
        "wallet/wallet_provisioning_daily:kpi_suite",)
    assert all(v.run_id == run_id for v in stored_verdicts.values())

    evaluate_after(result, instance, pipeline["resources"]["datadog"])
    records = _new_records(local_stack, before)
    assert not _series(records)
    events = [r["body"] for r in records if r["path"] == "/api/v1/events"]
    assert len(events) == 1, events  # one withheld event, for the bad day only
    assert f"partition:{bad}" in events[0]["tags"] and "publication:withheld" in events[0]["tags"]
    assert "wallet/wallet_provisioning_daily" in events[0]["text"]


def test_the_gate_passes_again_once_the_data_is_right(pipeline):
    """After every failure mode was undone, the same partition publishes again."""
    from ingestion.warehouse import open_warehouse

    day = pipeline["days"][1]
    result = _republish(pipeline, day)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    wh = open_warehouse(create=False)
    try:
        assert verdicts.latest(wh, [day])[day].status == "passed"  # the newer verdict wins
        assert day in verdicts.published_days(wh)
    finally:
        wh.close()


def test_finished_runs_report_the_gate_verdict_of_their_day_once(pipeline, local_stack):
    """The run-report sensors, ticked as the daemon ticks them, on two republish runs of one
    day, the first with its mart corrupted: each run's count, duration and withheld days reach
    the local intake with its job and outcome, one event per run says the day's verdict, and
    the next tick sends nothing."""
    from orchestration.defs.dbt.assets import mart_relation
    from orchestration.defs.run_reports.sensors import evaluate

    instance, datadog = pipeline["instance"], pipeline["resources"]["datadog"]
    cursors = evaluate(instance, datadog, {})  # from now: earlier runs are not reported
    day = pipeline["days"][1]
    break_it, undo = _corrupt_rate(mart_relation)
    _run_sql(break_it, day)
    before = len(read_records(local_stack.intake_records))
    try:
        withheld = _republish(pipeline, day, sensor=False)
    finally:
        _run_sql(undo, day)
    passed = _republish(pipeline, day, sensor=False)
    assert not withheld.success and passed.success
    by_runs = _new_records(local_stack, before)  # the runs send no report themselves
    assert not [s for s in _series(by_runs) if s["metric"].startswith("tokenwatch.pipeline.")]
    assert not [e for e in records_events(by_runs) if "job:republish" in e["tags"]]
    before = len(read_records(local_stack.intake_records))
    cursors = evaluate(instance, datadog, cursors)
    records = _new_records(local_stack, before)
    points = sorted((s["metric"], tuple(s["tags"]), s["points"][0][1]) for s in _series(records))
    failure = ("env:local", "job:republish", "outcome:failure")
    success = ("env:local", "job:republish", "outcome:success")
    assert [(m, t, v) for m, t, v in points if not m.endswith("duration_s")] == [
        ("tokenwatch.pipeline.gate.withheld_days", failure[:2], 0.0),
        ("tokenwatch.pipeline.gate.withheld_days", failure[:2], 1.0),
        ("tokenwatch.pipeline.run.count", failure, 1.0),
        ("tokenwatch.pipeline.run.count", success, 1.0)]
    durations = {t: v for m, t, v in points if m.endswith("duration_s")}
    assert set(durations) == {failure, success} and all(v > 0 for v in durations.values())
    events = {e["tags"][2]: e for e in records_events(records)}
    bad, good = events["outcome:failure"], events["outcome:success"]
    assert bad["alert_type"] == "error" and good["alert_type"] == "success"
    assert bad["tags"] == [*failure, f"partition:{day}", "gate:withheld"]
    assert good["tags"] == [*success, f"partition:{day}", "gate:passed"]
    assert withheld.run_id in bad["text"] and passed.run_id in good["text"]
    assert (f"{day}: withheld (wallet/wallet_provisioning_daily:kpi_suite)" in bad["text"]
            and f"wallet/wallet_provisioning_daily:kpi_suite [{day}]" in bad["text"])
    assert f"{day}: passed" in good["text"]
    seen = len(read_records(local_stack.intake_records))
    assert evaluate(instance, datadog, cursors) == cursors  # reported once
    assert len(read_records(local_stack.intake_records)) == seen


def records_events(records: list[dict]) -> list[dict]:
    return [r["body"] for r in records if r["path"] == "/api/v1/events"]


def test_dashboards_and_monitors_asset_creates_then_updates_nothing(pipeline, local_stack):
    from orchestration.defs.publication.assets import datadog_as_code

    actions = []
    for _ in range(2):
        result = dg.materialize([datadog_as_code], resources=pipeline["resources"],
                                instance=pipeline["instance"])
        pushed = result.get_asset_materialization_events()[0].materialization.metadata["pushed"]
        actions.append(sorted({item["action"] for item in pushed.value}))
    assert actions[0] == ["created"] or actions[0] == ["unchanged"]  # first push in this stack
    assert actions[1] == ["unchanged"]  # pushing twice creates no duplicates
    listed = [r for r in read_records(local_stack.intake_records)
              if r["path"] in ("/api/v1/dashboard", "/api/v1/monitor") and r["method"] == "POST"]
    titles = [r["body"].get("title") or r["body"].get("name") for r in listed]
    assert len(titles) == len(set(titles)) == 16
