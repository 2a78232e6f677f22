"""Proof that nothing was dropped: what was read from each source is accounted for in the raw
layer, as rows, duplicates skipped or quarantined lines. Plain functions; Dagster's asset
checks and the tests call them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingestion.contract import S3_PREFIXES
from ingestion.sources.kinesis import read_ledger
from ingestion.sources.s3 import list_objects, stored_key
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
