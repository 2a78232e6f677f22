"""Wallet events from Kinesis into ``raw.wallet_events``.

Every shard is read from its checkpoint (``AFTER_SEQUENCE_NUMBER``; ``TRIM_HORIZON`` the first
time). Each batch of records is written with the shard's new checkpoint in one warehouse
transaction, so a crash re-reads at most the uncommitted batch. Duplicate deliveries (the
same event_id) are kept once. Resharding: a child shard is read only after its parents are
read to their end (a closed shard's iterator runs out). Sequence numbers are compared as
integers, never as strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingestion.raw_schema import QUARANTINE, WALLET_EVENTS
from ingestion.read_ahead import read_ahead
from ingestion.records import BadRecord, RecordParser, quarantine_row, to_arrow
from ingestion.warehouse.base import Warehouse

GET_RECORDS_LIMIT = 10_000
SOURCE = "wallet_events"


@dataclass
class KinesisResult:
    records_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    shards: dict[str, str] = field(default_factory=dict)  # shard -> last checkpoint
    read_order: list[str] = field(default_factory=list)  # shards read by this run, in order


def _state_key(stream: str, shard_id: str) -> str:
    return f"kinesis:{stream}:{shard_id}"


def _finished_key(stream: str, shard_id: str) -> str:
    return f"kinesis:{stream}:{shard_id}:closed"


def _read_order(shards: list[dict]) -> list[dict]:
    """Parents before children (resharding), otherwise by shard id."""
    by_id = {s["ShardId"]: s for s in shards}
    ordered, seen = [], set()

    def visit(shard: dict) -> None:
        if shard["ShardId"] in seen:
            return
        seen.add(shard["ShardId"])
        for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
            if parent in by_id:
                visit(by_id[parent])
        ordered.append(shard)

    for shard in sorted(shards, key=lambda s: s["ShardId"]):
        visit(shard)
    return ordered


def _list_shards(client, stream: str) -> list[dict]:
    shards, token = [], None
    while True:
        resp = (client.list_shards(NextToken=token) if token
                else client.list_shards(StreamName=stream))
        shards += resp["Shards"]
        token = resp.get("NextToken")
        if not token:
            return shards


def load_wallet_events(client, stream: str, wh: Warehouse,
                       progress: Callable[[int], None] = lambda n: None) -> KinesisResult:
    result = KinesisResult()
    parser = RecordParser(SOURCE, WALLET_EVENTS)
    closed: set[str] = set()
    shards = _list_shards(client, stream)
    known = {s["ShardId"] for s in shards}
    for shard in _read_order(shards):
        shard_id = shard["ShardId"]
        if wh.get_state(_finished_key(stream, shard_id)):
            closed.add(shard_id)
            continue
        parents = {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")} - {None}
        if any(p in known and p not in closed for p in parents):
            continue  # a parent still has records to read: the child waits for a later run
        if _read_shard(client, stream, shard, wh, parser, result, progress):
            closed.add(shard_id)
    return result


def _read_shard(client, stream, shard, wh, parser, result, progress) -> bool:
    """Read one shard to its current end. True when the shard is closed and fully read: its
    iterator ran out (AWS), or it has an ending sequence number and nothing is left to read
    (servers that keep handing out iterators for closed shards, such as moto)."""
    shard_id = shard["ShardId"]
    result.read_order.append(shard_id)
    closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
    checkpoint = wh.get_state(_state_key(stream, shard_id))
    kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
               "StartingSequenceNumber": checkpoint} if checkpoint
              else {"ShardIteratorType": "TRIM_HORIZON"})
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                         **kwargs)["ShardIterator"]
    last_seq = int(checkpoint) if checkpoint else -1
    pages = read_ahead(_pages(client, iterator), depth=1,
                       name=f"kinesis-read-ahead-{shard_id}")
    try:
        for resp in pages:  # the next GetRecords is in flight while this batch is written
            iterator = resp.get("NextShardIterator")
            records = [r for r in resp["Records"] if int(r["SequenceNumber"]) > last_seq]
            if records:
                last_seq = max(last_seq, max(int(r["SequenceNumber"]) for r in records))
                _write_batch(stream, shard_id, records, str(last_seq), wh, parser, result)
                progress(result.records_read)
    finally:
        pages.close()  # a failed write stops the reader before the error goes on
    if iterator is None or closed:  # a closed shard, read to its end
        with wh.transaction():
            wh.set_state(_finished_key(stream, shard_id), "1")
        return True
    return False


def _pages(client, iterator: str | None) -> Iterator[dict]:
    """GetRecords responses from ``iterator`` until the shard is caught up or its iterator
    runs out (a closed shard: a response without ``NextShardIterator``)."""
    while iterator:
        resp = client.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        iterator = resp.get("NextShardIterator")
        yield resp
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            return  # caught up


def ledger_key(stream: str) -> str:
    return f"kinesis:{stream}:ledger"


def read_ledger(wh: Warehouse, stream: str) -> dict[str, int]:
    """Every record ever read from ``stream``: how many were loaded, skipped as duplicates and
    quarantined. ``read == loaded + duplicates + quarantined`` by construction, and loaded and
    quarantined must match the tables: that is how a check proves nothing was dropped."""
    raw = wh.get_state(ledger_key(stream))
    return json.loads(raw) if raw else {"read": 0, "loaded": 0, "duplicates": 0,
                                        "quarantined": 0}


def add_to_ledger(wh: Warehouse, stream: str, read: int, loaded: int, quarantined: int) -> None:
    ledger = read_ledger(wh, stream)
    ledger["read"] += read
    ledger["loaded"] += loaded
    ledger["quarantined"] += quarantined
    ledger["duplicates"] += read - loaded - quarantined
    wh.set_state(ledger_key(stream), json.dumps(ledger, sort_keys=True))


def _write_batch(stream, shard_id, records, checkpoint, wh: Warehouse, parser: RecordParser,
                 result: KinesisResult) -> None:
    now = datetime.now(UTC)
    rows: dict[str, dict] = {}
    bad: list[dict] = []
    for rec in records:
        location = f"kinesis:{stream}/{shard_id}/{rec['SequenceNumber']}"
        try:
            row = parser.parse_line(rec["Data"])
        except BadRecord as exc:
            bad.append(quarantine_row(SOURCE, location, rec["Data"], exc, now))
            continue
        if row["event_id"] in rows:
            continue  # a re-delivery inside this batch
        arrived = rec.get("ApproximateArrivalTimestamp")
        rows[row["event_id"]] = row | {
            "shard_id": shard_id, "sequence_number": rec["SequenceNumber"],
            "arrived_at": arrived.astimezone(UTC) if arrived else None,
            "_loaded_at": now, "_source_location": location}
    with wh.transaction():
        loaded = wh.append(WALLET_EVENTS, to_arrow(WALLET_EVENTS, list(rows.values())))
        wh.append(QUARANTINE, to_arrow(QUARANTINE, bad))
        wh.set_state(_state_key(stream, shard_id), checkpoint)
        add_to_ledger(wh, stream, read=len(records), loaded=loaded, quarantined=len(bad))
    result.records_read += len(records)
    result.rows_loaded += loaded
    result.quarantined += len(bad)
    result.duplicates += len(records) - len(bad) - loaded
    result.shards[shard_id] = checkpoint
