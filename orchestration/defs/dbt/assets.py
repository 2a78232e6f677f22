"""The dbt project as Dagster assets (dagster-dbt): every model, seed and snapshot an asset,
every dbt test an asset check, the raw tables the ingestion assets upstream of the sources.

The marts are partitioned by day; a run for a range of days (one day, or a backfill, which runs
as a single dbt invocation) passes the range to dbt as ``partition_start`` / ``partition_end``
so incremental models re-process those days besides their usual lookback.
"""

import functools
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from ingestion.warehouse import DBT_TARGETS, dbt_env, target_name
from orchestration.defs.dbt.project import DBT_DIR, PREPARE_COMMAND, dbt_project
from orchestration.partitions import DAILY
from orchestration.resources import WAREHOUSE_POOL

#: dbt from this environment, whether or not its bin directory is on PATH
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
MART_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2),
                                                warn_window=timedelta(minutes=75))

if not dbt_project.manifest_path.exists():
    raise FileNotFoundError(
        f"dbt's manifest {dbt_project.manifest_path} is missing: build it with `make install` "
        f"(or `{PREPARE_COMMAND}` from the repository root), then load the definitions again")


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, profiles_dir=str(DBT_DIR),
                          target=DBT_TARGETS[target_name()], dbt_executable=DBT_EXECUTABLE)


class TokenwatchTranslator(DagsterDbtTranslator):
    """Sources are the raw assets (``raw/<table>``); models are grouped by layer."""

    def get_asset_key(self, dbt_resource_props) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if dbt_resource_props["resource_type"] in ("seed", "snapshot"):
            return "reference" if dbt_resource_props["resource_type"] == "seed" else "snapshots"
        if len(fqn) > 2 and fqn[1] == "marts":
            return fqn[2]  # wallet, lifecycle, compliance
        return fqn[1] if len(fqn) > 1 else None

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.group_name in ("wallet", "lifecycle", "compliance"):
            spec = spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        return spec


TRANSLATOR = TokenwatchTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project,
            dagster_dbt_translator=TRANSLATOR, partitions_def=DAILY,
            backfill_policy=dg.BackfillPolicy.single_run(), name="tokenwatch_dbt",
            pool=WAREHOUSE_POOL)
def tokenwatch_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = context.partition_time_window
    dbt_vars = {"partition_start": window.start.date().isoformat(),
                "partition_end": window.end.date().isoformat()}
    os.environ.update(dbt_env())  # dbt's profile reads the warehouse ingestion writes
    args = ["build", "--vars", json.dumps(dbt_vars)]
    events = dbt.cli(args, context=context).stream()
    if target_name() != "duckdb":
        yield from events.fetch_row_counts()
        return
    # A DuckDB file has one writer process at a time: dagster-dbt's row counts would keep a
    # read-only connection open in this process and lock out the next dbt run. Count with a
    # connection of our own once dbt has exited, and close it.
    yield from with_row_counts(context, list(events))


def with_row_counts(context: dg.AssetExecutionContext, events: list) -> list:
    from ingestion.warehouse import open_warehouse

    relations = {TRANSLATOR.get_asset_key(node): f"{node['schema']}.{node['alias']}"
                 for node in manifest()["nodes"].values()
                 if node["resource_type"] in ("model", "seed", "snapshot")}
    wh = open_warehouse(create=False)
    try:
        counted = []
        for event in events:
            key = (context.asset_key_for_output(event.output_name)
                   if isinstance(event, dg.Output) else getattr(event, "asset_key", None))
            relation = relations.get(key)
            if isinstance(event, dg.Output | dg.AssetMaterialization) and relation:
                rows = wh.query(f"select count(*) from {relation}")[0][0]
                event = event.with_metadata({**event.metadata,
                                             "dagster/row_count": dg.MetadataValue.int(rows)})
            counted.append(event)
        return counted
    finally:
        wh.close()


@functools.cache
def manifest() -> dict:
    """dbt's manifest, read once: the definitions were built from it at import."""
    return json.loads(dbt_project.manifest_path.read_text())


def mart_relation(model: str) -> str:
    """``schema.table`` of a dbt model in the warehouse, from the manifest (the schema depends
    on the target's base schema; the database is the connection's own)."""
    node = manifest()["nodes"].get(f"model.tokenwatch.{model}")
    if node is None:
        raise KeyError(f"no dbt model named {model!r} in {dbt_project.manifest_path}")
    return f"{node['schema']}.{node['alias']}"
