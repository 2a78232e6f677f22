"""Poison records: a record that parses but that no warehouse can store (an integer too big for
its column, a number beyond a double, a timestamp out of range or implausible, nesting 50,000
deep, a lone surrogate, a NUL, an oversized record), or that carries a card number however it
is written (spaces, dashes, JSON escapes, full-width digits, nested, as a number), goes to
``raw.quarantine`` with a reason naming the field; the rest of the shard, object and run loads,
and the next run neither retries nor quarantines it again. A failure that is not the record's
fault (the warehouse goes away, the object's body cannot be read) still fails the run and moves
no checkpoint."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import subprocess
import sys
import uuid
from typing import NamedTuple

import pytest

from ingestion.accounting import lake_accounting, stream_accounting
from ingestion.raw_schema import QUARANTINE, RAW_TEXT_LIMIT, TABLES
from ingestion.records import BadRecord, RecordParser, quarantine_row
from ingestion.run import IngestError, ingest
from ingestion.sources.kinesis import load_wallet_events, read_ledger
from ingestion.sources.s3 import load_lake
from ingestion.world import World
from tokenwatch.pan import find_pan_like

TARGETS = ["duckdb", "postgres"]
PAN = "4111111111111111"
FULL_WIDTH_PAN = "".join(chr(0xFF10 + int(d)) for d in PAN)
# the field each source carries a timestamp, an int32 and a double in
TIME = {"wallet_events": "event_time", "apigw_logs": "request_time"}
INT = {"wallet_events": "schema_version", "apigw_logs": "status"}


def _event(n: int) -> dict:
    return {"event_id": f"ev-{n:05d}", "event_type": "provision_response",
            "event_time": "2026-11-02T10:00:00+00:00", "wallet_id": "google_pay",
            "token_ref": f"tok-{n:03d}", "schema_version": 1, "latency_ms": 120.5,
            "http_status": 200, "decision": "green"}


def _apigw(n: int) -> dict:
    return {"request_id": f"req-{n:05d}", "request_time": "2026-11-02T10:00:00+00:00",
            "route": "POST /v1/provision", "status": 200, "latency_ms": 41.5,
            "integration_latency_ms": 30.25, "wallet_id": "apple_pay"}


GOOD = {"wallet_events": _event, "apigw_logs": _apigw}
KEY = {"wallet_events": "event_id", "apigw_logs": "request_id"}


def _raw(source: str, n: int, **fragments: str) -> bytes:
    """A good record of ``source`` whose fields in ``fragments`` are replaced by (or added as)
    the given raw JSON text, written verbatim."""
    base = {k: v for k, v in GOOD[source](n).items() if k not in fragments}
    text = json.dumps(base)[:-1]
    for name, fragment in fragments.items():
        text += f", {json.dumps(name)}: {fragment}"
    return (text + "}").encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


class Shape(NamedTuple):
    name: str
    build: object  # (source, n) -> bytes
    reason: tuple[str, ...]  # fragments the quarantine reason must hold (field names in quotes)


def _shapes() -> list[Shape]:
    pan = "'{}'".format
    return [
        Shape("int 2^40 in an int32 column",
              lambda s, n: _raw(s, n, **{INT[s]: str(2**40)}),
              ("'{int}'", "range of integer")),
        Shape("an optional column out of range (http_status 2^40, a 401-digit latency)",
              lambda s, n: _raw(s, n, **({"http_status": str(2**40)} if s == "wallet_events"
                                         else {"integration_latency_ms": "1" + "0" * 400})),
              ("'{opt}'",)),
        Shape("400-digit number in latency_ms",
              lambda s, n: _raw(s, n, latency_ms="1" + "0" * 399),
              ("'latency_ms'", "double")),
        Shape("1e400 (infinite) in latency_ms",
              lambda s, n: _raw(s, n, latency_ms="1e400"), ("'latency_ms'", "finite")),
        Shape("NaN in latency_ms", lambda s, n: _raw(s, n, latency_ms="NaN"),
              ("'latency_ms'", "finite")),
        Shape("Infinity in an unknown field", lambda s, n: _raw(s, n, score="-Infinity"),
              ("'score'", "finite")),
        Shape("a 400-digit number in an unknown field",
              lambda s, n: _raw(s, n, big="9" * 400), ("'big'", "double")),
        Shape("9999-12-31T23:59:59-14:00 (past year 9999 in UTC)",
              lambda s, n: _raw(s, n, **{TIME[s]: '"9999-12-31T23:59:59-14:00"'}),
              ("'{time}'", "plausible window", "TOKENWATCH_TIMESTAMP_MIN")),
        Shape("a timestamp in 1970", lambda s, n: _raw(s, n, **{TIME[s]: '"1970-01-01T00:00:00Z"'}),
              ("'{time}'", "plausible window")),
        Shape("a timestamp in 1900",
              lambda s, n: _raw(s, n, **{TIME[s]: '"1900-01-01T00:00:00+00:00"'}),
              ("'{time}'", "plausible window")),
        Shape("a timestamp in 2999",
              lambda s, n: _raw(s, n, **{TIME[s]: '"2999-01-01T00:00:00+00:00"'}),
              ("'{time}'", "plausible window")),
        Shape("50,000-deep nesting", lambda s, n: _raw(s, n, deep=_nested(50_000)),
              ("'deep'", "deeper than 32")),
        Shape("33-deep nesting", lambda s, n: _raw(s, n, deep=_nested(33)),
              ("'deep'", "deeper than 32")),
        Shape("a lone surrogate (JSON escape) in an unknown field",
              lambda s, n: _raw(s, n, note='"a\\ud800b"'), ("'note'", "surrogate")),
        Shape("a lone surrogate (JSON escape) in a key",
              lambda s, n: _raw(s, n, meta='{"k\\udc00": 1}'), ("'meta'", "surrogate")),
        Shape("a lone surrogate encoded in the bytes (CESU-8)",
              lambda s, n: _raw(s, n, note='"aXb"').replace(b"aXb", b"a\xed\xa0\x80b"),
              ("not valid UTF-8",)),
        Shape("a NUL (JSON escape) in a text column",
              lambda s, n: _raw(s, n, wallet_id='"apple\\u0000pay"'), ("'wallet_id'", "NUL")),
        Shape("a NUL (JSON escape) in a nested unknown field",
              lambda s, n: _raw(s, n, meta='{"a": ["x\\u0000"]}'), ("'meta.a[0]'", "NUL")),
        Shape("a raw NUL byte inside a string",
              lambda s, n: _raw(s, n, note='"aXb"').replace(b"aXb", b"a\x00b"),
              ("not valid JSON",)),
        Shape("an oversized record (300,000 bytes)",
              lambda s, n: _raw(s, n, note=json.dumps("x" * 300_000)),
              ("bytes", "over the limit of 262,144")),
        Shape("a PAN with spaces", lambda s, n: _raw(s, n, note='"4111 1111 1111 1111"'),
              (pan("note"), "PAN-like")),
        Shape("a PAN with dashes", lambda s, n: _raw(s, n, note='"4111-1111-1111-1111"'),
              (pan("note"), "PAN-like")),
        Shape("a JSON-escaped PAN", lambda s, n: _raw(s, n, note='"\\u0034111111111111111"'),
              (pan("note"), "PAN-like")),
        Shape("a JSON-escaped PAN in a text column",
              lambda s, n: _raw(s, n, wallet_id='"w_\\u0034111111111111111"'),
              (pan("wallet_id"), "PAN-like")),
        Shape("a PAN with escaped spaces",
              lambda s, n: _raw(s, n, note='"4111\\u00201111\\t1111\\n1111"'),
              (pan("note"), "PAN-like")),
        Shape("a full-width PAN",
              lambda s, n: _raw(s, n, note=json.dumps(FULL_WIDTH_PAN, ensure_ascii=False)),
              (pan("note"), "PAN-like")),
        Shape("a full-width PAN, escaped",
              lambda s, n: _raw(s, n, note=json.dumps(FULL_WIDTH_PAN, ensure_ascii=True)),
              (pan("note"), "PAN-like")),
        Shape("a PAN nested in an unknown field",
              lambda s, n: _raw(s, n, meta='{"cards": [{"number": "4111111111111111"}]}'),
              (pan("meta.cards[0].number"), "PAN-like")),
        Shape("a PAN as a JSON number, nested",
              lambda s, n: _raw(s, n, meta='{"ref": 4111111111111111}'),
              (pan("meta.ref"), "PAN-like")),
        Shape("a PAN as a JSON number", lambda s, n: _raw(s, n, ref=PAN),
              (pan("ref"), "PAN-like")),
        Shape("a PAN as a JSON number in exponent form",
              lambda s, n: _raw(s, n, ref="4.111111111111111e15"), (pan("ref"), "PAN-like")),
        Shape("a PAN as a key",
              lambda s, n: _raw(s, n, meta='{"4111111111111111": true}'),
              ("'meta key'", "PAN-like")),
        Shape("a PAN as a key over a PAN (pan_fields' path holds the key)",
              lambda s, n: _raw(s, n, meta='{"4111111111111111": {"x": "4111111111111111"}}'),
              ("'meta key'", "PAN-like")),
        Shape("a JSON-escaped PAN in a record that is not JSON",
              lambda s, n: _raw(s, n, note='"\\u0034111111111111111"')[:-1] + b", broken",
              ("not valid JSON",)),
        Shape("a JSON-escaped PAN in a record nested too deep",
              lambda s, n: _raw(s, n, note='"4111\\u00201111\\u00201111\\u00201111"',
                                deep=_nested(40)), ("'deep'", "deeper than 32")),
        Shape("a PAN in a bad record (wrong type too)",
              lambda s, n: _raw(s, n, **{INT[s]: '"\\u0034111111111111111"'}),
              ("'{int}'", "PAN-like")),
    ]


SHAPES = _shapes()


def _fill(fragment: str, source: str) -> str:
    return fragment.format(int=INT[source], time=TIME[source],
                           opt="http_status" if source == "wallet_events"
                           else "integration_latency_ms")


#: Records that look odd but are valid: they load, and their text lands as real characters.
TRICKY_GOOD = [
    ("non-ASCII text, escaped and not", lambda s, n: _raw(
        s, n, note='"caf\\u00e9 \\ud83d\\ude00 \u2615"', big="9223372036854775808")),
    ("int32 and timestamp bounds", lambda s, n: _raw(
        s, n, **{INT[s]: str(2**31 - 1), TIME[s]: '"2000-01-01T00:00:00Z"'})),
    ("32-deep nesting and digits that are no PAN", lambda s, n: _raw(
        s, n, deep=_nested(31), ids='["4111111111111112", 1700000000000, "2026-11-24 10:00"]')),
]


def _unescape(text: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def _assert_no_pan(text: str, where: str) -> None:
    assert PAN not in text, f"{where}: {text[:300]!r}"
    assert not find_pan_like(text), f"{where}: {text[:300]!r}"
    assert not find_pan_like(_unescape(text).replace("\\n", " ").replace("\\t", " ")), where


def _assert_storable(row: dict) -> None:
    for column in ("raw_text", "reason", "location"):
        value = str(row[column])
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogate
    assert len(row["raw_text"]) <= RAW_TEXT_LIMIT


# -- the parser, shape by shape -----------------------------------------------------------

@pytest.mark.parametrize("source", ["wallet_events", "apigw_logs"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_each_hostile_record_is_refused_naming_the_field(shape, source):
    parser = RecordParser(source, TABLES[source])
    data = shape.build(source, 7)
    with pytest.raises(BadRecord) as refused:
        parser.parse_line(data)
    reason = str(refused.value)
    for fragment in shape.reason:
        assert _fill(fragment, source) in reason, reason
    row = quarantine_row(source, "loc", data, refused.value, None)  # as the loaders do
    _assert_no_pan(row["raw_text"], shape.name)
    _assert_no_pan(str(row["reason"]), shape.name)
    _assert_storable(row)


@pytest.mark.parametrize("source", ["wallet_events", "apigw_logs"])
def test_tricky_but_valid_records_load_with_real_characters(source):
    parser = RecordParser(source, TABLES[source])
    for name, build in TRICKY_GOOD:
        row = parser.parse_line(build(source, 1))
        assert row[KEY[source]] == GOOD[source](1)[KEY[source]], name
    row = parser.parse_line(TRICKY_GOOD[0][1](source, 1))
    assert '"café 😀 ☕"' in row["extra"]  # stored as characters, not \u escapes
    assert json.loads(row["extra"])["big"] == 2**63


# -- Kinesis and S3, mixed with good records, on both warehouses --------------------------

def _mixed(source: str) -> tuple[list[bytes], list[int | None]]:
    """Good, tricky-good and hostile records interleaved; for each, its shape's index (None for
    a good record)."""
    datas, shapes, n = [], [], 0
    for i, _shape in enumerate(SHAPES):
        datas.append(json.dumps(GOOD[source](n)).encode())
        shapes.append(None)
        n += 1
        datas.append(SHAPES[i].build(source, n))
        shapes.append(i)
        n += 1
    for _name, build in TRICKY_GOOD:
        datas.append(build(source, n))
        shapes.append(None)
        n += 1
    return datas, shapes


def _good_keys(source: str, shapes: list[int | None]) -> set[str]:
    return {GOOD[source](n)[KEY[source]] for n, s in enumerate(shapes) if s is None}


def _text_values(wh) -> list[tuple[str, str, str]]:
    """(table, column, text) of every text and JSON value in every raw table."""
    out = []
    for table in TABLES.values():
        cols = [c.name for c in table.columns if c.type in ("text", "json")]
        if not cols:
            continue
        for row in wh.query(f"select {', '.join(cols)} from raw.{table.name}"):
            for col, value in zip(cols, row, strict=True):
                if value is None:
                    continue
                if not isinstance(value, str):  # jsonb arrives decoded
                    value = json.dumps(value, ensure_ascii=False)
                out.append((table.name, col, value))
    return out


def _assert_no_pan_anywhere(wh) -> None:
    for table, col, text in _text_values(wh):
        _assert_no_pan(text, f"raw.{table}.{col}")


def _quarantine(wh, source: str) -> dict[str, tuple[str, str]]:
    rows = wh.query("select location, reason, raw_text from raw.quarantine where source = %s",
                    [source])
    by_location = {loc: (reason, raw) for loc, reason, raw in rows}
    assert len(by_location) == len(rows), "a location quarantined twice"
    return by_location


def _assert_reasons(source: str, quarantined: dict, expected: dict[str, int]) -> None:
    assert set(quarantined) == set(expected)
    for location, i in expected.items():
        reason, raw_text = quarantined[location]
        for fragment in SHAPES[i].reason:
            assert _fill(fragment, source) in reason, (SHAPES[i].name, reason)
        _assert_storable({"raw_text": raw_text, "reason": reason, "location": location})


@pytest.fixture()
def stream(local_stack):
    kinesis = local_stack.kinesis_client()
    name = f"poison-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return kinesis, name


@pytest.fixture()
def bucket(local_stack):
    s3 = local_stack.s3_client()
    name = f"poison-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return s3, name


def _put(kinesis, stream: str, datas: list[bytes]) -> list[str]:
    """Put the records in order; return each one's quarantine location."""
    locations = []
    for i in range(0, len(datas), 20):
        batch = datas[i:i + 20]
        resp = kinesis.put_records(StreamName=stream, Records=[
            {"PartitionKey": f"pk-{i + j}", "Data": d} for j, d in enumerate(batch)])
        assert resp["FailedRecordCount"] == 0
        locations += [f"kinesis:{stream}/{r['ShardId']}/{r['SequenceNumber']}"
                      for r in resp["Records"]]
    return locations


def _gz(lines: list[bytes]) -> bytes:
    return gzip.compress(b"\n".join(lines) + b"\n", mtime=0)


@pytest.mark.parametrize("target", TARGETS)
def test_poison_kinesis_records_never_stop_the_stream(stream, warehouse_factory, target):
    kinesis, name = stream
    wh = warehouse_factory(target)
    datas, shapes = _mixed("wallet_events")
    locations = _put(kinesis, name, datas)
    result = load_wallet_events(kinesis, name, wh)  # returns: nothing stops the load
    bad = {loc: s for loc, s in zip(locations, shapes, strict=True) if s is not None}
    loaded = {r[0] for r in wh.query("select event_id from raw.wallet_events")}
    assert loaded == _good_keys("wallet_events", shapes)
    assert (result.rows_loaded, result.quarantined) == (len(loaded), len(bad))
    _assert_reasons("wallet_events", _quarantine(wh, "wallet_events"), bad)
    _assert_no_pan_anywhere(wh)
    extra = wh.query("select extra from raw.wallet_events where extra is not null "
                     "and event_id = %s", [f"ev-{len(shapes) - 3:05d}"])[0][0]
    assert "café 😀 ☕" in (extra if isinstance(extra, str) else json.dumps(extra,
                                                                           ensure_ascii=False))
    assert stream_accounting(wh, name).passed

    again = load_wallet_events(kinesis, name, wh)  # the checkpoints moved past every record
    assert (again.records_read, again.rows_loaded, again.quarantined) == (0, 0, 0)
    assert wh.count("quarantine") == len(bad)
    assert read_ledger(wh, name)["quarantined"] == len(bad)


@pytest.mark.parametrize("target", TARGETS)
def test_poison_s3_lines_never_stop_the_object(bucket, warehouse_factory, target):
    s3, name = bucket
    wh = warehouse_factory(target)
    datas, shapes = _mixed("apigw_logs")
    key = "apigw/dt=2026-11-02/hour=10/part-poison.json.gz"
    s3.put_object(Bucket=name, Key=key, Body=_gz(datas))
    after = "apigw/dt=2026-11-02/hour=11/part-after.json.gz"  # an object after the poison
    s3.put_object(Bucket=name, Key=after, Body=_gz([json.dumps(_apigw(9000)).encode()]))
    result = load_lake(s3, name, wh)
    bad = {f"s3://{name}/{key}#{line}": s
           for line, s in enumerate(shapes, start=1) if s is not None}
    loaded = {r[0] for r in wh.query("select request_id from raw.apigw_logs")}
    assert loaded == _good_keys("apigw_logs", shapes) | {"req-09000"}
    assert (result.objects_loaded, result.quarantined) == (2, len(bad))
    _assert_reasons("apigw_logs", _quarantine(wh, "apigw_logs"), bad)
    _assert_no_pan_anywhere(wh)
    assert wh.query("select rows_loaded, rows_quarantined from raw._s3_manifest "
                    "where s3_key = %s", [key]) == [(len(loaded) - 1, len(bad))]
    assert lake_accounting(wh, s3, name).passed

    again = load_lake(s3, name, wh)  # the manifest holds the object: not read again
    assert (again.objects_loaded, again.objects_skipped, again.quarantined) == (0, 2, 0)
    assert wh.count("quarantine") == len(bad)


def test_an_oversized_line_is_skipped_without_holding_it(bucket, warehouse_factory):
    """A line of 5 MB (a gzip bomb's worth of one record) is quarantined from its first bytes;
    the lines after it load."""
    s3, name = bucket
    wh = warehouse_factory("duckdb")
    huge = _raw("apigw_logs", 2, note=json.dumps("4111 1111 1111 1111 " + "y" * 5_000_000))
    lines = [json.dumps(_apigw(1)).encode(), huge, json.dumps(_apigw(3)).encode()]
    key = "apigw/dt=2026-11-02/hour=12/part-huge.json.gz"
    s3.put_object(Bucket=name, Key=key, Body=_gz(lines))
    result = load_lake(s3, name, wh)
    assert (result.rows_loaded, result.quarantined) == (2, 1)
    (reason, raw_text), = _quarantine(wh, "apigw_logs").values()
    assert f"record is {len(huge):,} bytes, over the limit of 262,144" in reason
    assert raw_text.startswith('{"request_id": "req-00002"') and len(raw_text) <= RAW_TEXT_LIMIT
    _assert_no_pan_anywhere(wh)


# -- the CLI ------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_tokenwatch_ingest_exits_0_with_poison_in_both_sources(local_stack, warehouse_factory,
                                                               tmp_path, monkeypatch, target):
    """The whole run, as a user runs it, in the default order (transitions, the stream, the
    lake): poison in the stream does not keep the lake from loading."""
    kinesis, s3 = local_stack.kinesis_client(), local_stack.s3_client()
    stack = dataclasses.replace(local_stack, stream=f"poison-cli-{uuid.uuid4().hex[:8]}",
                                bucket=f"poison-cli-{uuid.uuid4().hex[:8]}", shards=1)
    kinesis.create_stream(StreamName=stack.stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stack.stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    s3.create_bucket(Bucket=stack.bucket)
    events, event_shapes = _mixed("wallet_events")
    _put(kinesis, stack.stream, events)
    lines, line_shapes = _mixed("apigw_logs")
    s3.put_object(Bucket=stack.bucket, Key="apigw/dt=2026-11-02/hour=10/part-cli.json.gz",
                  Body=_gz(lines))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TOKENWATCH_HOME", str(home))
    stack.save()  # this test's own stream and bucket on the session's moto server
    env = {"TOKENWATCH_HOME": str(home), "TOKENWATCH_WAREHOUSE": target}
    if target == "duckdb":
        env["TOKENWATCH_DUCKDB_PATH"] = str(tmp_path / "cli.duckdb")
    else:
        wh = warehouse_factory("postgres")
        env["TOKENWATCH_WAREHOUSE_DSN"] = wh.dsn
        wh.close()

    cli = [sys.executable, "-m", "tokenwatch.cli", "ingest", "--json"]
    r = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=os.environ | env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    n_bad = sum(s is not None for s in event_shapes)
    assert report["wallet_events"]["quarantined"] == n_bad
    assert report["wallet_events"]["rows_loaded"] == len(events) - n_bad
    n_bad_lines = sum(s is not None for s in line_shapes)
    assert report["s3"]["quarantined"] == n_bad_lines
    assert report["s3"]["rows_loaded"] == len(lines) - n_bad_lines
    assert PAN not in r.stdout + r.stderr

    r = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=os.environ | env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["wallet_events"]["records_read"] == 0
    assert report["s3"]["objects_loaded"] == 0 and report["s3"]["quarantined"] == 0


# -- failures that are not the record's fault ---------------------------------------------

def _failing_warehouse(warehouse_factory, target: str, monkeypatch):
    """(healthy, failing): two connections to one fresh warehouse; the failing one loses its
    connection (PostgreSQL: the socket is cut under it) or its disk (DuckDB: an injected I/O
    error) when the first quarantined records are written."""
    import duckdb

    from tests.tcp_proxy import Proxy

    if target == "duckdb":
        wh = warehouse_factory("duckdb")
        real = wh.append

        def append(table, data):
            if table is QUARANTINE and data.num_rows:
                raise duckdb.IOException("IO Error: could not write file (injected)")
            return real(table, data)

        monkeypatch.setattr(wh, "append", append)
        return wh, wh, None
    from ingestion.warehouse.postgres import PostgresWarehouse

    healthy = warehouse_factory("postgres")
    proxy = Proxy(healthy.dsn).start()
    failing = PostgresWarehouse(proxy.proxied_dsn())
    real = failing.append

    def cut_then_append(table, data):
        if table is QUARANTINE and data.num_rows:
            proxy.stop()  # the connection is gone mid-transaction
        return real(table, data)

    monkeypatch.setattr(failing, "append", cut_then_append)
    return healthy, failing, proxy


@pytest.mark.parametrize("target", TARGETS)
def test_a_lost_warehouse_fails_the_run_and_moves_no_checkpoint(
        stream, bucket, warehouse_factory, target, monkeypatch):
    kinesis, stream_name = stream
    s3, bucket_name = bucket
    datas, shapes = _mixed("wallet_events")
    _put(kinesis, stream_name, datas)
    healthy, failing, proxy = _failing_warehouse(warehouse_factory, target, monkeypatch)
    sources = World("", kinesis, stream_name, s3, bucket_name)
    with pytest.raises(IngestError) as failed:
        ingest(sources, failing, only=("wallet_events",))
    assert not isinstance(failed.value.__cause__, BadRecord)
    if proxy is not None:
        failing.close()
        proxy.stop()
    # nothing of the failed batch landed: no rows, no quarantine, no checkpoint, no ledger
    assert healthy.count("wallet_events") == healthy.count("quarantine") == 0
    assert healthy.query("select count(*) from raw._ingest_state where key like %s",
                         [f"kinesis:{stream_name}:%"]) == [(0,)]
    if target == "duckdb":
        monkeypatch.undo()  # the disk is back
    report = ingest(sources, healthy, only=("wallet_events",))
    n_bad = sum(s is not None for s in shapes)
    assert report.results["wallet_events"].quarantined == n_bad
    assert healthy.count("wallet_events") == len(datas) - n_bad


class _BrokenBody:
    """An S3 body whose connection resets after ``after`` bytes."""

    def __init__(self, body, after: int):
        self._body, self._left = body, after

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise ConnectionResetError(104, "Connection reset by peer")
        data = self._body.read(min(n, self._left) if n and n > 0 else self._left)
        self._left -= len(data)
        return data


class _ResettingS3:
    def __init__(self, client, after: int):
        self._client, self._after = client, after

    def get_object(self, **kwargs):
        resp = self._client.get_object(**kwargs)
        return resp | {"Body": _BrokenBody(resp["Body"], self._after)}

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("target", TARGETS)
def test_an_s3_read_that_breaks_fails_the_run_not_the_object(bucket, warehouse_factory, target):
    """A connection reset while reading an object is the network's fault, not the object's:
    the load fails, the object is not in the manifest, the next run loads it whole."""
    s3, name = bucket
    wh = warehouse_factory(target)
    datas, shapes = _mixed("apigw_logs")
    body = _gz(datas)
    s3.put_object(Bucket=name, Key="apigw/dt=2026-11-02/hour=10/part-reset.json.gz", Body=body)
    with pytest.raises(Exception) as failed:
        load_lake(_ResettingS3(s3, after=len(body) // 2), name, wh)
    assert not isinstance(failed.value, BadRecord)
    assert wh.count("_s3_manifest") == wh.count("quarantine") == wh.count("apigw_logs") == 0
    result = load_lake(s3, name, wh)
    n_bad = sum(s is not None for s in shapes)
    assert (result.rows_loaded, result.quarantined) == (len(datas) - n_bad, n_bad)
