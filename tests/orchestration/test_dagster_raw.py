"""The raw layer in Dagster: Definitions load, the ingestion assets materialise a simulated
world with their checks passing, and the lake sensor fires only when new objects land."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.defs.schedules import new_lake_objects
from orchestration.resources import SourcesResource, WarehouseResource


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/token_state_transitions", "raw/wallet_events", "raw/apigw_logs",
            "raw/lambda_logs"} <= keys
    assert defs.resolve_job_def("ingest") is not None
    assert defs.resolve_schedule_def("ingest_every_15_minutes").cron_schedule == "*/15 * * * *"


def test_dg_loads_the_project():
    """`dg check defs`, the way dg (and Dagster+) load the code location."""
    import subprocess
    import sys
    from pathlib import Path

    from tokenwatch import config

    dg_cli = Path(sys.executable).parent / "dg"
    r = subprocess.run([str(dg_cli), "check", "defs"], capture_output=True, text=True,
                       timeout=300, cwd=config.project_root())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "All definitions loaded successfully" in r.stdout + r.stderr


@pytest.fixture()
def world_resources(world, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    t = world.target
    return {"warehouse": WarehouseResource(),
            "sources": SourcesResource(pg_dsn=world.pg_dsn, stream=t.stream, bucket=t.bucket)}


def test_ingestion_assets_materialise_the_world_with_checks_passing(world, world_resources):
    from orchestration.defs.raw.assets import INGEST_ASSETS
    from orchestration.defs.raw.checks import RAW_CHECKS

    result = dg.materialize([*INGEST_ASSETS, *RAW_CHECKS], resources=world_resources)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 and all(c.passed for c in checks)
    assert {c.asset_key.to_user_string() for c in checks} == {
        "raw/token_state_transitions", "raw/wallet_events", "raw/apigw_logs", "raw/lambda_logs"}
    by_key = {m.asset_key.to_user_string(): m.metadata
              for m in result.get_asset_materialization_events()
              for m in [m.event_specific_data.materialization]}
    summary = world.summary
    assert by_key["raw/token_state_transitions"]["dagster/row_count"].value == (
        summary["transitions"]["total"])
    assert by_key["raw/wallet_events"]["duplicates"].value == summary["kinesis"]["duplicates"]
    assert by_key["raw/wallet_events"]["quarantined"].value == summary["kinesis"]["malformed"]
    assert by_key["raw/apigw_logs"]["dagster/row_count"].value == (
        summary["s3"]["apigw_logs"]["records"])


def test_lake_sensor_fires_only_for_new_objects(world, world_resources):
    with dg.build_sensor_context(resources=world_resources) as ctx:
        first = new_lake_objects(ctx)
        assert isinstance(first, dg.RunRequest)
        cursor = ctx.cursor
    with dg.build_sensor_context(resources=world_resources, cursor=cursor) as ctx:
        assert isinstance(new_lake_objects(ctx), dg.SkipReason)
    t = world_resources["sources"].sources()
    t.s3.put_object(Bucket=t.bucket, Key="lambda/dt=2099-01-01/hour=00/part-00000.json.gz",
                    Body=b"")
    try:
        with dg.build_sensor_context(resources=world_resources, cursor=cursor) as ctx:
            assert isinstance(new_lake_objects(ctx), dg.RunRequest)
    finally:
        t.s3.delete_object(Bucket=t.bucket,
                           Key="lambda/dt=2099-01-01/hour=00/part-00000.json.gz")


def test_the_transitions_check_fails_when_a_loaded_row_is_deleted(world, world_resources):
    from orchestration.defs.raw.assets import raw_token_state_transitions
    from orchestration.defs.raw.checks import transitions_accounted

    assets = [raw_token_state_transitions, transitions_accounted]
    clean = dg.materialize(assets, resources=world_resources)
    (passed,) = clean.get_asset_check_evaluations()
    assert passed.passed and passed.check_name == "transitions_accounted"
    assert passed.metadata["read_below_watermark"].value == world.summary["transitions"]["total"]
    with world_resources["warehouse"].open() as wh:
        wh.execute("delete from raw.token_state_transitions where transition_id = "
                   "(select min(transition_id) from raw.token_state_transitions)")
    only_the_check = dg.AssetSelection.checks(transitions_accounted)
    after = dg.materialize(assets, resources=world_resources, selection=only_the_check,
                           raise_on_error=False)
    (failed,) = after.get_asset_check_evaluations()
    assert not failed.passed and "difference -1" in failed.description
    assert failed.severity == dg.AssetCheckSeverity.ERROR  # blocking: downstream would not run
    assert all(spec.blocking for spec in transitions_accounted.check_specs)
