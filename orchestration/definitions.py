"""The one Dagster ``Definitions`` of tokenwatch.

    dagster dev -m orchestration.definitions      (or: make dagster)

Resources are picked as one set by ``TOKENWATCH_ENV`` (orchestration/resources.py).
"""

import dagster as dg

from orchestration.defs.audit.assets import AUDIT_ASSETS, AUDIT_CHECKS, AUDIT_RAW_TABLES
from orchestration.defs.dbt.assets import dbt_resource, tokenwatch_dbt
from orchestration.defs.gate.checks import quality_gate
from orchestration.defs.publication.assets import PUBLISH_ASSETS
from orchestration.defs.raw.assets import INGEST_ASSETS, RAW_BOOKKEEPING
from orchestration.defs.raw.checks import RAW_CHECKS
from orchestration.defs.schedules import (
    compliance_daily,
    compliance_job,
    ingest_every_15_minutes,
    ingest_job,
    lake_job,
    marts_hourly,
    marts_job,
    new_lake_objects,
    republish_job,
)
from orchestration.resources import DatadogResource, SourcesResource, WarehouseResource


def resources() -> dict:
    return {"warehouse": WarehouseResource(), "sources": SourcesResource(),
            "datadog": DatadogResource(), "dbt": dbt_resource()}


defs = dg.Definitions(
    assets=[*INGEST_ASSETS, *RAW_BOOKKEEPING, *AUDIT_ASSETS, *AUDIT_RAW_TABLES, tokenwatch_dbt,
            *PUBLISH_ASSETS],
    asset_checks=[*RAW_CHECKS, *AUDIT_CHECKS, quality_gate],
    jobs=[ingest_job, lake_job, marts_job, compliance_job, republish_job],
    schedules=[ingest_every_15_minutes, marts_hourly, compliance_daily],
    sensors=[new_lake_objects],
    resources=resources(),
)
