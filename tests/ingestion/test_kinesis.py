"""Wallet events from moto's Kinesis: each shard re-read from its checkpoint, duplicate
deliveries kept once, a resharded stream read parents first, malformed records quarantined."""

from __future__ import annotations

import json
import uuid

import pytest

from ingestion.sources.kinesis import load_wallet_events, read_ledger

TARGETS = ["duckdb", "postgres"]


def _event(n: int) -> dict:
    return {"event_id": f"ev-{n:05d}", "event_type": "token_used",
            "event_time": "2026-11-02T10:00:00+00:00", "wallet_id": "google_pay",
            "token_ref": f"tok-{n % 37:03d}", "schema_version": 1, "amount": 12.5,
            "currency": "EUR", "merchant_category": "5411"}


def _put(kinesis, stream: str, datas: list[bytes | str]) -> None:
    for i in range(0, len(datas), 500):
        resp = kinesis.put_records(StreamName=stream, Records=[
            {"PartitionKey": uuid.uuid4().hex, "Data": d} for d in datas[i:i + 500]])
        assert resp["FailedRecordCount"] == 0


@pytest.fixture()
def stream(local_stack):
    kinesis = local_stack.kinesis_client()
    name = f"events-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return kinesis, name


def _event_ids(wh) -> list[str]:
    return [r[0] for r in wh.query("select event_id from raw.wallet_events order by 1")]


@pytest.mark.parametrize("target", TARGETS)
def test_rereads_from_checkpoints_and_keeps_duplicates_once(stream, warehouse_factory, target):
    kinesis, name = stream
    wh = warehouse_factory(target)
    first = [json.dumps(_event(n)) for n in range(200)]
    _put(kinesis, name, first + first[:20])  # 20 duplicate deliveries
    r1 = load_wallet_events(kinesis, name, wh)
    assert (r1.records_read, r1.rows_loaded, r1.duplicates) == (220, 200, 20)
    assert len(r1.shards) == 2

    # the next run reads only what arrived after each shard's checkpoint, including
    # re-deliveries of events that were loaded by the previous run
    second = [json.dumps(_event(n)) for n in range(200, 300)]
    _put(kinesis, name, second + first[100:110])
    r2 = load_wallet_events(kinesis, name, wh)
    assert (r2.records_read, r2.rows_loaded, r2.duplicates) == (110, 100, 10)
    assert _event_ids(wh) == [f"ev-{n:05d}" for n in range(300)]
    for shard, seq in r2.shards.items():  # checkpoints are stored with the rows
        assert int(wh.get_state(f"kinesis:{name}:{shard}")) == int(seq)

    r3 = load_wallet_events(kinesis, name, wh)
    assert r3.records_read == 0
    assert read_ledger(wh, name) == {"read": 330, "loaded": 300, "duplicates": 30,
                                     "quarantined": 0}


@pytest.mark.parametrize("target", TARGETS)
def test_resharded_stream_is_read_parents_first(stream, warehouse_factory, target):
    kinesis, name = stream
    wh = warehouse_factory(target)
    _put(kinesis, name, [json.dumps(_event(n)) for n in range(100)])
    load_wallet_events(kinesis, name, wh)
    shards = kinesis.list_shards(StreamName=name)["Shards"]
    parent = shards[0]
    low, high = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kinesis.split_shard(StreamName=name, ShardToSplit=parent["ShardId"],
                        NewStartingHashKey=str((low + high) // 2))
    # moto keeps routing records to the closed parent (AWS sends them to the children):
    # either way the parent is read to its end before its children are read
    _put(kinesis, name, [json.dumps(_event(n)) for n in range(100, 150)])
    result = load_wallet_events(kinesis, name, wh)
    assert _event_ids(wh) == [f"ev-{n:05d}" for n in range(150)]
    children = [s["ShardId"] for s in kinesis.list_shards(StreamName=name)["Shards"]
                if s.get("ParentShardId") == parent["ShardId"]]
    assert len(children) == 2
    order = result.read_order
    assert set(children) <= set(order)
    assert order.index(parent["ShardId"]) < min(order.index(c) for c in children)
    assert wh.get_state(f"kinesis:{name}:{parent['ShardId']}:closed") == "1"


@pytest.mark.parametrize("target", TARGETS)
def test_malformed_records_are_quarantined_with_their_location(stream, warehouse_factory,
                                                               target):
    kinesis, name = stream
    wh = warehouse_factory(target)
    no_time = _event(2)
    del no_time["event_time"]
    drift = _event(3) | {"new_field": {"nested": True}}
    _put(kinesis, name, [json.dumps(_event(1)), '{"event_id": "ev-broken"',
                         json.dumps(no_time), json.dumps(_event(4) | {"schema_version": "1"}),
                         json.dumps(drift), "[1, 2]"])
    result = load_wallet_events(kinesis, name, wh)
    assert (result.rows_loaded, result.quarantined) == (2, 4)
    rows = wh.query("select location, reason, raw_text from raw.quarantine order by reason")
    reasons = sorted(r[1] for r in rows)
    assert any(r.startswith("not valid JSON") for r in reasons)
    assert "missing required field 'event_time'" in reasons
    assert "field 'schema_version' must be integer, got str" in reasons
    assert "not a JSON object but list" in reasons
    assert all(r[0].startswith(f"kinesis:{name}/shardId-") for r in rows)
    assert any("ev-broken" in r[2] for r in rows)
    extra = wh.query("select extra from raw.wallet_events where event_id = 'ev-00003'")[0][0]
    extra = json.loads(extra) if isinstance(extra, str) else extra  # jsonb arrives decoded
    assert extra == {"new_field": {"nested": True}}  # schema drift kept


def test_a_write_that_fails_mid_shard_stops_the_reader_and_loses_nothing(
        stream, warehouse_factory, monkeypatch):
    """The next GetRecords is read ahead on a thread while a batch is written: a write that
    fails stops that thread, keeps the batches already committed with their checkpoints, and
    the next run loads the rest exactly once."""
    import threading

    from ingestion.sources import kinesis as source

    kinesis, name = stream
    wh = warehouse_factory("duckdb")
    _put(kinesis, name, [json.dumps(_event(n)) for n in range(120)])
    monkeypatch.setattr(source, "GET_RECORDS_LIMIT", 10)  # many pages per shard
    real_write, calls = source._write_batch, []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the warehouse went away")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(source, "_write_batch", failing_write)
    with pytest.raises(RuntimeError, match="went away"):
        load_wallet_events(kinesis, name, wh)
    assert not [t for t in threading.enumerate() if t.name.startswith("kinesis-read-ahead")]
    assert wh.count("wallet_events") == 20  # the two batches before the failure
    monkeypatch.setattr(source, "_write_batch", real_write)
    again = load_wallet_events(kinesis, name, wh)
    assert again.duplicates == 0
    assert _event_ids(wh) == [f"ev-{n:05d}" for n in range(120)]
    assert read_ledger(wh, name) == {"read": 120, "loaded": 120, "duplicates": 0,
                                     "quarantined": 0}
