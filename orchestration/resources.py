"""Resources, chosen as one set by ``TOKENWATCH_ENV``: ``local`` (DuckDB file, the local stack's
moto and Datadog intake) or ``prod`` (Snowflake, AWS, Datadog). Assets never know which.

The switch lives here and in the modules it calls (``ingestion.warehouse.open_warehouse``,
``ingestion.world.world_from_env``), never in models or asset code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from ingestion.warehouse import DBT_TARGETS, open_warehouse, target_name
from ingestion.warehouse.base import Warehouse
from ingestion.world import World
from tokenwatch import config


class WarehouseResource(dg.ConfigurableResource):
    """The raw layer's warehouse; ``target`` empty means the environment's default."""

    target: str = ""

    def resolved_target(self) -> str:
        return self.target or target_name()

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        wh = open_warehouse(self.resolved_target())
        try:
            yield wh
        finally:
            wh.close()

    def dbt_target(self) -> str:
        return DBT_TARGETS[self.resolved_target()]


class SourcesResource(dg.ConfigurableResource):
    """Where the state database, the Kinesis stream and the S3 lake are: the environment's
    (see ``ingestion.world``), with any of the three named explicitly instead."""

    pg_dsn: str = ""
    stream: str = ""
    bucket: str = ""

    def sources(self) -> World:
        from dataclasses import replace

        from ingestion.world import world_from_env

        found = world_from_env()
        return replace(found, pg_dsn=self.pg_dsn or found.pg_dsn,
                       stream=self.stream or found.stream, bucket=self.bucket or found.bucket)


def env_name() -> str:
    return config.env_name()


class DatadogResource(dg.ConfigurableResource):
    """Datadog's API: the local intake, or the real one (reporting/datadog/client.py
    resolves which from the environment)."""

    def options(self) -> dict:
        from reporting.datadog.client import datadog_options

        return datadog_options()

    def withhold(self, partition: str, failures: dict[str, str]):
        from reporting.datadog.events import publication_withheld

        return publication_withheld(partition, failures, self.options(), env=env_name())
