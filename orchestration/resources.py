"""Resources, chosen as one set by ``TOKENWATCH_ENV``: ``local`` (DuckDB file, the local stack's
moto and Datadog intake) or ``prod`` (Snowflake, AWS, Datadog). Assets never know which.

Each resource declares its configuration as fields; ``ENVIRONMENTS`` gives their values per
environment, ``dg.EnvVar`` where the value is an environment variable (Dagster reads it when a
run starts and shows the variable's name, never its value). An empty field means "what the
environment says" (``ingestion.warehouse.open_warehouse``, ``ingestion.world.world_from_env``,
``reporting.datadog.client.resolve``), which is also what a resource built with no arguments,
as tests do, uses. The switch lives here and in those modules, never in models or asset code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from ingestion.warehouse import open_warehouse, target_name
from ingestion.warehouse.base import Warehouse
from ingestion.world import World
from tokenwatch import config

#: The Dagster concurrency pool of every asset and check that opens the warehouse (the raw
#: loads and their checks, the audit checkpoint, dbt, the gate, the KPI publication). Its limit
#: is the instance's (orchestration/dagster.yaml: ``concurrency: pools: default_limit``): 1
#: locally, because a DuckDB file has one writer process at a time, within a run (the
#: multiprocess executor's steps) and across runs (a schedule's and a sensor's) alike; higher
#: where the warehouse takes concurrent writers (Snowflake, PostgreSQL).
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The raw layer's warehouse."""

    target: str = Field(default="", description=(
        "duckdb, postgres or snowflake; empty: TOKENWATCH_WAREHOUSE, else the environment's "
        "default"))

    def resolved_target(self) -> str:
        return self.target or target_name()

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        wh = open_warehouse(self.resolved_target())
        try:
            yield wh
        finally:
            wh.close()


class SourcesResource(dg.ConfigurableResource):
    """Where the state database, the Kinesis stream and the S3 lake are: the environment's
    (see ``ingestion.world``), with any of the three named explicitly instead."""

    pg_dsn: str = Field(default="", description=(
        "the state service's database, read as tokenwatch_reader; empty: the environment's"))
    stream: str = Field(default="", description="the wallet-event stream; empty: the "
                                                   "environment's")
    bucket: str = Field(default="", description="the S3 lake; empty: the environment's")

    def sources(self) -> World:
        from dataclasses import replace

        from ingestion.world import world_from_env

        found = world_from_env()
        return replace(found, pg_dsn=self.pg_dsn or found.pg_dsn,
                       stream=self.stream or found.stream, bucket=self.bucket or found.bucket)


class DatadogResource(dg.ConfigurableResource):
    """Datadog's API: the local intake, or the real one. With no ``api_key``, where
    ``reporting.datadog.client.resolve()`` points (the local stack's intake, or
    ``TOKENWATCH_DD_API_HOST``)."""

    env: str = Field(default="", description="the env tag of points and events; empty: "
                                                "TOKENWATCH_ENV")
    api_key: str = Field(default="", description="DD_API_KEY")
    app_key: str = Field(default="", description="DD_APP_KEY (dashboards and monitors)")
    site: str = Field(default="datadoghq.com", description="DD_SITE")
    api_host: str = Field(default="", description=(
        "a Datadog-compatible API instead of https://api.<site>"))

    def env_tag(self) -> str:
        return self.env or config.env_name()

    def options(self) -> dict:
        from reporting.datadog.client import SITE, datadog_options

        if not self.api_key:
            return datadog_options()
        site = self.site.strip().lower()
        if not self.api_host and not SITE.fullmatch(site):
            raise ValueError(f"DD_SITE must be a Datadog site such as datadoghq.eu, got {site!r}")
        host = self.api_host or f"https://api.{site}"
        return {"api_key": self.api_key, "app_key": self.app_key or None,
                "api_host": host.rstrip("/")}

    def withhold(self, partition: str, failures: dict[str, str]):
        """The "publication withheld" event of ``partition`` (publication's sensor sends it)."""
        from reporting.datadog.events import publication_withheld

        return publication_withheld(partition, failures, self.options(), env=self.env_tag())


def _variable(setting: str) -> dg.EnvVar:
    """``dg.EnvVar`` of a setting's variable (``tokenwatch.config.Settings``)."""
    return dg.EnvVar(config.env_var(setting))


def _variable_or(setting: str, default: str) -> str | dg.EnvVar:
    """The setting's ``dg.EnvVar`` when its variable is set, else ``default``."""
    return _variable(setting) if setting in config.settings().model_fields_set else default


def environments() -> dict[str, dict[str, dict]]:
    """The one environment map: each environment's resource fields, by ``TOKENWATCH_ENV``."""
    return {
        "local": {
            "warehouse": {"target": _variable_or("warehouse", "duckdb")},
            "sources": {},  # the local stack's endpoints, from $TOKENWATCH_HOME/stack.json
            "datadog": {"env": "local"},  # the local intake (or TOKENWATCH_DD_API_HOST)
        },
        "prod": {
            "warehouse": {"target": _variable_or("warehouse", "snowflake")},
            "sources": {"pg_dsn": _variable_or("reader_pg_dsn", ""),
                        "stream": _variable("stream"), "bucket": _variable("bucket")},
            "datadog": {"env": "prod", "api_key": _variable("dd_api_key"),
                        "app_key": _variable_or("dd_app_key", ""),
                        "site": _variable_or("dd_site", "datadoghq.com"),
                        "api_host": _variable_or("dd_api_host", "")},
        },
    }


def resources(env: str | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of ``env`` (default: ``TOKENWATCH_ENV``), dbt's among them."""
    from orchestration.defs.dbt.assets import dbt_resource

    fields = environments()[env or config.env_name()]
    return {"warehouse": WarehouseResource(**fields["warehouse"]),
            "sources": SourcesResource(**fields["sources"]),
            "datadog": DatadogResource(**fields["datadog"]), "dbt": dbt_resource()}
