"""Proof that nothing was dropped: what was read from each source is accounted for in the raw
layer, as rows, duplicates skipped or quarantined lines. Plain functions; Dagster's asset
checks and the tests call them."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from ingestion.contract import S3_PREFIXES
from ingestion.raw_schema import SCHEMA, TRANSITIONS
from ingestion.sources.kinesis import read_ledger
from ingestion.sources.s3 import list_objects, stored_key
from ingestion.sources.transitions import STATE_KEY
from ingestion.warehouse.base import Warehouse


@dataclass
class Accounting:
    passed: bool
    summary: str
    observed: dict = field(default_factory=dict)


def _quarantined(wh: Warehouse, *sources: str) -> int:
    marks = ", ".join(["%s"] * len(sources))
    return int(wh.query(f"select count(*) from raw.quarantine where source in ({marks})",
                        list(sources))[0][0])


def stream_accounting(wh: Warehouse, stream: str) -> Accounting:
    """The stream's ledger against the tables: loaded = rows, quarantined = quarantine rows."""
    ledger = read_ledger(wh, stream)
    rows, bad = wh.count("wallet_events"), _quarantined(wh, "wallet_events")
    observed = {"ledger": ledger, "rows_in_raw_wallet_events": rows,
                "rows_in_quarantine": bad}
    problems = []
    if ledger["loaded"] != rows:
        problems.append(f"ledger says {ledger['loaded']} loaded, raw.wallet_events has {rows}")
    if ledger["quarantined"] != bad:
        problems.append(f"ledger says {ledger['quarantined']} quarantined, "
                        f"raw.quarantine has {bad}")
    if ledger["read"] != ledger["loaded"] + ledger["duplicates"] + ledger["quarantined"]:
        problems.append("read != loaded + duplicates + quarantined")
    if problems:
        return Accounting(False, "; ".join(problems), observed)
    return Accounting(True, f"{ledger['read']} records read: {rows} loaded, "
                            f"{ledger['duplicates']} duplicates, {bad} quarantined", observed)


def lake_accounting(wh: Warehouse, s3, bucket: str) -> Accounting:
    """Every object in the lake is in the manifest, and the manifest's row counts equal the
    tables' (rows loaded) and the quarantine's (lines refused)."""
    listed = {stored_key(obj["Key"]) for prefix in S3_PREFIXES.values()
              for obj in list_objects(s3, bucket, prefix + "/")}
    manifest = {k for (k,) in wh.query("select s3_key from raw._s3_manifest")}
    (loaded, refused), = wh.query("select coalesce(sum(rows_loaded), 0), "
                                  "coalesce(sum(rows_quarantined), 0) from raw._s3_manifest")
    rows = sum(wh.count(t) for t in S3_PREFIXES)
    bad = _quarantined(wh, *S3_PREFIXES)
    missing = sorted(listed - manifest)
    observed = {"objects_listed": len(listed), "objects_in_manifest": len(manifest),
                "not_loaded_yet": missing[:20], "manifest_rows": int(loaded),
                "rows_in_tables": rows, "manifest_quarantined": int(refused),
                "rows_in_quarantine": bad}
    problems = []
    if missing:
        problems.append(f"{len(missing)} object(s) in the bucket are not in the manifest")
    if int(loaded) != rows:
        problems.append(f"manifest says {int(loaded)} rows, the tables have {rows}")
    if int(refused) != bad:
        problems.append(f"manifest says {int(refused)} quarantined, raw.quarantine has {bad}")
    if problems:
        return Accounting(False, "; ".join(problems), observed)
    return Accounting(True, f"{len(listed)} objects, {rows} rows, {bad} quarantined lines: "
                            "all accounted for", observed)


def _quarantined_transition_ids(wh: Warehouse) -> list[int]:
    """The transition_ids of the quarantined transitions (their location names them)."""
    ids = []
    for (location,) in wh.query("select location from raw.quarantine where source = %s",
                                [TRANSITIONS.name]):
        tail = str(location).rsplit("/", 1)[-1]
        if tail.isdigit():
            ids.append(int(tail))
    return sorted(ids)


def transitions_accounting(wh: Warehouse, source_dsn: str) -> Accounting:
    """Every transition the loader read from PostgreSQL, i.e. every row below the watermark it
    stored, is a row of ``raw.token_state_transitions`` or a quarantined line (a row read again
    after a partial chunk is a skipped duplicate: neither). Both sides are counted below the
    watermark, with the sum of ``transition_id`` as a fingerprint (a row lost and another
    doubled keeps the count, not the sum). Rows at or above the watermark (a run that stopped
    between chunks) are reported, not judged: the next run completes them."""
    stored = wh.get_state(STATE_KEY)
    watermark = int(stored) if stored else 0
    (rows, row_ids), = wh.query(
        f"select count(*), coalesce(sum(transition_id), 0) from {SCHEMA}.{TRANSITIONS.name}"
        " where xact_id < %s", [watermark])
    (ahead,), = wh.query(f"select count(*) from {SCHEMA}.{TRANSITIONS.name} where xact_id >= %s",
                         [watermark])
    quarantined = _quarantined_transition_ids(wh)
    below = "from token_state_transitions where xact_id < %s::text::xid8"
    with psycopg.connect(source_dsn) as conn:
        conn.read_only = True
        (read, read_ids), = conn.execute(
            f"select count(*), coalesce(sum(transition_id), 0) {below}",
            [str(watermark)]).fetchall()
        (refused, refused_ids), = conn.execute(
            f"select count(*), coalesce(sum(transition_id), 0) {below}"
            " and transition_id = any(%s)", [str(watermark), quarantined]).fetchall()
    rows, row_ids, read, read_ids = int(rows), int(row_ids), int(read), int(read_ids)
    refused, refused_ids = int(refused), int(refused_ids)
    observed = {"watermark": watermark, "read_below_watermark": read,
                "rows_in_raw_token_state_transitions": rows, "rows_in_quarantine": refused,
                "quarantined_at_or_above_watermark": len(quarantined) - refused,
                "rows_at_or_above_watermark": int(ahead)}
    problems = []
    if rows + refused != read:
        problems.append(f"{read} transitions read below watermark {watermark}, "
                        f"raw.token_state_transitions has {rows} of them and raw.quarantine "
                        f"{refused} (difference {rows + refused - read:+d})")
    elif row_ids + refused_ids != read_ids:
        problems.append(f"{read} transitions read below watermark {watermark} and as many "
                        "rows and quarantined lines, but other transition_ids")
    if problems:
        return Accounting(False, "; ".join(problems), observed)
    return Accounting(True, f"{read} transitions read below watermark {watermark}: {rows} "
                            f"loaded, {refused} quarantined", observed)
