"""API Gateway and Lambda logs from moto's S3: listed with pagination, each object loaded once
(by key and etag, and by content under another key), bad lines and objects quarantined."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest

from ingestion.sources.s3 import load_lake

TARGETS = ["duckdb", "postgres"]


def _apigw(n: int, **changes) -> dict:
    rec = {"request_id": f"req-{n:05d}", "request_time": "2026-11-02T10:00:00+00:00",
           "route": "POST /v1/provision", "status": 200, "latency_ms": 41.5,
           "integration_latency_ms": 30.25, "wallet_id": "apple_pay"}
    return rec | changes


def _gz(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


@pytest.fixture()
def bucket(local_stack):
    s3 = local_stack.s3_client()
    name = f"lake-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return s3, name


def _key(hour: int, part: str = "00000") -> str:
    return f"apigw/dt=2026-11-02/hour={hour:02d}/part-{part}.json.gz"


@pytest.mark.parametrize("target", TARGETS)
def test_an_object_delivered_twice_is_loaded_once(bucket, warehouse_factory, target):
    s3, name = bucket
    wh = warehouse_factory(target)
    body = _gz([json.dumps(_apigw(n)) for n in range(50)])
    for hour in range(5):  # five objects, listed two per page
        s3.put_object(Bucket=name, Key=_key(hour),
                      Body=_gz([json.dumps(_apigw(hour * 100 + n)) for n in range(10)]))
    s3.put_object(Bucket=name, Key=_key(7), Body=body)
    first = load_lake(s3, name, wh, page_size=2)
    assert (first.objects_loaded, first.rows_loaded) == (6, 100)

    s3.put_object(Bucket=name, Key=_key(7), Body=body)  # the same key again
    s3.put_object(Bucket=name, Key=_key(7, "00000-redelivered"), Body=body)  # another key
    second = load_lake(s3, name, wh, page_size=2)
    assert (second.objects_loaded, second.rows_loaded) == (0, 0)
    assert (second.objects_skipped, second.duplicate_objects) == (6, 1)
    assert wh.count("apigw_logs") == 100
    dup = wh.query("select duplicate_of, rows_loaded from raw._s3_manifest where s3_key = %s",
                   [_key(7, "00000-redelivered")])
    assert dup == [(_key(7), 0)]
    third = load_lake(s3, name, wh)
    assert (third.objects_loaded, third.duplicate_objects, third.objects_skipped) == (0, 0, 7)


@pytest.mark.parametrize("target", TARGETS)
def test_bad_lines_and_objects_are_quarantined_and_the_rest_loads(bucket, warehouse_factory,
                                                                  target):
    s3, name = bucket
    wh = warehouse_factory(target)
    lines = [json.dumps(_apigw(1)),
             '{"request_id": "req-broken", "status": 2',  # broken JSON (line 2)
             json.dumps({k: v for k, v in _apigw(3).items() if k != "route"}),  # line 3
             json.dumps(_apigw(4, status="200")),  # wrong type (line 4)
             json.dumps(_apigw(5, request_time="yesterday")),  # line 5
             json.dumps(_apigw(6, card="4111111111111111", status="x")),  # PAN in bad line
             json.dumps(_apigw(7, client_version="9.1")),  # schema drift: kept
             json.dumps(_apigw(8, note="pan 4111111111111111"))]  # a valid line with a PAN
    s3.put_object(Bucket=name, Key=_key(1), Body=_gz(lines))
    s3.put_object(Bucket=name, Key=_key(2), Body=b"plain text, not gzip\n")
    s3.put_object(Bucket=name, Key=_key(3),
                  Body=_gz([json.dumps(_apigw(n)) for n in range(100, 400)])[:-300])
    result = load_lake(s3, name, wh)
    loaded = {r[0] for r in wh.query("select request_id from raw.apigw_logs")}
    assert {"req-00001", "req-00007"} <= loaded
    rows = {r[0]: r[1:] for r in wh.query(
        "select location, reason, raw_text from raw.quarantine where source = 'apigw_logs'")}
    base = f"s3://{name}/{_key(1)}"
    assert rows[f"{base}#2"][0].startswith("not valid JSON")
    assert rows[f"{base}#3"][0] == "missing required field 'route'"
    assert rows[f"{base}#4"][0] == "field 'status' must be integer, got str"
    assert rows[f"{base}#5"][0].startswith("field 'request_time' is not an ISO-8601")
    assert "4111111111111111" not in rows[f"{base}#6"][1]  # a card number never lands
    assert "[PAN-REDACTED]" in rows[f"{base}#6"][1]
    assert rows[f"s3://{name}/{_key(2)}"][0] == "object is not gzip (no gzip magic bytes)"
    truncated = [loc for loc in rows if loc.startswith(f"s3://{name}/{_key(3)}#")]
    assert len(truncated) == 1 and "gzip stream broken" in rows[truncated[0]][0]
    assert rows[f"{base}#8"][0].startswith("PAN-like value in field(s) 'note'")
    assert "4111111111111111" not in rows[f"{base}#8"][1]
    assert result.quarantined == len(rows) == 8
    # the readable part of the truncated object is loaded, up to where it broke
    assert sum(1 for r in loaded if r >= "req-00100") == wh.query(
        "select rows_loaded from raw._s3_manifest where s3_key = %s", [_key(3)])[0][0] > 0
    drift = wh.query("select extra from raw.apigw_logs where request_id = 'req-00007'")[0][0]
    drift = json.loads(drift) if isinstance(drift, str) else drift
    assert drift == {"client_version": "9.1"}


@pytest.mark.parametrize("target", TARGETS)
def test_an_object_whose_key_holds_a_pan_is_quarantined_by_a_redacted_name(
        bucket, warehouse_factory, target):
    from ingestion.accounting import lake_accounting
    from tokenwatch.pan import find_pan_like

    s3, name = bucket
    wh = warehouse_factory(target)
    s3.put_object(Bucket=name, Key=_key(1), Body=_gz([json.dumps(_apigw(1))]))
    s3.put_object(Bucket=name, Key="apigw/dt=2026-11-02/hour=02/card-4111-1111-1111-1111.json.gz",
                  Body=_gz([json.dumps(_apigw(2))]))
    for _ in range(2):  # the second run neither loads nor quarantines it again
        load_lake(s3, name, wh)
        assert wh.count("apigw_logs") == 1 and wh.count("quarantine") == 1
    (location, reason), = wh.query("select location, reason from raw.quarantine")
    assert "PAN-like" in reason and not find_pan_like(location)
    for table in ("_s3_manifest", "quarantine", "apigw_logs"):
        for row in wh.query(f"select * from raw.{table}"):
            assert not any(find_pan_like(str(v)) for v in row), (table, row)
    assert lake_accounting(wh, s3, name).passed
