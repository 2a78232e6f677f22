"""Benchmark: the Kinesis and S3 loaders into a fresh DuckDB file, each against its ceiling.

Starts moto's server as the local stack does (``sandbox.stack._start_moto``: its own process,
real HTTP, real boto3 clients configured as ``tokenwatch.stack_file.Stack`` makes them), then
fills it with the traffic simulator's own records (``sandbox.simulator.story.StoryTeller``
stories, no faults, made records and objects as ``sandbox.simulator.run`` makes them):

* a Kinesis stream of ``--shards`` shards (4) holding ``--events`` wallet events, put with
  ``PutRecords`` in batches of 500 (the simulator's ``_put_kinesis``);
* a bucket holding ``--lines`` log lines, half API Gateway and half Lambda, under the lake's
  prefixes (``ingestion.contract.S3_PREFIXES``), as gzip JSON-lines objects of
  ``--lines-per-object`` lines (5,000), put by the simulator's ``_put_s3``.

Then it times, each in a fresh process (so peak RSS is its own), ours against a fresh DuckDB
file:

* Kinesis ceiling: ``ListShards``, then per shard ``GetShardIterator TRIM_HORIZON`` and a
  ``GetRecords`` loop (``Limit`` 10,000, ingestion's ``GET_RECORDS_LIMIT``; it stops as ours
  does) over every shard; the records' bytes counted and dropped;
* ours: ``ingestion.sources.kinesis.load_wallet_events`` into ``DuckDBWarehouse``, timed to
  the warehouse's close (its checkpoint), as ``bench/ingest.py`` times ours;
* S3 ceiling: the listing (``list_objects_v2`` pages of 1,000, as ours lists) and ``GetObject``
  of every object, each body read whole and gunzipped (decompression counts as transport,
  parsing does not), its lines counted and dropped;
* ours: ``ingestion.sources.s3.load_lake`` into ``DuckDBWarehouse``, timed the same way.

Every measurement must see every record: the ceilings count records and lines, ours must leave
exactly ``--events`` rows in ``raw.wallet_events`` and the lines of each source in
``raw.apigw_logs`` / ``raw.lambda_logs``, with ``raw.quarantine`` empty, else the script fails.
Prints rows, seconds, rows/s, peak RSS and ``ours/ceiling`` per source. No goal is set for
these two loaders (the PostgreSQL loader's, ``bench/ingest.py``, is 0.5). The moto server and
its bucket and stream live for the whole run; moto is a Python server on the same machine, so
both the ceilings and ours are bounded by what it can serve: the table shows the CPU seconds of
the measured process and of the moto server meanwhile.

Filling the stream is the slow part of a run: moto (5.2.5) finds a shard's last sequence
number by copying the keys of the shard's OrderedDict for every record put, so the fill is
quadratic in records per shard (about 7 to 11 minutes for the defaults on two busy cores;
``--shards 8`` halves it). The timed reads are not affected.

    .venv/bin/python bench/lake.py [--events 200000] [--lines 400000] [--repeat 1]
    .venv/bin/python bench/lake.py --events 2000 --lines 4000 --lines-per-object 500  # smoke
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.watched import peak_rss_mib  # noqa: E402
from ingestion.contract import S3_PREFIXES  # noqa: E402
from ingestion.sources.kinesis import GET_RECORDS_LIMIT  # noqa: E402
from ingestion.world import World  # noqa: E402
from tokenwatch.stack_file import Stack  # noqa: E402

START = datetime(2026, 11, 2, tzinfo=UTC)  # tests/world.py's: inside the records' time window
DAYS = 14
SEED = 4242
TIME_FIELD = {"apigw_logs": "request_time", "lambda_logs": "timestamp"}
NO_GOAL = "no goal set; the PostgreSQL loader's goal is 0.5"


# -- the stack ---------------------------------------------------------------------------------
def clients(endpoint: str):
    """(kinesis, s3) boto3 clients for the moto server, exactly as the stack's commands get
    them (``Stack.kinesis_client`` / ``s3_client``: region, credentials, retries)."""
    stack = Stack(aws_endpoint=endpoint, region="us-east-1", bucket="", stream="", shards=0,
                  intake_url="", intake_records="", pg_dsn="", pg_source="")
    return stack.kinesis_client(), stack.s3_client()


def start_moto(home: Path):
    from sandbox.stack import _start_moto

    return _start_moto(home)


def stop_moto(proc) -> None:
    from sandbox.stack import _stop_pid

    _stop_pid(proc.pid)


# -- the records -------------------------------------------------------------------------------
def build_records(events: int, lines: int, lines_per_object: int):
    """The simulator's stories (no faults) until there are ``events`` wallet events and
    ``lines`` log lines: Kinesis records as the simulator puts them (partition key, JSON
    bytes), in event-time order, and the lake's objects (key -> gzip JSON lines)."""
    from sandbox.simulator.faults import Faults
    from sandbox.simulator.run import _gzip, _kinesis_records
    from sandbox.simulator.story import StoryTeller

    teller = StoryTeller(SEED, START, DAYS)
    for_kinesis, n_events = [], 0
    logs: dict[str, list[dict]] = {"apigw_logs": [], "lambda_logs": []}
    i = 0
    while n_events < events or len(logs["apigw_logs"]) + len(logs["lambda_logs"]) < lines:
        story = teller.tell(i)
        i += 1
        if n_events < events:
            for_kinesis.append(story)
            n_events += len(story.events)
        if len(logs["apigw_logs"]) + len(logs["lambda_logs"]) < lines:
            logs["apigw_logs"] += story.apigw
            logs["lambda_logs"] += story.lambdas
    records, _ = _kinesis_records(for_kinesis, Faults.none(), random.Random(f"{SEED}:faults"))
    records = records[:events]

    want = {"apigw_logs": lines - lines // 2, "lambda_logs": lines // 2}
    objects: dict[str, bytes] = {}
    per_source: dict[str, int] = {}
    for source, recs in logs.items():
        field = TIME_FIELD[source]
        recs = sorted(recs, key=lambda r, f=field: (r[f], r["request_id"]))[:want[source]]
        per_source[source] = len(recs)
        for part, lo in enumerate(range(0, len(recs), lines_per_object)):
            chunk = recs[lo:lo + lines_per_object]
            ts = chunk[0][field]
            key = (f"{S3_PREFIXES[source]}/dt={ts[:10]}/hour={ts[11:13]}/"
                   f"part-{part:05d}.json.gz")
            objects[key] = _gzip([json.dumps(r, separators=(",", ":")) for r in chunk])
    return records, objects, per_source, i


def fill(endpoint: str, shards: int, records, objects) -> tuple[str, str]:
    """A new stream and bucket on the server, filled by the simulator's own writers."""
    from sandbox.simulator.run import _put_kinesis, _put_s3

    kinesis, s3 = clients(endpoint)
    bucket, stream = f"lake-{uuid.uuid4().hex[:8]}", f"events-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    world = World(pg_dsn="", kinesis=kinesis, stream=stream, s3=s3, bucket=bucket)
    t0 = time.perf_counter()
    _put_kinesis(records, world, lambda *a: None)
    t1 = time.perf_counter()
    _put_s3(objects, world, lambda *a: None)
    print(f"put {len(records):,} records in {t1 - t0:.1f} s, {len(objects):,} objects in "
          f"{time.perf_counter() - t1:.1f} s")
    # warm-up, untimed: moto's GetRecords and GetObject paths run once before anyone is timed
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    kinesis.get_records(ShardIterator=it, Limit=1)
    s3.get_object(Bucket=bucket, Key=next(iter(objects)))["Body"].read()
    return stream, bucket


# -- the measurements, each run in a fresh process ---------------------------------------------
def _counts(path: Path, tables: tuple[str, ...]) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: int(con.execute(f"select count(*) from raw.{t}").fetchone()[0])
                for t in tables}


def run_kinesis_ceiling(target: dict, workdir: str) -> dict:
    kinesis, _ = clients(target["endpoint"])
    stream = target["stream"]
    t0, c0 = time.perf_counter(), time.process_time()
    rows = nbytes = calls = 0
    shards, token = [], None
    while True:
        resp = (kinesis.list_shards(NextToken=token) if token
                else kinesis.list_shards(StreamName=stream))
        shards += resp["Shards"]
        if not (token := resp.get("NextToken")):
            break
    for shard in shards:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            resp = kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            calls += 1
            for rec in resp["Records"]:
                nbytes += len(rec["Data"])
            rows += len(resp["Records"])
            iterator = resp.get("NextShardIterator")
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break  # caught up: ours stops here too
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rows": rows, "seconds": seconds, "cpu": cpu, "rss": peak_rss_mib(),
            "bytes": nbytes, "calls": calls, "quarantined": 0}


def run_kinesis_ours(target: dict, workdir: str) -> dict:
    from ingestion.sources.kinesis import load_wallet_events
    from ingestion.warehouse.duckdb import DuckDBWarehouse

    kinesis, _ = clients(target["endpoint"])
    path = Path(workdir) / "ours.duckdb"
    wh = DuckDBWarehouse(path)
    wh.ensure_schema()
    t0, c0 = time.perf_counter(), time.process_time()
    result = load_wallet_events(kinesis, target["stream"], wh)
    closing = time.perf_counter()
    wh.close()  # timed, as bench/ingest.py times ours: its checkpoint writes what was logged
    end, cpu = time.perf_counter(), time.process_time() - c0
    counts = _counts(path, ("wallet_events", "quarantine"))
    return {"rows": counts["wallet_events"], "seconds": end - t0, "cpu": cpu,
            "close": end - closing, "rss": peak_rss_mib(), "read": result.records_read,
            "quarantined": counts["quarantine"], "bytes": path.stat().st_size}


def run_s3_ceiling(target: dict, workdir: str) -> dict:
    _, s3 = clients(target["endpoint"])
    bucket = target["bucket"]
    t0, c0 = time.perf_counter(), time.process_time()
    rows = nbytes = objects = 0
    per_source: dict[str, int] = {}
    for source, prefix in S3_PREFIXES.items():
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix + "/", PaginationConfig={"PageSize": 1000})
        for page in pages:
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                data = gzip.decompress(body)
                n = data.count(b"\n")  # every line ends in one (the simulator's _gzip)
                nbytes += len(data)
                objects += 1
                per_source[source] = per_source.get(source, 0) + n
                rows += n
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rows": rows, "seconds": seconds, "cpu": cpu, "rss": peak_rss_mib(),
            "bytes": nbytes, "objects": objects, "per_source": per_source, "quarantined": 0}


def run_s3_ours(target: dict, workdir: str) -> dict:
    from ingestion.sources.s3 import load_lake
    from ingestion.warehouse.duckdb import DuckDBWarehouse

    _, s3 = clients(target["endpoint"])
    path = Path(workdir) / "ours.duckdb"
    wh = DuckDBWarehouse(path)
    wh.ensure_schema()
    t0, c0 = time.perf_counter(), time.process_time()
    result = load_lake(s3, target["bucket"], wh)
    closing = time.perf_counter()
    wh.close()  # timed, as bench/ingest.py times ours: its checkpoint writes what was logged
    end, cpu = time.perf_counter(), time.process_time() - c0
    counts = _counts(path, ("apigw_logs", "lambda_logs", "quarantine"))
    return {"rows": counts["apigw_logs"] + counts["lambda_logs"], "seconds": end - t0,
            "close": end - closing, "cpu": cpu, "rss": peak_rss_mib(),
            "objects": result.objects_loaded, "per_source": {s: counts[s] for s in S3_PREFIXES},
            "quarantined": counts["quarantine"], "bytes": path.stat().st_size}


def idle_check() -> float:
    """CPU use (%, all cores) over one second before a run: other work makes figures noisy.
    The moto server is idle then, so this is other work on the machine."""
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 20:
        print(f"  note: {busy:.0f}% CPU in use by other processes just before this run")
    return busy


def measure(fn, target: dict, repeat: int, expected: dict, label: str, moto_pid: int) -> dict:
    """Best of ``repeat`` fresh-process runs of ``fn``; any run that did not see every record
    (or quarantined one) fails the benchmark. Also the moto server's CPU seconds over the run
    (its process is otherwise idle): how much of the time the server itself was busy."""
    server = psutil.Process(moto_pid)
    best: dict | None = None
    peak = 0.0
    for i in range(repeat):
        idle_check()
        workdir = tempfile.mkdtemp(prefix="tokenwatch-bench-lake-")
        try:
            with mp.get_context("spawn").Pool(1) as pool:
                before = sum(server.cpu_times()[:2])
                r = pool.apply(fn, (target, workdir))
                r["moto_cpu"] = sum(server.cpu_times()[:2]) - before
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        wrong = [f"{k} {r.get(k)!r} (expected {v!r})" for k, v in expected.items()
                 if r.get(k) != v]
        if wrong:
            raise SystemExit(f"FAILED: {label}: " + "; ".join(wrong))
        close = f", {r['close']:.2f} s of it closing the warehouse" if "close" in r else ""
        print(f"  {label} run {i + 1}/{repeat}: {r['seconds']:.2f} s{close} (CPU: "
              f"{r['cpu']:.2f} s here, {r['moto_cpu']:.2f} s in moto), peak RSS "
              f"{r['rss']:.0f} MiB")
        peak = max(peak, r["rss"])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    assert best is not None
    return best | {"rss": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="wallet events in the stream")
    ap.add_argument("--lines", type=int, default=400_000,
                    help="log lines in the lake (half API Gateway, half Lambda)")
    ap.add_argument("--lines-per-object", type=int, default=5_000, help="lines per S3 object")
    ap.add_argument("--shards", type=int, default=4, help="shards of the stream")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; best shown")
    args = ap.parse_args()
    if min(args.events, args.lines, args.lines_per_object, args.shards, args.repeat) < 1:
        ap.error("--events, --lines, --lines-per-object, --shards and --repeat must be >= 1")
    if args.lines < 2:
        ap.error("--lines must be at least 2 (one per source)")
    started = time.perf_counter()

    t0 = time.perf_counter()
    records, objects, per_source, tokens = build_records(args.events, args.lines,
                                                         args.lines_per_object)
    n_events, n_objects = len(records), len(objects)
    print(f"simulated {tokens:,} tokens: {n_events:,} wallet events, {args.lines:,} log lines "
          f"({', '.join(f'{k} {v:,}' for k, v in per_source.items())}) in {n_objects:,} "
          f"objects of up to {args.lines_per_object:,} lines; {time.perf_counter() - t0:.1f} s")

    home = Path(tempfile.mkdtemp(prefix="tokenwatch-bench-lake-home-"))
    moto, endpoint = start_moto(home)
    try:
        print(f"moto server {endpoint} (pid {moto.pid}, log {home / 'logs' / 'moto.log'})")
        stream, bucket = fill(endpoint, args.shards, records, objects)
        del records, objects
        target = {"endpoint": endpoint, "stream": stream, "bucket": bucket}
        want_k = {"rows": n_events, "quarantined": 0}
        want_s3 = {"rows": args.lines, "per_source": per_source, "quarantined": 0,
                   "objects": n_objects}
        runs = (("kinesis ceiling", run_kinesis_ceiling, want_k),
                ("ours: load_wallet_events", run_kinesis_ours, want_k | {"read": n_events}),
                ("s3 ceiling", run_s3_ceiling, want_s3),
                ("ours: load_lake", run_s3_ours, want_s3))
        results = {label: measure(fn, target, args.repeat, want, label, moto.pid)
                   for label, fn, want in runs}
    finally:
        stop_moto(moto)
        shutil.rmtree(home, ignore_errors=True)

    print()
    print(f"{'loader':26}{'rows':>10}{'seconds':>9}{'rows/s':>10}{'peak RSS MiB':>14}"
          f"{'cpu s':>8}{'moto cpu s':>12}{'ours/ceiling':>14}")
    pairs = (("kinesis ceiling", "ours: load_wallet_events"), ("s3 ceiling", "ours: load_lake"))
    ratios = {}
    for ceiling, ours in pairs:
        rate_c = results[ceiling]["rows"] / results[ceiling]["seconds"]
        rate_o = results[ours]["rows"] / results[ours]["seconds"]
        ratios[ours] = rate_o / rate_c
        for label in (ceiling, ours):
            r = results[label]
            ratio = f"{ratios[ours]:14.2f}" if label == ours else ""
            print(f"{label:26}{r['rows']:>10,}{r['seconds']:>9.2f}"
                  f"{r['rows'] / r['seconds']:>10,.0f}{r['rss']:>14.0f}{r['cpu']:>8.2f}"
                  f"{r['moto_cpu']:>12.2f}{ratio}")
    k, s = results["kinesis ceiling"], results["s3 ceiling"]
    print(f"kinesis ceiling: {k['calls']} GetRecords calls, {k['bytes'] / 2**20:.1f} MiB of "
          f"record data; s3 ceiling: {s['objects']} objects, {s['bytes'] / 2**20:.1f} MiB "
          "gunzipped")
    print(f"ours/ceiling kinesis: {ratios['ours: load_wallet_events']:5.2f}  ({NO_GOAL})")
    print(f"ours/ceiling s3:      {ratios['ours: load_lake']:5.2f}  ({NO_GOAL})")
    print("cpu s: CPU seconds of the measured process; moto cpu s: of the moto server "
          "meanwhile (both cores count)")
    print(f"peak RSS of this driver process {peak_rss_mib():.0f} MiB; "
          f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
