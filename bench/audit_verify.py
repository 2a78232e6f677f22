"""Benchmark: ``tokenwatch audit verify`` over a large transition log, against reading the log.

For each ``--rows`` N (default 1M and 5M) the script builds a throwaway PostgreSQL database
(the real schema, via the state service's migrations) holding N transitions of N/5 tokens, with
valid chains and seals: every row computed in Python by ``state_service.chain`` (``row_hash``,
``row_mac``, ``attrs_mac``) in two processes, loaded with COPY in transactions of ~100,000 rows
(each row sealed with its transaction's xact_id; foreign-key triggers off for the load, each
batch writing its tokens before their rows). Unless ``--no-checkpoint``, it then takes one
checkpoint of every row with ``state_service.checkpoints.take_checkpoint`` into an Object Lock
bucket of moto's S3 server, run in a thread of this process. Then it times, each in a fresh
process (so each peak RSS, VmHWM, is its own):

* raw read (the baseline): ``COPY (<verify's own query>) TO STDOUT`` through psycopg, bytes
  dropped: the cost of just reading the log in the verifier's order (``token_ref collate "C",
  version, transition_id``, the server's sort included);
* read via cursor (a reference): that query through the verifier's own named cursor and dict
  rows, rows dropped: what getting the rows into Python costs before any check;
* ``verify_database`` (``verify_log`` without S3): the chains and seals of rows and tokens;
* ``verify_log`` with the bucket: the same against the checkpoint, what ``tokenwatch audit
  verify`` runs.

Both verifications must find the log intact (0 findings, every row and token seen, every row
checkpointed), else the script fails. Prints rows, seconds, rows/s, peak RSS and ratio =
rows/s / the raw read's rows/s at the same size; the RSS column shows whether memory stays flat
from 1M to 5M rows. Each database is dropped afterwards. About 25 minutes for the defaults on
two busy cores, most of it generating, checkpointing and verifying the 5M rows.

    .venv/bin/python bench/audit_verify.py [--rows 1000000 5000000] [--no-checkpoint]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing as mp
import secrets
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.watched import peak_rss_mib  # noqa: E402
from state_service import chain  # noqa: E402
from state_service.migrate import migrate  # noqa: E402
from state_service.verify import _ROWS_SQL  # noqa: E402
from tokenwatch.postgres import drop_database, ensure_database, resolve_server  # noqa: E402

KEY_ID = "bench"
KEY = secrets.token_bytes(32)  # inherited by the forked generators, passed to the verifiers
TOKENS_PER_BATCH = 20_000  # ~100,000 rows per COPY transaction
BASE = datetime(2026, 1, 1, tzinfo=UTC)
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # chain.format_ts's, for datetimes already in UTC
STATES = ("TokenRequested", "ProvisionInitiated", "ProvisionPending", "ProvisionSuccess",
          "WalletActive", "TokenActive")
TOKEN_COLUMNS = ("token_ref", "wallet_id", "network", "token_type", "card_ref", "state",
                 "version", "last_hash", "created_at", "updated_at", "key_id", "attrs_mac")
ROW_COLUMNS = (*chain.SEALED_FIELDS, "prev_hash", "row_hash", "row_mac")


# -- the log, generated ------------------------------------------------------------------------
def _to_state(v: int) -> str:
    return STATES[v - 1] if v <= len(STATES) else "TokenSuspended" if v % 2 else "TokenActive"


def _copy_line(row: dict, columns: tuple[str, ...]) -> str:
    # nothing generated holds a tab, newline or backslash: COPY's text format needs no escaping
    return "\t".join([r"\N" if (v := row[c]) is None else str(v) for c in columns]) + "\n"


def _token_chain(t: int, versions: int, first_id: int, xact_id: str) -> tuple[str, list[str]]:
    """Token ``t``'s tokens row and its ``versions`` sealed, chained transition rows, as COPY
    lines. Timestamps go to chain.* already in format_ts's text (which canonical() keeps as
    is), so each is formatted once."""
    ref = "tok_" + hashlib.md5(b"t%d" % t).hexdigest()[:24]
    created = BASE + timedelta(milliseconds=10 * t)
    fixed = {"token_ref": ref, "xact_id": xact_id, "key_id": KEY_ID,
             "wallet_id": ("apple_pay", "google_pay", "samsung_pay")[t % 3],
             "network": ("visa", "mastercard")[t % 2],
             "token_type": ("secure_element", "hce", "card_on_file")[t % 3]}
    lines, prev = [], chain.GENESIS_HASH
    for v in range(1, versions + 1):
        at = created + timedelta(seconds=v - 1)
        row = fixed | {
            "transition_id": first_id + v, "version": v, "event_id": f"ev_{t}_{v}",
            "from_state": _to_state(v - 1) if v > 1 else None, "to_state": _to_state(v),
            "actor": "token_service" if v <= 6 else "issuer",
            "reason_code": None if v <= 6 else "device_lost" if v % 2 else "device_found",
            "decision": ("yellow" if t % 4 == 0 else "green") if v == 3 else None,
            "idv_method": "otp_sms" if v == 3 and t % 4 == 0 else None,
            "occurred_at": at.strftime(TS_FORMAT),
            "recorded_at": (at + timedelta(milliseconds=1 + t % 50)).strftime(TS_FORMAT),
            "request_hash": hashlib.sha256(b"req|%d|%d" % (t, v)).hexdigest(),
            "prev_hash": prev,
        }
        row["row_hash"] = prev = chain.row_hash(row)
        row["row_mac"] = chain.row_mac(KEY, row)
        lines.append(_copy_line(row, ROW_COLUMNS))
    token = fixed | {"card_ref": f"card_{t}", "state": row["to_state"], "version": versions,
                     "last_hash": prev, "created_at": created.strftime(TS_FORMAT),
                     "updated_at": row["recorded_at"]}
    token["attrs_mac"] = chain.attrs_mac(KEY, token)
    return _copy_line(token, TOKEN_COLUMNS), lines


def _load_batch(dsn: str, lo: int, hi: int, ntok: int, rows: int) -> int:
    """Tokens [lo, hi) and their rows in one transaction (its xact_id sealed in each row)."""
    base, extra = divmod(rows, ntok)
    n = 0
    with psycopg.connect(dsn) as conn:
        # no foreign-key trigger per row: each batch writes its tokens before their rows
        conn.execute("set session_replication_role = replica")
        xact_id = conn.execute("select pg_current_xact_id()::text").fetchone()[0]
        tokens, transitions = [], []
        for t in range(lo, hi):
            token, lines = _token_chain(t, base + (t < extra), t * base + min(t, extra), xact_id)
            tokens.append(token)
            transitions += lines
        with conn.cursor().copy(f"copy tokens ({', '.join(TOKEN_COLUMNS)}) from stdin") as cp:
            cp.write("".join(tokens))
        with conn.cursor().copy(f"copy token_state_transitions ({', '.join(ROW_COLUMNS)})"
                                " from stdin") as cp:
            cp.write("".join(transitions))
        n = len(transitions)
    return n


def build_log(dsn: str, rows: int) -> int:
    ntok = max(1, rows // 5)
    batches = [(dsn, lo, min(ntok, lo + TOKENS_PER_BATCH), ntok, rows)
               for lo in range(0, ntok, TOKENS_PER_BATCH)]
    with mp.get_context("fork").Pool(2) as pool:
        loaded = sum(pool.starmap(_load_batch, batches, chunksize=1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select setval(pg_get_serial_sequence('token_state_transitions',"
                     " 'transition_id'), %s)", [rows])
        conn.execute("vacuum (analyze) tokens, token_state_transitions")
    assert loaded == rows, (loaded, rows)
    return ntok


# -- the checkpoint, in moto ---------------------------------------------------------------------
def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def take_checkpoint(dsn: str, endpoint: str, bucket: str):
    from state_service.checkpoints import ensure_bucket
    from state_service.checkpoints import take_checkpoint as take

    s3 = s3_client(endpoint)
    ensure_bucket(s3, bucket)
    return take(dsn, s3, bucket, (KEY_ID, {KEY_ID: KEY}))


# -- the measurements, each in a fresh process ---------------------------------------------------
def run_raw_read(dsn: str, _key: bytes, _store: tuple | None) -> dict:
    rows = 0
    t0 = time.perf_counter()
    with psycopg.connect(dsn, options="-c TimeZone=UTC") as conn:
        with conn.cursor().copy(f"copy ({_ROWS_SQL}) to stdout") as copy:
            for block in copy:
                rows += bytes(block).count(b"\n")
    return {"seconds": time.perf_counter() - t0, "rows": rows, "rss": peak_rss_mib()}


def run_cursor_read(dsn: str, _key: bytes, _store: tuple | None) -> dict:
    """The verifier's own read (named cursor, dict rows, 5000 at a time), rows discarded."""
    from psycopg.rows import dict_row

    rows = 0
    t0 = time.perf_counter()
    with psycopg.connect(dsn, options="-c TimeZone=UTC", row_factory=dict_row) as conn:
        cur = conn.cursor(name="bench_rows")
        cur.itersize = 5000
        cur.execute(_ROWS_SQL)
        for _ in cur:
            rows += 1
    return {"seconds": time.perf_counter() - t0, "rows": rows, "rss": peak_rss_mib()}


def run_verify(dsn: str, key: bytes, store: tuple | None) -> dict:
    """``verify_log``: with ``store`` (endpoint, bucket) against its checkpoints, else the
    database alone (``verify_database``)."""
    from state_service.audit import verify_log

    s3, bucket = (s3_client(store[0]), store[1]) if store else (None, None)
    t0 = time.perf_counter()
    result = verify_log(dsn, {KEY_ID: key}, s3, bucket)
    return {"seconds": time.perf_counter() - t0, "rows": result.rows, "tokens": result.tokens,
            "findings": [str(f) for f in result.findings[:5]], "n_findings": len(result.findings),
            "checkpoints": result.checkpoints, "checkpointed": result.checkpointed_rows,
            "rss": peak_rss_mib()}


def measure(label: str, fn, dsn: str, store: tuple | None) -> dict:
    busy = psutil.cpu_percent(interval=1.0)
    with mp.get_context("spawn").Pool(1) as pool:
        r = pool.apply(fn, (dsn, KEY, store))
    note = f" ({busy:.0f}% CPU busy just before)" if busy > 20 else ""
    print(f"  {label}: {r['seconds']:.2f} s, peak RSS {r['rss']:.0f} MiB{note}")
    return r


def start_moto():
    """moto's S3 in a thread of this process (started after the forked generators are done)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    return moto, f"http://127.0.0.1:{port}"


def bench_size(server, rows: int, checkpoint: bool) -> list[tuple]:
    """Build a log of ``rows`` rows in a database of its own, checkpoint it (unless not),
    measure, drop the database."""
    name = f"tokenwatch_bench_{uuid.uuid4().hex[:8]}"
    dsn = ensure_database(server, name)
    moto = store = None
    try:
        migrate(dsn)
        t0 = time.perf_counter()
        ntok = build_log(dsn, rows)
        print(f"{rows:,} rows of {ntok:,} tokens generated and loaded in "
              f"{time.perf_counter() - t0:.1f} s (database {name})")
        if checkpoint:
            moto, endpoint = start_moto()
            store = (endpoint, f"tokenwatch-bench-{uuid.uuid4().hex[:8]}")  # moto keeps buckets
            t0 = time.perf_counter()
            cp = take_checkpoint(dsn, *store)
            print(f"  checkpoint {cp.seq} of {cp.rows:,} rows taken in "
                  f"{time.perf_counter() - t0:.1f} s")
        run_raw_read(dsn, KEY, None)  # warm-up, untimed: the table in the page cache for all
        runs = [("raw read (baseline)", run_raw_read, None),
                ("read via cursor (reference)", run_cursor_read, None),
                ("verify_database", run_verify, None)]
        if store:
            runs.append(("verify_log + checkpoint", run_verify, store))
        results = [(label, measure(label, fn, dsn, arg)) for label, fn, arg in runs]
    finally:
        if moto:
            moto.stop()
        drop_database(server, name)
    for label, r in results:
        if r["rows"] != rows or r.get("tokens", ntok) != ntok or r.get("n_findings"):
            raise SystemExit(f"FAILED: {label} saw {r['rows']:,} rows, {r.get('tokens')} "
                             f"tokens, {r.get('n_findings')} finding(s) {r.get('findings')}")
        if r.get("checkpoints") and r["checkpointed"] < rows:
            raise SystemExit(f"FAILED: {label} checked {r['checkpointed']:,} checkpointed rows")
    return [(rows, label, r) for label, r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000],
                    help="log sizes to measure, each in a database of its own")
    ap.add_argument("--no-checkpoint", action="store_true",
                    help="skip the checkpoint (and moto): verify_database only")
    args = ap.parse_args()
    server = resolve_server()
    print(f"PostgreSQL: {server.source}; checkpoint: "
          f"{'none' if args.no_checkpoint else 'one, in an in-process moto S3 server'}")
    table = []
    for rows in args.rows:
        table += bench_size(server, rows, not args.no_checkpoint)

    print()
    print(f"{'rows':>12}  {'measurement':30}{'seconds':>9}{'rows/s':>12}{'peak RSS MiB':>14}"
          f"{'ratio':>8}")
    raw = {rows: r for rows, label, r in table if label.startswith("raw")}
    for rows, label, r in table:
        rate = rows / r["seconds"]
        ratio = rate / (rows / raw[rows]["seconds"])
        print(f"{rows:>12,}  {label:30}{r['seconds']:>9.2f}{rate:>12,.0f}{r['rss']:>14.0f}"
              f"{ratio:>8.2f}")
    print("ratio: rows/s over the raw read's rows/s at the same size (same run)")


if __name__ == "__main__":
    main()
