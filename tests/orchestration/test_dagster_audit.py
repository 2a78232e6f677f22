"""The compliance job's tamper evidence in Dagster: a checkpoint lands in S3 and the warehouse,
and the ``chain_verified`` check (ERROR severity, not blocking) passes on an intact log and
fails, naming the row, once a superuser has edited it."""

from __future__ import annotations

import uuid

import dagster as dg
import httpx

from orchestration.defs.audit.assets import AUDIT_ASSETS, AUDIT_CHECKS
from orchestration.resources import SourcesResource, WarehouseResource
from state_service.app import create_app
from state_service.server import ServiceThread
from tests.tamper import CASES, apply_all, record_history


def test_checkpoint_asset_and_its_verification_check(source_dsn, local_stack, tmp_path,
                                                    monkeypatch):
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("TOKENWATCH_AUDIT_BUCKET", f"audit-{uuid.uuid4().hex[:8]}")
    with ServiceThread(create_app(source_dsn, api_keys=["k"], run_migrations=False)) as svc, \
            httpx.Client(base_url=svc.url, headers={"Authorization": "Bearer k"}) as client:
        refs = record_history(client, 2)
    resources = {"warehouse": WarehouseResource(),
                 "sources": SourcesResource(pg_dsn=source_dsn)}
    partition = "2026-11-24"

    first = dg.materialize([*AUDIT_ASSETS, *AUDIT_CHECKS], resources=resources,
                           partition_key=partition)
    assert first.success
    (check,) = first.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows"].value == 20
    from ingestion.warehouse import open_warehouse

    wh = open_warehouse()
    try:
        assert wh.count("chain_checkpoints") == 20 and wh.count("chain_checkpoint_log") == 1
    finally:
        wh.close()

    apply_all(source_dsn, refs[:1])  # the first case: a reason edited in place
    second = dg.materialize([*AUDIT_ASSETS, *AUDIT_CHECKS], resources=resources,
                            partition_key=partition, raise_on_error=False)
    (check,) = second.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["findings_by_kind"].value == {CASES[0].kind: 1}
    assert refs[0] in check.metadata["findings"].value[0]


def test_a_range_of_days_records_the_verdict_once_per_day(source_dsn, local_stack, tmp_path,
                                                          monkeypatch):
    """A compliance run over a range of days (one run, as a backfill runs): ``chain_verified``
    has one result per day of the range, none of them left Skipped."""
    from orchestration.partitions import DAILY
    from tests.orchestration import check_records

    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("TOKENWATCH_AUDIT_BUCKET", f"audit-{uuid.uuid4().hex[:8]}")
    with ServiceThread(create_app(source_dsn, api_keys=["k"], run_migrations=False)) as svc, \
            httpx.Client(base_url=svc.url, headers={"Authorization": "Bearer k"}) as client:
        record_history(client, 1)
    days = ["2026-11-22", "2026-11-23", "2026-11-24"]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*AUDIT_ASSETS, *AUDIT_CHECKS], instance=instance,
        resources={"warehouse": WarehouseResource(),
                   "sources": SourcesResource(pg_dsn=source_dsn)},
        tags={"dagster/asset_partition_range_start": days[0],
              "dagster/asset_partition_range_end": days[-1]})
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert sorted(c.partition for c in checks) == days
    assert all(c.passed and c.metadata["rows"].value == 10 for c in checks)
    assert not check_records.skipped(instance, result.run_id)
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "chain_checkpoints"]), "chain_verified")
    assert check_records.partition_statuses(instance, key, DAILY) == {"SUCCEEDED": set(days)}
