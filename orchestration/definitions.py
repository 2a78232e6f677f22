"""The one Dagster ``Definitions`` of tokenwatch.

    dagster dev -m orchestration.definitions      (or: make dagster)

Resources are picked as one set by ``TOKENWATCH_ENV`` (orchestration/resources.py).
"""

from __future__ import annotations

import dagster as dg

from orchestration.assets.ingest import INGEST_ASSETS
from orchestration.checks import RAW_CHECKS
from orchestration.resources import SourcesResource, WarehouseResource
from orchestration.schedules import (
    ingest_every_15_minutes,
    ingest_job,
    lake_job,
    new_lake_objects,
)


def resources() -> dict:
    return {"warehouse": WarehouseResource(), "sources": SourcesResource()}


defs = dg.Definitions(
    assets=[*INGEST_ASSETS],
    asset_checks=[*RAW_CHECKS],
    jobs=[ingest_job, lake_job],
    schedules=[ingest_every_15_minutes],
    sensors=[new_lake_objects],
    resources=resources(),
)
