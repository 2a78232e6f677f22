"""The whole pipeline in Dagster, in-process, on the local target: a simulated world (faults
on) through ingestion, dbt, the quality gate and publication into the local Datadog intake."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from orchestration.local.intake import read_records
from orchestration.resources import DatadogResource, SourcesResource, WarehouseResource

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
