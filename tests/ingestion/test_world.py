"""The three sources of a simulated world (faults on) into each warehouse target: what lands
reconciles with the simulator's summary exactly, and a second run loads nothing."""

from __future__ import annotations

import pytest

from ingestion.run import ingest

TARGETS = ["duckdb", "postgres"]


def _sources(world):
    return world.sources()


def _quarantined(wh, source: str) -> int:
    return int(wh.query("select count(*) from raw.quarantine where source = %s", [source])[0][0])


@pytest.mark.parametrize("target", TARGETS)
def test_world_reconciles_with_the_summary(world, warehouse_factory, target):
    wh = warehouse_factory(target)
    summary = world.summary
    report = ingest(_sources(world), wh)

    # transitions: every recorded one, once
    assert wh.count("token_state_transitions") == summary["transitions"]["total"]
    per_state = dict(wh.query("select to_state, count(*) from raw.token_state_transitions "
                              "group by 1 order by 1"))
    assert per_state == summary["transitions"]["per_to_state"]
    tokens = dict(wh.query("select wallet_id, count(distinct token_ref) "
                           "from raw.token_state_transitions group by 1 order by 1"))
    assert tokens == summary["tokens_per_wallet"]

    # wallet events: duplicates kept once, malformed records quarantined
    k = summary["kinesis"]
    assert wh.count("wallet_events") == k["events_unique"]
    per_type = dict(wh.query("select event_type, count(*) from raw.wallet_events "
                             "group by 1 order by 1"))
    assert per_type == k["events_per_type"]
    res = report.results["wallet_events"]
    assert res.records_read == k["records_put"]
    assert res.duplicates == k["duplicates"] > 0
    assert _quarantined(wh, "wallet_events") == k["malformed"] > 0

    # the lake: re-delivered objects skipped, malformed lines and corrupt objects quarantined
    for source in ("apigw_logs", "lambda_logs"):
        s = summary["s3"][source]
        assert wh.count(source) == s["records"]
        assert _quarantined(wh, source) == summary["quarantine_expected"][source] > 0
    s3 = report.results["s3"]
    assert s3.duplicate_objects == sum(s["duplicate_objects"] for s in summary["s3"].values())
    assert wh.count("quarantine") == summary["quarantine_expected"]["total"]
    reasons = [r for (r,) in wh.query("select reason from raw.quarantine")]
    assert all(reasons) and any("missing required field" in r for r in reasons)
    assert any("not gzip" in r for r in reasons) and any("not valid JSON" in r for r in reasons)

    # a second run finds nothing new
    again = ingest(_sources(world), wh)
    assert again.results["transitions"].rows_loaded == 0
    assert again.results["wallet_events"].records_read == 0
    assert again.results["s3"].objects_loaded == 0
    assert again.results["s3"].objects_skipped == s3.objects_seen
    assert wh.count("token_state_transitions") == summary["transitions"]["total"]
    assert wh.count("wallet_events") == k["events_unique"]
    assert wh.count("quarantine") == summary["quarantine_expected"]["total"]


@pytest.mark.parametrize("target", TARGETS)
def test_no_card_number_reaches_the_raw_layer(world, warehouse_factory, target):
    from tokenwatch.pan import find_pan_like

    wh = warehouse_factory(target)
    ingest(_sources(world), wh)
    for table in ("token_state_transitions", "wallet_events", "apigw_logs", "lambda_logs",
                  "quarantine"):
        for row in wh.query(f"select * from raw.{table}"):
            text = " ".join(str(v) for v in row if isinstance(v, str))
            assert not find_pan_like(text), f"PAN-like value in raw.{table}: {row}"


def test_world_loads_into_snowflake_through_stage_and_copy(world, warehouse_factory):
    """The Snowflake path (PUT to a stage, COPY INTO, load result checked) on fakesnow."""
    wh = warehouse_factory("snowflake")
    summary = world.summary
    ingest(_sources(world), wh)
    assert wh.count("token_state_transitions") == summary["transitions"]["total"]
    assert wh.count("wallet_events") == summary["kinesis"]["events_unique"]
    for source in ("apigw_logs", "lambda_logs"):
        assert wh.count(source) == summary["s3"][source]["records"]
    assert wh.count("quarantine") == summary["quarantine_expected"]["total"]
    again = ingest(_sources(world), wh)
    assert again.results["transitions"].rows_loaded == 0
    assert again.results["s3"].objects_loaded == 0
    assert wh.count("wallet_events") == summary["kinesis"]["events_unique"]


def test_every_record_read_is_accounted_for(world, warehouse_factory):
    from ingestion.accounting import lake_accounting, stream_accounting

    wh = warehouse_factory("duckdb")
    t = world.target
    assert not lake_accounting(wh, t.s3, t.bucket).passed  # nothing loaded yet
    ingest(_sources(world), wh)
    stream = stream_accounting(wh, t.stream)
    assert stream.passed, stream.summary
    assert stream.observed["ledger"]["duplicates"] == world.summary["kinesis"]["duplicates"]
    lake = lake_accounting(wh, t.s3, t.bucket)
    assert lake.passed, lake.summary
    wh.execute("delete from raw.apigw_logs where request_id in "
               "(select request_id from raw.apigw_logs limit 3)")  # rows lost after loading
    broken = lake_accounting(wh, t.s3, t.bucket)
    assert not broken.passed and "the tables have" in broken.summary
