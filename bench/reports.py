"""Benchmark: the reports API over HTTP against DuckDB running the same SQL by hand, in one run.

Two cases, each ``--requests`` times after a warm-up, through a live server (uvicorn in a
thread, one keep-alive HTTP client, a report key, the access log on):

1. a day x wallet metric query: ``api_requests`` and ``provision_success_rate`` by wallet at
   metric_time day, for one day (``start``/``end``); by hand: the SQL the semantic layer
   compiles for it, on a DuckDB connection of its own to the same file;
2. a token's timeline: by hand, the same four statements (two on PostgreSQL, two on DuckDB).

The warehouse is ``--warehouse PATH`` (a DuckDB file built by dbt, e.g. ``bench/transform.py
--keep``'s 1M-token one; it is only read) or, without one, a small one built here with
bench/transform.py's generator and ``dbt run`` (``--tokens``, default 20,000). The state
service's database for timelines is a PostgreSQL database of this run's own (the project's
resolved server), holding ``--sample`` of the warehouse's tokens with their transitions:
indexed lookups, so its size barely matters; the warehouse side scans the marts.

Prints p50 and p99 (ms) of each, the ratio API / by hand, and the goals (p99 <= 100 ms,
overhead <= 1.5x).

    .venv/bin/python bench/reports.py [--warehouse PATH] [--tokens 20000] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.transform import dbt, generate  # noqa: E402
from ingestion.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from reporting import semantic  # noqa: E402
from reporting.api import relations  # noqa: E402
from reporting.api.access_log import AccessLog  # noqa: E402
from reporting.api.app import create_app  # noqa: E402
from reporting.api.readers import DuckDBReader  # noqa: E402
from reporting.api.timeline import EVENTS, HISTORY, LIVE, SPANS, StateSource  # noqa: E402
from state_service import roles  # noqa: E402
from state_service.migrate import migrate  # noqa: E402
from state_service.server import ServiceThread  # noqa: E402
from tokenwatch.postgres import drop_database, ensure_database, resolve_server  # noqa: E402

METRICS = ("api_requests", "provision_success_rate")


def build_small(workdir: Path, tokens: int, days: int) -> Path:
    path = workdir / "warehouse.duckdb"
    env = {**os.environ, "TOKENWATCH_DUCKDB_PATH": str(path), "TOKENWATCH_DBT_THREADS": "4",
           "DBT_TARGET_PATH": str(workdir / "target"), "DBT_LOG_PATH": str(workdir / "logs"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    wh = DuckDBWarehouse(path)
    wh.ensure_schema()
    wh.close()
    started = time.perf_counter()
    generate(path, 0, tokens, days, datetime.now(UTC) - timedelta(days=1))
    dbt(["seed"], env, workdir / "seed.log")
    dbt(["run"], env, workdir / "run.log")
    print(f"built a small warehouse of {tokens:,} tokens over {days} days in "
          f"{time.perf_counter() - started:.0f} s (no --warehouse given)")
    return path


def busiest_day(con) -> str:
    (day,), = con.execute(f"select cast(requested_at as date) d from "
                          f"{relations.relation('fct_api_requests')} group by d "
                          "order by count(*) desc limit 1").fetchall()
    return str(day)


def load_state(path: Path, sample: int) -> tuple[str, str, list[str]]:
    """A state-service database holding ``sample`` tokens of the warehouse, as the service
    would have them. Returns (admin dsn, database, token_refs)."""
    server = resolve_server()
    database = f"tokenwatch_bench_reports_{uuid.uuid4().hex[:8]}"
    dsn = ensure_database(server, database)
    migrate(dsn)
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("set timezone = 'UTC'")
        refs = [r for (r,) in con.execute(
            "select token_ref from raw.token_state_transitions group by token_ref "
            f"order by hash(token_ref) limit {int(sample)}").fetchall()]
        rows = con.execute(
            "select token_ref, version, event_id, from_state, to_state, actor, reason_code, "
            "decision, idv_method, wallet_id, network, token_type, occurred_at, recorded_at, "
            "prev_hash, row_hash from raw.token_state_transitions "
            "where token_ref in (select unnest(?)) order by token_ref, version",
            [refs]).fetchall()
    finally:
        con.close()
    import psycopg

    with psycopg.connect(dsn) as conn:
        by_token: dict[str, list[tuple]] = {}
        for row in rows:
            by_token.setdefault(row[0], []).append(row)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into tokens (token_ref, wallet_id, network, token_type, card_ref, state,"
                " version, last_hash, created_at, updated_at) values "
                "(%s, %s, %s, %s, 'bench-card-ref', %s, %s, %s, %s, %s)",
                [(ref, t[0][9], t[0][10], t[0][11], t[-1][4], t[-1][1], t[-1][15], t[0][12],
                  t[-1][13]) for ref, t in by_token.items()])
            cur.executemany(
                "insert into token_state_transitions (token_ref, version, event_id, from_state,"
                " to_state, actor, reason_code, decision, idv_method, wallet_id, network, "
                "token_type, occurred_at, recorded_at, request_hash, prev_hash, row_hash) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(*r[:14], r[15], r[14], r[15]) for r in rows])
    return dsn, database, list(by_token)


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), qs[98]


def timed(fn, n: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, help="a DuckDB file built by dbt (read only)")
    parser.add_argument("--tokens", type=int, default=20_000, help="tokens of the small build")
    parser.add_argument("--days", type=int, default=3, help="days of the small build")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sample", type=int, default=200,
                        help="tokens copied into the state database for timelines")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="tokenwatch-bench-reports-"))
    database = None
    try:
        path = args.warehouse.resolve() if args.warehouse else build_small(
            workdir, args.tokens, args.days)
        layer = semantic.for_engine("duckdb")
        admin_dsn, database, refs = load_state(path, args.sample)
        state_dsn = roles.role_dsn(admin_dsn, roles.READER)
        key = uuid.uuid4().hex
        log = AccessLog(lambda: DuckDBWarehouse(workdir / "reports-access.duckdb"),
                        close_after_idle_s=2.0)
        hand = duckdb.connect(":memory:")
        hand.execute(f"attach '{path}' as warehouse (read_only)")
        hand.execute("use warehouse")
        hand.execute("set timezone = 'UTC'")
        day = busiest_day(hand)
        end = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
        print(f"warehouse {path} ({path.stat().st_size / 2**20:,.0f} MB), day {day}, "
              f"{args.requests} requests a case")
        app = create_app(reader=DuckDBReader(path, 10), layer=layer, keys={"bench": key},
                         state=StateSource(state_dsn, 10), access_log=log, max_rows=10_000)
        results = []
        with ServiceThread(app) as svc, httpx.Client(
                base_url=svc.url, headers={"Authorization": f"Bearer {key}"},
                timeout=30) as client:
            for metric in METRICS:
                params = {"metrics": metric, "group_by": "wallet,metric_time", "grain": "day",
                          "start": day, "end": end}
                query = semantic.Query(metrics=(metric,), group_by=("wallet", "metric_time"),
                                       start=datetime.fromisoformat(day).date(),
                                       end=datetime.fromisoformat(end).date())
                sql = layer.compile(query, limit=1001).sql

                def api(params=params):
                    r = client.get("/v1/query", params=params)
                    assert r.status_code == 200 and r.json()["rows"], r.text

                def by_hand(sql=sql):
                    assert hand.execute(sql).fetchall()

                results.append((f"{metric} by wallet, one day", timed(api, args.requests),
                                timed(by_hand, args.requests)))
            import psycopg

            pg = psycopg.connect(state_dsn, autocommit=True)
            spans_sql = (f"select {', '.join(SPANS)} from "
                         f"{relations.relation('fct_token_state_spans')} where token_ref = ? "
                         "order by entered_at, state_visit_number")
            events_sql = (f"select {', '.join(EVENTS)} from "
                          f"{relations.relation('fct_wallet_events')} where token_ref = ? "
                          "order by event_time, event_id limit 10001")
            turn = iter(range(10**9))

            def api_timeline():
                ref = refs[next(turn) % len(refs)]
                r = client.get(f"/v1/tokens/{ref}/timeline")
                assert r.status_code == 200, r.text

            def hand_timeline():
                ref = refs[next(turn) % len(refs)]
                pg.execute(f"select {', '.join(LIVE)} from tokens where token_ref = %s",
                           [ref]).fetchone()
                pg.execute(f"select {', '.join(HISTORY)} from token_state_transitions "
                           "where token_ref = %s order by version", [ref]).fetchall()
                hand.execute(spans_sql, [ref]).fetchall()
                hand.execute(events_sql, [ref]).fetchall()

            results.append(("token timeline", timed(api_timeline, args.requests),
                            timed(hand_timeline, args.requests)))
            pg.close()
        hand.close()
        print()
        print(f"{'case':<42} {'API p50':>8} {'API p99':>8} {'hand p50':>9} {'hand p99':>9} "
              f"{'x p50':>6} {'x p99':>6}")
        ok = True
        for name, api_ms, hand_ms in results:
            a50, a99 = percentiles(api_ms)
            h50, h99 = percentiles(hand_ms)
            print(f"{name:<42} {a50:8.1f} {a99:8.1f} {h50:9.1f} {h99:9.1f} {a50 / h50:6.2f} "
                  f"{a99 / h99:6.2f}")
            ok &= a99 <= 100 and a50 / h50 <= 1.5
        print("\ngoals: API p99 <= 100 ms, overhead (API / by hand, p50) <= 1.5x: "
              + ("met" if ok else "NOT met"))
    finally:
        if database:
            drop_database(resolve_server(), database)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
