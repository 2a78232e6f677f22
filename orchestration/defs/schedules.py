"""When things run: ingestion every 15 minutes, a sensor that loads the lake as soon as new
objects land, marts and KPIs hourly, the compliance run daily. Stopped by default locally,
running in production (orchestration/automation.py)."""


from datetime import timedelta

import dagster as dg

from ingestion.sources.s3 import newest_keys
from orchestration.automation import schedule_status, sensor_status
from orchestration.defs.audit.retention import SPECS as RETENTION_SPECS
from orchestration.defs.gate.checks import SPECS
from orchestration.resources import SourcesResource

GATE_CHECKS = [dg.AssetCheckKey(spec.asset_key, spec.name) for spec in SPECS]

RAW = dg.AssetSelection.groups("raw")
LAKE = dg.AssetSelection.assets(["raw", "apigw_logs"], ["raw", "lambda_logs"])

ingest_job = dg.define_asset_job("ingest", selection=RAW,
                                 description="Load the three sources into the raw layer.")
lake_job = dg.define_asset_job("load_lake", selection=LAKE,
                               description="Load new S3 objects into the raw layer.")

ingest_every_15_minutes = dg.ScheduleDefinition(
    name="ingest_every_15_minutes", job=ingest_job, cron_schedule="*/15 * * * *",
    execution_timezone="UTC", default_status=schedule_status())


@dg.sensor(job=lake_job, minimum_interval_seconds=60,
           default_status=sensor_status(),
           description="Starts the lake load when new objects land under apigw/ or lambda/.")
def new_lake_objects(context: dg.SensorEvaluationContext, sources: SourcesResource):
    import json

    src = sources.sources()
    seen = json.loads(context.cursor) if context.cursor else {}
    newest = newest_keys(src.s3, src.bucket, seen)
    if not newest:
        return dg.SkipReason("no new objects in the lake")
    seen.update(newest)
    context.update_cursor(json.dumps(seen, sort_keys=True))
    return dg.RunRequest(run_key=json.dumps(seen, sort_keys=True),
                         tags={"tokenwatch/trigger": "new_lake_objects"})


#: the audit marts' retention and hot-tier checks are daily controls: the compliance job's only
RETENTION_CHECKS = dg.AssetSelection.checks(*(
    dg.AssetCheckKey(spec.asset_key, spec.name) for spec in RETENTION_SPECS))
MARTS = dg.AssetSelection.groups(
    "staging", "intermediate", "reference", "wallet", "lifecycle", "compliance", "publication",
    "reports"
    ) - dg.AssetSelection.assets(["datadog", "dashboards_and_monitors"]) - RETENTION_CHECKS
COMPLIANCE = (dg.AssetSelection.groups("compliance").upstream() - RAW
              ) | dg.AssetSelection.groups("audit")

marts_job = dg.define_asset_job(
    "marts_and_kpis", selection=MARTS,
    description="Build the marts for a day, run the quality gate, publish the day's KPIs.")
compliance_job = dg.define_asset_job(
    "compliance", selection=COMPLIANCE,
    description="A checkpoint of the transition log and its verification, the audit marts "
                "and their checks (hash chains, exceptions, PAN scan, retention and hot tier), "
                "the day's audit pack (and the month's on its last day) and the check that the "
                "daily review ran.")


@dg.schedule(job=marts_job, cron_schedule="5 * * * *", execution_timezone="UTC",
             default_status=schedule_status(),
             description="Hourly: today's partition (and yesterday's in the first hours of a "
                         "day, for data that arrives late).")
def marts_hourly(context: dg.ScheduleEvaluationContext):
    now = context.scheduled_execution_time
    days = [now.date()] + ([now.date() - timedelta(days=1)] if now.hour < 3 else [])
    return [dg.RunRequest(run_key=f"{d}@{now:%Y-%m-%dT%H}", partition_key=d.isoformat())
            for d in days]


compliance_daily = dg.build_schedule_from_partitioned_job(
    compliance_job, hour_of_day=2, minute_of_hour=30,
    default_status=schedule_status())


#: Re-check and re-publish partitions without rebuilding the marts (after a correction, or to
#: show the gate): the quality gate's checks and the publish asset.
republish_job = dg.define_asset_job(
    "republish",
    selection=dg.AssetSelection.checks(*GATE_CHECKS) | dg.AssetSelection.assets(
        ["datadog", "kpis"]),
    description="Run the quality gate on existing marts and publish the partition's KPIs.")
