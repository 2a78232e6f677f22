"""Benchmark: loading the transition log from PostgreSQL into a fresh DuckDB file, three ways.

Builds ``token_state_transitions`` (the real schema, via the state service's migrations) with
``--rows`` rows in a throwaway PostgreSQL database, written set-based by ``INSERT ... SELECT
generate_series`` in transactions of 100,000 rows (so the rows carry many distinct xact ids),
then times, in one run and on the same rows:

* ours: ``ingestion.sources.transitions.load_transitions`` into ``DuckDBWarehouse``;
* dlt: ``sql_table(backend="pyarrow", incremental=dlt.sources.incremental("transition_id"))``
  into a ``duckdb`` destination file;
* raw COPY, twice: the binary ``COPY (select ...) TO STDOUT`` that ours has the ADBC driver
  issue (its ORDER BY included), and the same query as CSV; bytes consumed and dropped (the
  ceiling: nothing is decoded or written).

Prints rows, seconds, rows/s and peak RSS per loader, then ``ours/dlt`` (goal >= 3x) and
``ours/raw COPY`` against the faster of the two COPYs (goal >= 0.5). Each measurement runs in
a fresh process (so peak RSS is its own) against a fresh DuckDB file; the row count in DuckDB
must equal the source's.

dlt is not a project dependency: when ``import dlt`` fails, the script installs it into
``.tokenwatch/bench-deps`` (only the packages the venv lacks, ``--no-deps``, resolved against
``requirements.lock``) and *appends* that directory to ``sys.path``, so the venv's pinned
packages (duckdb, pyarrow, sqlalchemy, psycopg, ...) are the ones imported.

    .venv/bin/python bench/ingest.py [--rows 2000000] [--repeat 1] [--keep]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import duckdb
import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.watched import peak_rss_mib  # noqa: E402
from ingestion.sources.transitions import SOURCE_COLUMNS, _arrow_select, _select  # noqa: E402,E501
from state_service.migrate import migrate  # noqa: E402
from tokenwatch.postgres import drop_database, ensure_database, resolve_server  # noqa: E402

SIDE_DEPS = ROOT / ".tokenwatch" / "bench-deps"
# "sql-database" is the extra's normalised name; pip 23 does not match "sql_database" to it
DLT_REQUIREMENT = "dlt[duckdb,sql-database]"
PINNED = ("duckdb", "pyarrow", "sqlalchemy", "psycopg")
BATCH_ROWS = 100_000
TABLE = "token_state_transitions"
GOAL_DLT, GOAL_RAW = 3.0, 0.5


# -- dlt, installed beside the venv on demand --------------------------------------------------
def _forget_dlt() -> None:
    for name in [m for m in sys.modules if m == "dlt" or m.startswith("dlt.")]:
        del sys.modules[name]


def _use_side_deps() -> None:
    """Append (never prepend) the side directory: on any name clash the venv's package wins."""
    if str(SIDE_DEPS) not in sys.path:
        sys.path.append(str(SIDE_DEPS))
    importlib.invalidate_caches()


def _venv_version(name: str) -> str | None:
    """The version of ``name`` installed in the venv itself (the side directory ignored)."""
    paths = [p for p in sys.path if Path(p or ".").resolve() != SIDE_DEPS.resolve()]
    for dist in importlib.metadata.distributions(name=name, path=paths):
        return dist.version
    return None


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          check=False)


def _pip_failure(what: str, proc: subprocess.CompletedProcess) -> SystemExit:
    lines = [ln for ln in proc.stderr.splitlines() if "is ignored" not in ln]
    return SystemExit(f"{what} failed (pip exit {proc.returncode}):\n" + "\n".join(lines[-25:]))


def ensure_dlt() -> str:
    """Make ``import dlt`` work without changing the venv; return how it was found."""
    try:
        import dlt

        return f"dlt {dlt.__version__} from the venv"
    except ImportError:
        _forget_dlt()
    _use_side_deps()
    try:
        import dlt

        return f"dlt {dlt.__version__} from {SIDE_DEPS.relative_to(ROOT)} (installed earlier)"
    except ImportError:
        _forget_dlt()

    # What would pip add to this venv for dlt, holding every package at its locked version?
    lock = ROOT / "requirements.lock"
    proc = _pip("install", "--dry-run", "--quiet", "--report", "-", "-c", str(lock),
                DLT_REQUIREMENT)
    if proc.returncode != 0:
        raise _pip_failure(f"resolving {DLT_REQUIREMENT} against {lock.name}", proc)
    plan = [(i["metadata"]["name"], i["metadata"]["version"])
            for i in json.loads(proc.stdout)["install"]]
    wanted, kept = [], []
    for name, version in plan:
        present = _venv_version(name)
        if present is None:
            wanted.append(f"{name}=={version}")
        else:  # an upgrade of a venv package: never shadow it, the venv's copy stays in use
            kept.append(f"{name} {present} (pip would take {version})")
    clash = [k for k in kept if k.split()[0].lower() in PINNED]
    if clash:
        raise SystemExit(f"dlt needs other versions of pinned packages: {', '.join(clash)}")
    print(f"dlt is not in the venv: installing into {SIDE_DEPS.relative_to(ROOT)} "
          f"(--no-deps, appended to sys.path; pyproject.toml and requirements.lock untouched):\n"
          f"  {' '.join(wanted)}")
    if kept:
        print(f"  left as the venv has them: {'; '.join(kept)}")
    SIDE_DEPS.mkdir(parents=True, exist_ok=True)
    proc = _pip("install", "--quiet", "--no-deps", "--upgrade", "--target", str(SIDE_DEPS),
                *wanted)
    if proc.returncode != 0:
        raise _pip_failure("installing dlt", proc)
    _use_side_deps()
    import dlt

    return f"dlt {dlt.__version__} installed now into {SIDE_DEPS.relative_to(ROOT)}"


# -- the source table --------------------------------------------------------------------------
_STATES = ("array['TokenRequested', 'ProvisionInitiated', 'ProvisionPending', "
           "'ProvisionSuccess', 'WalletActive', 'TokenActive']")


def _to_state(v: str) -> str:
    return (f"case when {v} <= 6 then ({_STATES})[{v}] when mod({v}, 2) = 1 "
            "then 'TokenSuspended' else 'TokenActive' end")


def _from_state(v: str) -> str:
    return (f"case when {v} = 1 then null when {v} <= 6 then ({_STATES})[{v} - 1]"
            f" when mod({v}, 2) = 1 then 'TokenActive' else 'TokenSuspended' end")


_TOKEN_REF = "'tok_' || substr(md5('t' || tok), 1, 24)"
_TOKEN_ATTRS = ("(array['apple_pay', 'google_pay', 'samsung_pay'])[mod(tok, 3) + 1] as wallet_id,"
                " (array['visa', 'mastercard'])[mod(tok, 2) + 1] as network,"
                " (array['secure_element', 'hce', 'card_on_file'])[mod(tok, 3) + 1]"
                " as token_type")


def _hash(expr: str) -> str:
    return f"encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"


TOKENS_SQL = f"""
insert into tokens (token_ref, wallet_id, network, token_type, card_ref, state, version,
                    last_hash, created_at, updated_at)
select token_ref, wallet_id, network, token_type, 'card_' || md5('c' || tok), {_to_state('v')},
       v, {_hash("token_ref || '|' || v")}, timestamptz '2026-01-01 00:00:00+00',
       timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => %(rows)s / 100.0)
from (select tok, {_TOKEN_REF} as token_ref, {_TOKEN_ATTRS},
             %(rows)s / %(ntok)s + case when tok < mod(%(rows)s, %(ntok)s) then 1 else 0 end as v
      from generate_series(0::bigint, %(ntok)s - 1) tok) t
"""

# Row g belongs to token mod(g, ntok) at version g / ntok + 1: a token's versions come in
# order, each batch (transaction) holds a slice of g, and every chain link has its parent.
TRANSITIONS_SQL = f"""
insert into token_state_transitions (
    token_ref, version, event_id, from_state, to_state, actor, reason_code, decision,
    idv_method, wallet_id, network, token_type, occurred_at, recorded_at, request_hash,
    prev_hash, row_hash)
select token_ref, v, md5('e' || g), {_from_state('v')}, {_to_state('v')},
       case when v <= 6 then 'token_service'
            else (array['issuer', 'cardholder', 'wallet', 'system'])[mod(g, 4) + 1] end,
       case when v <= 6 then null
            when mod(v, 2) = 1 then (array['device_lost', 'suspected_fraud'])[mod(g, 2) + 1]
            else (array['device_found', 'not_fraud'])[mod(g, 2) + 1] end,
       case when v = 3 then case when mod(tok, 4) = 0 then 'yellow' else 'green' end end,
       case when v = 3 and mod(tok, 4) = 0
            then (array['otp_sms', 'otp_email', 'call_center', 'issuer_app'])[mod(tok, 16) / 4 + 1]
       end,
       wallet_id, network, token_type, at,
       at + make_interval(secs => (mod(g, 50) + 1) / 1000.0),
       {_hash("'req|' || g")},
       case when v = 1 then repeat('0', 64) else {_hash("token_ref || '|' || (v - 1)")} end,
       {_hash("token_ref || '|' || v")}
from (select g, tok, v, {_TOKEN_REF} as token_ref, {_TOKEN_ATTRS},
             timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => g / 100.0) as at
      from (select g, mod(g, %(ntok)s) as tok, g / %(ntok)s + 1 as v
            from generate_series(%(lo)s::bigint, %(hi)s - 1) g) s) r
"""


def build_source(dsn: str, rows: int) -> int:
    """Fill the transition log with ``rows`` rows; return the count PostgreSQL reports."""
    ntok = max(1, rows // 10)
    # The migration's triggers only refuse UPDATE, DELETE and TRUNCATE: plain INSERTs pass
    # them as they are, so no session_replication_role trickery is needed. One autocommit
    # INSERT per batch gives each batch its own xact_id, as concurrent writers would.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TOKENS_SQL, {"rows": rows, "ntok": ntok})
        for lo in range(0, rows, BATCH_ROWS):
            conn.execute(TRANSITIONS_SQL, {"ntok": ntok, "lo": lo,
                                           "hi": min(rows, lo + BATCH_ROWS)})
        # vacuum sets hint bits and the visibility map now, so the first timed reader does
        # not pay for them; analyze gives the planner real statistics
        conn.execute(f"vacuum (analyze) tokens, {TABLE}")
        n = conn.execute(f"select count(*) from {TABLE}").fetchone()[0]
        xacts = conn.execute(f"select count(distinct xact_id) from {TABLE}").fetchone()[0]
    print(f"source: {n:,} transitions of {ntok:,} tokens in {xacts} transactions")
    return int(n)


def wait_for_xmin(dsn: str, timeout: float = 120.0) -> None:
    """Both readers stop below the cluster's snapshot xmin: wait until it has passed our rows
    (a long transaction elsewhere on the server would otherwise hide some of them)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        top = int(conn.execute(f"select max(xact_id)::text from {TABLE}").fetchone()[0])
        deadline = time.monotonic() + timeout
        while True:
            xmin = int(conn.execute("select pg_snapshot_xmin(pg_current_snapshot())::text"
                                    ).fetchone()[0])
            if xmin > top:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"a transaction older than the benchmark's rows is still open "
                                 f"on the server (xmin {xmin} <= {top}); retry when it ends")
            print(f"waiting for an older open transaction on the server (xmin {xmin})")
            time.sleep(2)


def sqlalchemy_url(dsn: str) -> str:
    from sqlalchemy.engine import URL

    p = conninfo_to_dict(dsn)
    host = str(p.get("host") or "")
    socket_dir = host.startswith("/")
    url = URL.create("postgresql+psycopg", username=p.get("user"), password=p.get("password"),
                     host=None if socket_dir else host or None,
                     port=int(p["port"]) if p.get("port") else None,
                     database=p.get("dbname"), query={"host": host} if socket_dir else {})
    return url.render_as_string(hide_password=False)


# -- the loaders, each run in a fresh process --------------------------------------------------
def _duckdb_count(path: Path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def run_ours(dsn: str, workdir: str) -> dict:
    from ingestion.sources.transitions import load_transitions
    from ingestion.warehouse.duckdb import DuckDBWarehouse

    path = Path(workdir) / "ours.duckdb"
    wh = DuckDBWarehouse(path)
    wh.ensure_schema()
    t0 = time.perf_counter()
    result = load_transitions(dsn, wh)
    wh.close()  # timed: its checkpoint writes (compresses) what the chunks' commits logged
    seconds = time.perf_counter() - t0
    return {"rows": _duckdb_count(path, f"raw.{TABLE}"), "seconds": seconds,
            "read": result.rows_read, "rss": peak_rss_mib(), "bytes": path.stat().st_size}


def run_dlt(url: str, workdir: str) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    _use_side_deps()
    import dlt
    from dlt.sources.sql_database import sql_table
    from sqlalchemy import Text, exc
    from sqlalchemy.types import NullType

    # SQLAlchemy does not know xid8: say it is text (psycopg hands it over as str) rather
    # than let both libraries warn about it; ours reads it as text too, then parses it
    warnings.filterwarnings("ignore", "Did not recognize type 'xid8'", exc.SAWarning)
    path = Path(workdir) / "dlt.duckdb"
    source = sql_table(credentials=url, table=TABLE, backend="pyarrow",
                       incremental=dlt.sources.incremental("transition_id"),
                       included_columns=SOURCE_COLUMNS,
                       type_adapter_callback=lambda t: Text if isinstance(t, NullType) else t)
    pipeline = dlt.pipeline(pipeline_name="tokenwatch_bench_ingest",
                            destination=dlt.destinations.duckdb(str(path)),
                            dataset_name="raw", pipelines_dir=str(Path(workdir) / "dlt"))
    t0 = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - t0
    return {"rows": _duckdb_count(path, f"raw.{TABLE}"), "seconds": seconds,
            "rss": peak_rss_mib(), "bytes": path.stat().st_size}


def run_raw_copy(dsn: str, workdir: str, fmt: str = "binary") -> dict:
    """What ours has PostgreSQL send, minus everything after the socket: same snapshot, query
    and (``binary``) format; ``csv`` is the text COPY of the same rows."""
    t0 = time.perf_counter()
    rows = nbytes = 0
    with psycopg.connect(dsn) as src:
        src.execute("set transaction isolation level repeatable read")
        src.execute("set transaction read only")
        src.execute("set timezone = 'UTC'")
        xmin = src.execute("select pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()[0]
        if fmt == "binary":
            sql, params = f"copy ({_arrow_select(0, int(xmin))}) to stdout (format binary)", None
        else:
            sql, params = f"copy ({_select(SOURCE_COLUMNS)}) to stdout (format csv)", ["0", xmin]
        with src.cursor().copy(sql, params) as copy:
            for block in copy:  # one CopyData message per row, in either format
                nbytes += len(block)
                rows += 1
    if fmt == "binary":
        rows -= 1  # PostgreSQL sends the header with the first row, the trailer on its own
    seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": seconds, "rss": peak_rss_mib(), "bytes": nbytes}


def run_raw_csv(dsn: str, workdir: str) -> dict:
    return run_raw_copy(dsn, workdir, "csv")


def idle_check() -> float:
    """CPU use (%, all cores) over one second while the benchmark itself does nothing: other
    work on this machine makes every figure noisy."""
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 20:
        print(f"  note: {busy:.0f}% CPU in use by other processes just before this run")
    return busy


def measure(fn, arg: str, repeat: int, expected: int, label: str) -> dict:
    best: dict | None = None
    peak = 0.0
    for i in range(repeat):
        idle_check()
        workdir = tempfile.mkdtemp(prefix="tokenwatch-bench-ingest-")
        try:
            with mp.get_context("spawn").Pool(1) as pool:
                r = pool.apply(fn, (arg, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if r["rows"] != expected:
            raise SystemExit(f"FAILED: {label} left {r['rows']:,} rows, the source has "
                             f"{expected:,}")
        print(f"  {label} run {i + 1}/{repeat}: {r['seconds']:.2f} s, "
              f"peak RSS {r['rss']:.0f} MiB")
        peak = max(peak, r["rss"])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    assert best is not None
    return best | {"rss": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="transitions to generate")
    ap.add_argument("--repeat", type=int, default=1, help="runs per loader; the best is shown")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = ap.parse_args()
    if args.rows < 1 or args.repeat < 1:
        ap.error("--rows and --repeat must be at least 1")
    started = time.perf_counter()
    how_dlt = ensure_dlt()

    server = resolve_server()
    name = f"tokenwatch_bench_{uuid.uuid4().hex[:8]}"
    dsn = ensure_database(server, name)
    try:
        migrate(dsn)
        t0 = time.perf_counter()
        expected = build_source(dsn, args.rows)
        print(f"PostgreSQL: {server.source}, database {name}; built in "
              f"{time.perf_counter() - t0:.1f} s; {how_dlt}")
        wait_for_xmin(dsn)
        run_raw_copy(dsn, "")  # warm-up, untimed: the table is in the page cache for everyone
        results = {
            "raw COPY binary": measure(run_raw_copy, dsn, args.repeat, expected,
                                       "raw COPY binary"),
            "raw COPY csv": measure(run_raw_csv, dsn, args.repeat, expected, "raw COPY csv"),
            "ours: load_transitions": measure(run_ours, dsn, args.repeat, expected, "ours"),
            "dlt sql_table pyarrow": measure(run_dlt, sqlalchemy_url(dsn), args.repeat,
                                             expected, "dlt"),
        }
    finally:
        if args.keep:
            print(f"kept database {name}: {dsn}")
        else:
            drop_database(server, name)

    print()
    print(f"{'loader':26}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS MiB':>14}")
    for label, r in results.items():
        print(f"{label:26}{r['rows']:>12,}{r['seconds']:>10.2f}{r['rows'] / r['seconds']:>12,.0f}"
              f"{r['rss']:>14.0f}")
    rate = {k: r["rows"] / r["seconds"] for k, r in results.items()}
    ours = rate["ours: load_transitions"]
    vs_dlt = ours / rate["dlt sql_table pyarrow"]
    vs_raw = ours / max(rate["raw COPY binary"], rate["raw COPY csv"])
    print(f"ours/dlt:      {vs_dlt:5.2f}x  (goal >= {GOAL_DLT:.1f}x)  "
          f"{'met' if vs_dlt >= GOAL_DLT else 'NOT met'}")
    print(f"ours/raw COPY: {vs_raw:5.2f}   (goal >= {GOAL_RAW:.1f}, the faster COPY)   "
          f"{'met' if vs_raw >= GOAL_RAW else 'NOT met'}")
    print(f"peak RSS of this driver process {peak_rss_mib():.0f} MiB; "
          f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
