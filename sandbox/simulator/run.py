"""Running a simulation: stories to the state service, Kinesis and S3, then the summary.

The summary holds the exact numbers a correct pipeline must end up with. It is computed from
what was generated and checked against what the service answered: a disagreement is an error.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime

import httpx

from ingestion.contract import S3_PREFIXES
from ingestion.world import World
from sandbox.simulator.faults import Faults, illegal_move, malformed_line
from sandbox.simulator.story import Story, StoryTeller

BATCH_ITEMS = 500
KINESIS_BATCH = 500
LINES_PER_PART = 20_000
Progress = Callable[[str, int, int], None]  # (phase, done, total)


class SimulationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    tokens: int
    days: int
    seed: int
    start: datetime
    faults: Faults


def _nothing(phase: str, done: int, total: int) -> None:
    return None


def simulate(settings: Settings, target: World, progress: Progress = _nothing) -> dict:
    started = time.perf_counter()
    teller = StoryTeller(settings.seed, settings.start, settings.days)
    stories = []
    for i in range(settings.tokens):
        stories.append(teller.tell(i))
        if i % 1000 == 999:
            progress("generate", i + 1, settings.tokens)
    progress("generate", settings.tokens, settings.tokens)
    rng = random.Random(f"{settings.seed}:faults")
    ops = _service_ops(stories, settings.faults, rng)
    records, kinesis_counts = _kinesis_records(stories, settings.faults, rng)
    objects, s3_counts = _s3_objects(stories, settings.faults, rng)
    with ThreadPoolExecutor(3) as pool:
        f_service = pool.submit(_send_service, ops, target, progress)
        f_kinesis = pool.submit(_put_kinesis, records, target, progress)
        f_s3 = pool.submit(_put_s3, objects, target, progress)
        service_counts = f_service.result()
        f_kinesis.result()
        f_s3.result()
    summary = _summary(settings, stories, service_counts, kinesis_counts, s3_counts)
    summary["run"] = {"seconds": round(time.perf_counter() - started, 2)}
    return summary


# -- the state service -------------------------------------------------------------------
def _service_ops(stories: list[Story], faults: Faults, rng: random.Random):
    """Per token: its ops, retries (same event_id again) and illegal attempts, in order."""
    groups: list[tuple[list[dict], list[int]]] = []
    for s in stories:
        items, statuses = [], []
        for op in s.ops:
            items.append(op)
            statuses.append(201)
            if rng.random() < faults.retries:
                items.append(op)
                statuses.append(200)
        if rng.random() < faults.illegal_transitions:
            last = s.ops[-1]
            target = illegal_move(rng, s.state)
            extra = {"decision": "green"} if target == "ProvisionPending" else {}
            items.append({"op": "transition", "token_ref": s.token_ref, "to_state": target,
                          "event_id": f"illegal-{s.token_ref}", "actor": "system",
                          "occurred_at": last["occurred_at"]} | extra)
            statuses.append(409)
        groups.append((items, statuses))
    return groups


def _lanes(groups, lanes: int) -> list[list[tuple[list[dict], list[int]]]]:
    """The tokens dealt into ``lanes`` lanes; each lane's items in time order (a token's own
    in its order), cut into batches. A lane's batches go one after another, so a token's
    items arrive in order; across tokens they interleave in time, as a platform's writes do:
    the log's commit order is not token by token."""
    timed: list[list[tuple[str, int, dict, int]]] = [[] for _ in range(lanes)]
    for n, (items, statuses) in enumerate(groups):
        lane = timed[n % lanes]
        for item, status in zip(items, statuses, strict=True):
            lane.append((item["occurred_at"], len(lane), item, status))
    out = []
    for lane in timed:
        lane.sort(key=lambda t: (t[0], t[1]))  # stable for a token's same-instant items
        batches = [([t[2] for t in lane[i:i + BATCH_ITEMS]],
                    [t[3] for t in lane[i:i + BATCH_ITEMS]])
                   for i in range(0, len(lane), BATCH_ITEMS)]
        out.append(batches)
    return out


def _send_service(groups, target: World, progress: Progress, lanes: int = 4) -> Counter:
    by_lane = _lanes(groups, lanes)
    total = sum(len(b[0]) for batches in by_lane for b in batches)
    done, counts, lock = 0, Counter(), threading.Lock()
    headers = {"Authorization": f"Bearer {target.api_key}"}
    with httpx.Client(base_url=target.service_url, headers=headers, timeout=120) as client:

        def send(batch) -> None:
            nonlocal done
            items, statuses = batch
            r = client.post("/v1/batch", json={"items": items})
            if r.status_code != 200:
                raise SimulationError(f"state service answered {r.status_code}: {r.text[:300]}")
            for item, want, got in zip(items, statuses, r.json()["results"], strict=True):
                # a re-run of the same seed finds its events recorded: 200, not 201
                if got["status"] != want and not (want == 201 and got["status"] == 200):
                    raise SimulationError(
                        f"state service answered {got['status']} where {want} was "
                        f"expected for {item['op']} {item.get('to_state', '')} of "
                        f"{item['token_ref']}: {got['body']}")
            with lock:
                counts.update(got["status"] for got in r.json()["results"])
                done += len(items)
                progress("state service", done, total)

        def send_lane(batches) -> None:
            for batch in batches:
                send(batch)

        with ThreadPoolExecutor(lanes) as pool:
            for finished in [pool.submit(send_lane, batches) for batches in by_lane]:
                finished.result()
    return counts


# -- Kinesis -----------------------------------------------------------------------------
def _kinesis_records(stories: list[Story], faults: Faults, rng: random.Random):
    events = sorted((e for s in stories for e in s.events),
                    key=lambda e: (e["event_time"], e["event_id"]))
    counts = Counter(events_unique=len(events))
    counts.update(f"type:{e['event_type']}" for e in events)
    for i in range(len(events) - 1):  # out of order: swap with the next event
        if rng.random() < faults.out_of_order:
            events[i], events[i + 1] = events[i + 1], events[i]
            counts["out_of_order"] += 1
    on_time, late = [], []
    for e in events:
        (late if rng.random() < faults.late_events else on_time).append(e)
    counts["late"] = len(late)
    records: list[tuple[str, bytes]] = []
    for e in on_time + late:
        data = json.dumps(e, separators=(",", ":")).encode()
        records.append((e["token_ref"], data))
        if rng.random() < faults.kinesis_duplicates:
            # delivered again a little later, byte for byte
            records.insert(len(records) + rng.randint(0, 50), (e["token_ref"], data))
            counts["duplicates"] += 1
        if rng.random() < faults.malformed_records:
            kind, text = malformed_line(rng, "wallet_events", e)
            records.append((e["token_ref"], text.encode()))
            counts["malformed"] += 1
            counts[f"malformed:{kind}"] += 1
    counts["records_put"] = len(records)
    return records, counts


def _put_kinesis(records, target: World, progress: Progress) -> None:
    done = 0
    for i in range(0, len(records), KINESIS_BATCH):
        pending = [{"PartitionKey": pk, "Data": data} for pk, data in
                   records[i:i + KINESIS_BATCH]]
        for _attempt in range(8):
            resp = target.kinesis.put_records(StreamName=target.stream, Records=pending)
            if not resp.get("FailedRecordCount"):
                break
            pending = [rec for rec, res in zip(pending, resp["Records"], strict=True)
                       if "ErrorCode" in res]
            time.sleep(0.2)
        else:
            raise SimulationError(f"Kinesis refused {len(pending)} record(s) 8 times")
        done += min(KINESIS_BATCH, len(records) - i)
        progress("kinesis", done, len(records))


# -- S3 ----------------------------------------------------------------------------------
def _gzip(lines: list[str]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode())
    return buf.getvalue()


def _s3_objects(stories: list[Story], faults: Faults, rng: random.Random):
    by_source = {"apigw_logs": [r for s in stories for r in s.apigw],
                 "lambda_logs": [r for s in stories for r in s.lambdas]}
    time_field = {"apigw_logs": "request_time", "lambda_logs": "timestamp"}
    objects: dict[str, bytes] = {}
    counts: dict[str, Counter] = {src: Counter() for src in by_source}
    for source, recs in by_source.items():
        hours: dict[str, list[dict]] = defaultdict(list)
        for r in sorted(recs, key=lambda r: (r[time_field[source]], r["request_id"])):
            ts = r[time_field[source]]
            hours[f"{S3_PREFIXES[source]}/dt={ts[:10]}/hour={ts[11:13]}"].append(r)
        c = counts[source]
        c["records"] = len(recs)
        for prefix, hour_recs in hours.items():
            for part, i in enumerate(range(0, len(hour_recs), LINES_PER_PART)):
                lines = []
                for r in hour_recs[i:i + LINES_PER_PART]:
                    lines.append(json.dumps(r, separators=(",", ":")))
                    if rng.random() < faults.malformed_lines:
                        kind, text = malformed_line(rng, source, r)
                        lines.append(text)
                        c["malformed_lines"] += 1
                        c[f"malformed:{kind}"] += 1
                key = f"{prefix}/part-{part:05d}.json.gz"
                objects[key] = _gzip(lines)
                c["objects"] += 1
                if rng.random() < faults.s3_duplicate_objects:
                    objects[f"{prefix}/part-{part:05d}-redelivered.json.gz"] = objects[key]
                    c["duplicate_objects"] += 1
    for n in range(faults.corrupt_objects):
        key = sorted(objects)[rng.randrange(len(objects))].rsplit("/", 1)[0]
        objects[f"{key}/part-corrupt-{n:02d}.json.gz"] = b"this object is not gzip\n"
        source = "apigw_logs" if key.startswith("apigw/") else "lambda_logs"
        counts[source]["corrupt_objects"] += 1
    return objects, counts


def _put_s3(objects: dict[str, bytes], target: World, progress: Progress) -> None:
    keys = sorted(objects)

    def put(key):
        target.s3.put_object(Bucket=target.bucket, Key=key, Body=objects[key],
                             ContentType="application/x-ndjson", ContentEncoding="gzip")

    with ThreadPoolExecutor(4) as pool:
        for done, _ in enumerate(pool.map(put, keys), start=1):
            if done % 20 == 0 or done == len(keys):
                progress("s3", done, len(keys))


# -- the summary -------------------------------------------------------------------------
def _summary(settings: Settings, stories, service: Counter, kinesis: Counter,
             s3: dict[str, Counter]) -> dict:
    per_state: Counter = Counter()
    for s in stories:
        per_state.update("TokenRequested" if o["op"] == "create" else o["to_state"]
                         for o in s.ops)
    nested: dict[str, Counter] = defaultdict(Counter)
    for s in stories:
        nested[s.wallet_id][s.network] += 1
    final: dict[str, Counter] = defaultdict(Counter)
    for s in stories:
        final[s.wallet_id][s.state] += 1
    quarantine = {"wallet_events": kinesis["malformed"],
                  "apigw_logs": s3["apigw_logs"]["malformed_lines"]
                  + s3["apigw_logs"]["corrupt_objects"],
                  "lambda_logs": s3["lambda_logs"]["malformed_lines"]
                  + s3["lambda_logs"]["corrupt_objects"]}
    return {
        "seed": settings.seed, "tokens": settings.tokens, "days": settings.days,
        "start": settings.start.isoformat(), "faults": asdict(settings.faults),
        "tokens_per_wallet": dict(sorted(Counter(s.wallet_id for s in stories).items())),
        "tokens_per_wallet_network": {w: dict(sorted(c.items()))
                                      for w, c in sorted(nested.items())},
        "final_state_per_wallet": {w: dict(sorted(c.items())) for w, c in sorted(final.items())},
        "transitions": {"total": sum(per_state.values()),
                        "per_to_state": dict(sorted(per_state.items()))},
        "service": {"recorded": service[201], "replayed": service[200],
                    "refused_illegal": service[409],
                    "statuses": {str(k): v for k, v in sorted(service.items())}},
        "kinesis": {
            "records_put": kinesis["records_put"], "events_unique": kinesis["events_unique"],
            "events_per_type": {k[5:]: v for k, v in sorted(kinesis.items())
                                if k.startswith("type:")},
            "duplicates": kinesis["duplicates"], "out_of_order": kinesis["out_of_order"],
            "late": kinesis["late"], "malformed": kinesis["malformed"],
            "malformed_per_kind": {k[10:]: v for k, v in sorted(kinesis.items())
                                   if k.startswith("malformed:")},
        },
        "s3": {src: {"objects": c["objects"], "duplicate_objects": c["duplicate_objects"],
                     "corrupt_objects": c["corrupt_objects"], "records": c["records"],
                     "malformed_lines": c["malformed_lines"],
                     "malformed_per_kind": {k[10:]: v for k, v in sorted(c.items())
                                            if k.startswith("malformed:")}}
               for src, c in sorted(s3.items())},
        "quarantine_expected": quarantine | {"total": sum(quarantine.values())},
    }
