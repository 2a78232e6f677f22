"""The simulator against the real state service, moto's Kinesis and S3: deterministic, and
its summary matches what actually landed."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from ingestion.world import World
from sandbox.simulator.faults import Faults
from sandbox.simulator.profiles import PROFILES
from sandbox.simulator.run import Settings, simulate
from tests.conftest import API_KEY
from tests.world import fresh_target
from tokenwatch import wallets

START = datetime(2026, 11, 2, tzinfo=UTC)


def _stream_records(target: World) -> dict[str, list[bytes]]:
    shards = target.kinesis.list_shards(StreamName=target.stream)["Shards"]
    out = {}
    for shard in shards:
        it = target.kinesis.get_shard_iterator(
            StreamName=target.stream, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        data: list[bytes] = []
        while it:
            resp = target.kinesis.get_records(ShardIterator=it, Limit=10000)
            data += [r["Data"] for r in resp["Records"]]
            if not resp["Records"]:
                break
            it = resp.get("NextShardIterator")
        out[shard["ShardId"]] = data
    return out


def _bucket_objects(target: World) -> dict[str, bytes]:
    objects = {}
    for page in target.s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket):
        for obj in page.get("Contents", []):
            objects[obj["Key"]] = target.s3.get_object(Bucket=target.bucket,
                                                       Key=obj["Key"])["Body"].read()
    return objects


@pytest.fixture(scope="module")
def first_run(local_stack, service):
    target = fresh_target(local_stack, service.url, API_KEY)
    settings = Settings(tokens=400, days=3, seed=9001, start=START, faults=Faults(
        kinesis_duplicates=0.05, s3_duplicate_objects=0.1, malformed_lines=0.02,
        malformed_records=0.02, illegal_transitions=0.1, retries=0.05))
    return settings, target, simulate(settings, target)


def test_summary_matches_the_service(first_run, db):
    settings, _, summary = first_run
    prefix = f"tok-{settings.seed}-%"
    per_state = dict(db.execute(
        "select to_state, count(*) from token_state_transitions where token_ref like %s "
        "group by 1 order by 1", [prefix]).fetchall())
    assert per_state == summary["transitions"]["per_to_state"]
    assert sum(per_state.values()) == summary["transitions"]["total"]
    per_wallet = dict(db.execute("select wallet_id, count(*) from tokens where token_ref like %s"
                                 " group by 1 order by 1", [prefix]).fetchall())
    assert per_wallet == summary["tokens_per_wallet"]
    assert sum(per_wallet.values()) == settings.tokens
    assert len(per_wallet) == 4  # apple, google, samsung and the custom wallet
    assert summary["service"]["recorded"] == summary["transitions"]["total"]
    assert summary["service"]["refused_illegal"] > 0 and summary["service"]["replayed"] > 0



def test_the_log_interleaves_tokens_in_time_as_a_platform_writes(first_run, db):
    """The service gets each token's writes in its order, but tokens interleaved in time (four
    lanes of time-ordered batches): the log's commit order (transition_id) is not token by
    token, as a platform's is not. (Token by token, an incremental load split by id would
    leave at most one token with rows on both sides.)"""
    settings, _, _ = first_run
    rows = db.execute(
        "select token_ref, version from token_state_transitions"
        " where token_ref like %s order by transition_id",
        [f"tok-{settings.seed}-%"]).fetchall()
    versions: dict[str, int] = {}
    for ref, version in rows:  # each token's versions in commit order: 1, 2, 3, ...
        assert version == versions.get(ref, 0) + 1, (ref, version)
        versions[ref] = version
    # a token's rows are interrupted by another token's in commit order
    last_seen: dict[str, int] = {}
    interrupted = set()
    for i, (ref, _) in enumerate(rows):
        if ref in last_seen and last_seen[ref] != i - 1:
            interrupted.add(ref)
        last_seen[ref] = i
    several = sum(1 for v in versions.values() if v > 1)
    assert len(interrupted) > several / 20, (len(interrupted), several)  # 37 of 400 here

def test_summary_matches_the_stream(first_run):
    _, target, summary = first_run
    records = [r for shard in _stream_records(target).values() for r in shard]
    k = summary["kinesis"]
    assert len(records) == k["records_put"]
    valid, bad = [], 0
    for data in records:
        try:
            event = json.loads(data)
            datetime.fromisoformat(event["event_time"])
            assert isinstance(event["event_id"], str) and isinstance(event["token_ref"], str)
            assert isinstance(event["wallet_id"], str) and isinstance(event["event_type"], str)
            assert isinstance(event["schema_version"], int)
            valid.append(event)
        except (ValueError, KeyError, TypeError, AssertionError):
            bad += 1
    assert bad == k["malformed"] > 0
    unique = {e["event_id"]: e for e in valid}
    assert len(unique) == k["events_unique"]
    assert len(valid) - len(unique) == k["duplicates"] > 0
    assert Counter(e["event_type"] for e in unique.values()) == k["events_per_type"]
    assert not any("card" in key for e in valid for key in e)  # no card data in events


def test_summary_matches_the_bucket(first_run):
    _, target, summary = first_run
    objects = _bucket_objects(target)
    for source, prefix in (("apigw_logs", "apigw/"), ("lambda_logs", "lambda/")):
        s = summary["s3"][source]
        keys = [k for k in objects if k.startswith(prefix)]
        assert len(keys) == s["objects"] + s["duplicate_objects"] + s["corrupt_objects"]
        assert all(k.endswith(".json.gz") and "/dt=" in k and "/hour=" in k for k in keys)
        lines, corrupt = [], 0
        for key in keys:
            if "redelivered" in key:
                assert objects[key] == objects[key.replace("-redelivered", "")]
                continue
            try:
                lines += gzip.decompress(objects[key]).decode().splitlines()
            except gzip.BadGzipFile:
                corrupt += 1
        good = sum(1 for line in lines if _valid_log_line(source, line))
        assert good == s["records"]
        assert len(lines) - good == s["malformed_lines"]
        assert corrupt == s["corrupt_objects"]
    assert summary["quarantine_expected"]["total"] == (
        summary["kinesis"]["malformed"]
        + sum(s["malformed_lines"] + s["corrupt_objects"] for s in summary["s3"].values()))


def _valid_log_line(source: str, line: str) -> bool:
    from ingestion.contract import REQUIRED

    try:
        rec = json.loads(line)
    except ValueError:
        return False
    types = {"str": str, "int": int, "number": (int, float), "timestamp": str}
    return all(name in rec and isinstance(rec[name], types[kind])
               and not (kind == "int" and isinstance(rec[name], bool))
               for name, kind in REQUIRED[source].items())


def test_same_seed_gives_identical_objects_and_records(first_run, local_stack, service):
    settings, target, summary = first_run
    again_target = fresh_target(local_stack, service.url, API_KEY)
    again = simulate(settings, again_target)  # the service has these events: 200, not 201
    assert _bucket_objects(again_target) == _bucket_objects(target)
    assert _stream_records(again_target) == _stream_records(target)
    strip = {"run", "service"}
    assert {k: v for k, v in again.items() if k not in strip} == {
        k: v for k, v in summary.items() if k not in strip}
    assert again["service"]["recorded"] == 0  # nothing recorded twice


def test_fault_switches_parse_and_refuse_unknown_names():
    assert Faults.parse(["retries=0.5"], Faults.none()).retries == 0.5
    assert Faults.none().kinesis_duplicates == 0
    with pytest.raises(ValueError, match="name one of"):
        Faults.parse(["nonsense=1"])
    with pytest.raises(ValueError, match="not a number"):
        Faults.parse(["retries=lots"])


def test_the_profiles_use_only_registered_wallets():
    simulated = [p.wallet_id for p in PROFILES]
    assert len(simulated) == len(set(simulated))
    unregistered = [w for w in simulated if not wallets.is_registered(w)]
    assert not unregistered, (f"{unregistered}: the state service refuses them; register them "
                              "in tokenwatch/wallets.py")
    # the simulated world has both kinds, so the marts and the gate see a custom wallet too
    assert {wallets.get(w).kind for w in simulated} == set(wallets.KINDS)
