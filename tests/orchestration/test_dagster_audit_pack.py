"""The audit pack on the compliance schedule, on a copy of the built DuckDB warehouse (which
carries two planted findings) against the world's PostgreSQL, with the local Datadog intake:

* the last day of a month builds the day's pack and the month's, under
  TOKENWATCH_AUDIT_PACK_DIR, uploaded to TOKENWATCH_AUDIT_PACK_BUCKET; a failing control is
  evidence: the pack is written and verifies, the asset says ``passed: false`` and Datadog gets
  the error event and ``controls_failed`` > 0;
* ``daily_review_ran`` fails while the day before has no pack, passes once it has one, and
  fails again when that pack is removed (a missed review), each failure an ``audit:review``
  event, the review's age sent every time.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from orchestration.defs.audit.pack import (
    PACK_ASSETS,
    PACK_CHECKS,
    pack_directory,
    packs_for,
    review_status,
)
from orchestration.resources import DatadogResource, SourcesResource, WarehouseResource
from reporting.audit_pack import check_pack
from sandbox.intake import IntakeThread, read_records
from tests.warehouses import Built

KEY = "audit-pack-test-key"
MONTH_END, DAY_BEFORE = date(2026, 11, 30), date(2026, 11, 29)


@pytest.fixture()
def setup(built_duckdb: Built, world, local_stack, tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_duckdb.path, path)
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(path))
    monkeypatch.setenv("TOKENWATCH_DUCKDB_REPLICA_PATH", str(tmp_path / "replica.duckdb"))
    monkeypatch.setenv("TOKENWATCH_AUDIT_PACK_DIR", str(tmp_path / "packs"))
    monkeypatch.setenv("TOKENWATCH_AUDIT_BUCKET", f"audit-{uuid.uuid4().hex[:8]}")
    bucket = f"packs-{uuid.uuid4().hex[:8]}"
    s3 = local_stack.s3_client()
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("TOKENWATCH_AUDIT_PACK_BUCKET", bucket)
    with IntakeThread(tmp_path / "records.jsonl", api_key=KEY) as intake:
        resources = {"warehouse": WarehouseResource(),
                     "sources": SourcesResource(pg_dsn=world.pg_dsn),
                     "datadog": DatadogResource(env="prod", api_key=KEY,
                                                api_host=intake.url)}
        yield {"resources": resources, "intake": intake, "packs": tmp_path / "packs",
               "s3": s3, "bucket": bucket, "instance": dg.DagsterInstance.ephemeral()}


def _run(setup, day: date, checks_only: bool = False):
    """The pack and its check for ``day``; or the check alone (given its partition as a tag:
    a selection of checks only has no asset to take the partitions from)."""
    where = ({"selection": dg.AssetSelection.checks(*PACK_CHECKS),
              "tags": {"dagster/partition": day.isoformat()}} if checks_only
             else {"partition_key": day.isoformat()})
    return dg.materialize([*PACK_ASSETS, *PACK_CHECKS], resources=setup["resources"],
                          instance=setup["instance"], **where)


def _events(setup) -> list[dict]:
    return [r["body"] for r in read_records(setup["intake"].records, "/api/v1/events")]


def _series(setup) -> list[tuple[str, tuple[str, ...], float]]:
    return [(s["metric"], tuple(s["tags"]), s["points"][0][1])
            for r in read_records(setup["intake"].records, "/api/v1/series")
            for s in r["body"]["series"]]


def test_which_packs_a_day_builds():
    assert packs_for(date(2026, 11, 29)) == [("day", DAY_BEFORE, DAY_BEFORE)]
    assert packs_for(MONTH_END) == [("day", MONTH_END, MONTH_END),
                                    ("month", date(2026, 11, 1), MONTH_END)]
    assert packs_for(date(2028, 2, 29))[1] == ("month", date(2028, 2, 1), date(2028, 2, 29))


def test_the_month_end_builds_both_packs_and_the_review_check_follows_them(setup):
    first = _run(setup, MONTH_END)
    assert first.success  # a failing control or a missed review does not fail the run
    (mat,) = first.get_asset_materialization_events()
    meta = mat.materialization.metadata
    packs = meta["packs"].value
    assert [(p["period"], p["start"], p["end"]) for p in packs] == [
        ("day", "2026-11-30", "2026-11-30"), ("month", "2026-11-01", "2026-11-30")]
    # the planted tamper fails a control: the pack is written anyway, and verifies
    assert meta["passed"].value is False and meta["failed_controls"].value
    for p in packs:
        assert p["uploaded_files"] > 3 and p["location"].startswith(f"s3://{setup['bucket']}/")
        directory = pack_directory(setup["packs"], date.fromisoformat(p["start"]),
                                   date.fromisoformat(p["end"]))
        assert str(directory) == p["path"] and check_pack(directory) == []
        assert len(p["manifest_sha256"]) == 64
    listed = setup["s3"].list_objects_v2(Bucket=setup["bucket"])["Contents"]
    assert {o["Key"].split("/")[0] for o in listed} == {
        "tokenwatch-audit-2026-11-30_2026-11-30", "tokenwatch-audit-2026-11-01_2026-11-30"}
    assert meta["controls"].value == packs[0]["controls"]

    sent = _series(setup)
    failed = [v for m, t, v in sent if m == "tokenwatch.audit.pack.controls_failed"]
    assert len(failed) == 2 and all(v > 0 for v in failed)
    assert {t for m, t, _ in sent if m == "tokenwatch.audit.pack.generated"} == {
        ("env:prod", "period:day"), ("env:prod", "period:month")}
    chain = {t[1]: v for m, t, v in sent if m == "tokenwatch.audit.chain.findings"}
    assert chain["side:warehouse"] > 0  # the planted edit, seen from the warehouse
    built = [e for e in _events(setup) if "audit:pack" in e["tags"]]
    assert len(built) == 2 and all(e["alert_type"] == "error" for e in built)

    # the day before has no pack yet: the review check fails, says so, and raises the monitor
    (review,) = first.get_asset_check_evaluations()
    assert not review.passed and review.severity == dg.AssetCheckSeverity.ERROR
    assert "no daily pack for 2026-11-29" in review.description
    [missed] = [e for e in _events(setup) if "audit:review" in e["tags"]]
    assert "partition:2026-11-30" in missed["tags"] and "Runbook: " in missed["text"]

    assert _run(setup, DAY_BEFORE).success
    again = _run(setup, MONTH_END, checks_only=True)
    (review,) = again.get_asset_check_evaluations()
    assert review.passed, review.description
    assert review.metadata["packs"].value == {"2026-11-29": "verified",
                                              "2026-11-30": "verified"}
    ages = [v for m, _, v in _series(setup) if m == "tokenwatch.audit.review.age_hours"]
    since_dec_1 = (datetime.now(UTC) - datetime(2026, 12, 1, tzinfo=UTC)).total_seconds() / 3600
    assert abs(ages[-1] - since_dec_1) < 0.2  # reviewed until the end of the 30th

    # a missed review: yesterday's pack is gone
    shutil.rmtree(pack_directory(setup["packs"], DAY_BEFORE, DAY_BEFORE))
    missed_run = _run(setup, MONTH_END, checks_only=True)
    (review,) = missed_run.get_asset_check_evaluations()
    assert not review.passed and "no daily pack for 2026-11-29" in review.description
    ages = [v for m, _, v in _series(setup) if m == "tokenwatch.audit.review.age_hours"]
    assert abs(ages[-1] - ages[-2] - 48) < 0.2  # reviewed until the start of the 29th: > 26 h
    reviews = [e["tags"][1] for e in _events(setup) if "audit:review" in e["tags"]]
    # the 29th's own run missed the 28th's pack too: it said so
    assert reviews == ["partition:2026-11-30", "partition:2026-11-29", "partition:2026-11-30"]


def test_a_pack_that_does_not_verify_fails_the_review(setup):
    assert _run(setup, DAY_BEFORE).success
    directory = pack_directory(setup["packs"], DAY_BEFORE, DAY_BEFORE)
    csv = sorted(directory.glob("*.csv"))[0]
    csv.write_bytes(csv.read_bytes() + b" ")
    passed, line, seen = review_status(setup["packs"], DAY_BEFORE, DAY_BEFORE)
    assert not passed and "does not verify" in line and csv.name in line
    assert seen["packs"]["2026-11-29"] != "verified"


def test_a_pack_that_cannot_be_built_fails_the_asset_and_says_so(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(tmp_path / "empty.duckdb"))  # no marts
    result = dg.materialize(PACK_ASSETS, partition_key=DAY_BEFORE.isoformat(),
                            resources=setup["resources"], instance=setup["instance"],
                            raise_on_error=False)
    assert not result.success
    [event] = _events(setup)
    assert event["alert_type"] == "error"
    assert event["tags"] == ["env:prod", "partition:2026-11-29", "audit:pack", "status:failed"]
    assert "could not be built" in event["text"] and "Runbook: " in event["text"]
    assert not [m for m, _, _ in _series(setup) if m == "tokenwatch.audit.pack.generated"]
