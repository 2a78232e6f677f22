"""Benchmark: the dbt project on DuckDB at scale, full build versus incremental run.

Generates a raw layer for ``--tokens`` tokens (default 1,000,000) straight into a fresh DuckDB
file with SQL (no HTTP, no simulator): every token's transitions with a valid hash chain
(state_service/chain.py's canonical row and sha256), its wallet events (provisioning calls,
ID&V, authorisations, lifecycle notices), API Gateway and Lambda log records and some
quarantined lines. Then, each dbt command in a fresh process:

1. ``dbt seed`` (not timed) and ``dbt run`` over everything: the full build;
2. 1% more tokens (all their rows, loaded a day later) and suspensions of 1% of the
   existing tokens (late transitions for old tokens), then ``dbt run`` again: the
   incremental run (incremental models read only the loads committed since their last run:
   raw._loads, numbered in commit order);
3. optionally (``--with-tests``) ``dbt build`` once more, to time the data tests too.

Prints the raw row counts, full and incremental seconds, their ratio (goal <= 0.1) and the peak
RSS of each dbt process (goal <= 4 GiB; DuckDB's own memory is in it, capped by the profile's
memory_limit, TOKENWATCH_DUCKDB_MEMORY_LIMIT). With several sizes (``--tokens 0.25M,1M,4M``)
it ends with the scaling row: the full build's time per transition at each size, against the
first (flat is the goal).

    .venv/bin/python bench/transform.py [--tokens 1000000 | 0.25M,1M,4M] [--days 7]
        [--threads 2] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.watched import run_watched  # noqa: E402
from ingestion.warehouse.duckdb import DuckDBWarehouse  # noqa: E402

PROJECT_DIR = ROOT / "dbt_project"
GENESIS = "0" * 64
START = datetime(2026, 10, 1, tzinfo=UTC)


def _u(key: str) -> str:
    """A uniform [0, 1) number per token and key, deterministic."""
    return f"((hash(i, '{key}') % 1000003) / 1000003.0)"


def _tokens_sql(lo: int, hi: int, days: int) -> str:
    seconds = days * 86400
    return f"""
    create or replace temp table bench_tokens as
    select
        i,
        'tok-b-' || lpad(cast(i as varchar), 8, '0') as token_ref,
        case when {_u('w')} < 0.42 then 'apple_pay' when {_u('w')} < 0.75 then 'google_pay'
             when {_u('w')} < 0.92 then 'samsung_pay' else 'acme_wallet' end as wallet_id,
        case when {_u('n')} < 0.6 then 'visa' else 'mastercard' end as network,
        case when {_u('t')} < 0.5 then 'secure_element' when {_u('t')} < 0.85 then 'hce'
             else 'card_on_file' end as token_type,
        timestamptz '{START.isoformat()}' + to_microseconds(
            cast({_u('start')} * {seconds} * 1000000 as bigint)) as t0,
        case when {_u('d')} < 0.78 then 'green' when {_u('d')} < 0.94 then 'yellow'
             else 'red' end as decision,
        {_u('y')} < 0.75 as idv_passes,
        {_u('s')} < 0.05 as suspends,
        {_u('r')} < 0.7 as resumes,
        {_u('o')} < 0.15 as resumed_by_other,
        {_u('x')} < 0.02 as deactivates,
        cast(floor({_u('k')} * 4) as integer) as uses,
        {_u('retry')} < 0.03 as retried
    from range({lo}, {hi}) as r(i)
    """


def _transitions_sql(loaded_at: datetime) -> str:
    """Every token's path through the lifecycle, as rows without hashes yet."""
    ok = "(decision = 'green' or (decision = 'yellow' and idv_passes))"
    # (version, from_state, to_state, actor, reason_code, decision, idv_method, offset, where)
    steps = [
        ("1", "null", "'TokenRequested'", "'wallet'", "null", "null", "null", "0", "true"),
        ("2", "'TokenRequested'", "'ProvisionInitiated'", "'wallet'", "null", "null", "null",
         "500000", "true"),
        ("3", "'ProvisionInitiated'", "'ProvisionPending'", "'token_service'", "null",
         "decision", "case when decision = 'yellow' then 'otp_sms' end", "1000000", "true"),
        ("4", "'ProvisionPending'",
         f"case when {ok} then 'ProvisionSuccess' else 'ProvisionFailed' end",
         "case when decision = 'red' then 'token_service' else 'issuer' end",
         "case when decision = 'red' then 'risk_declined' "
         "when decision = 'yellow' and not idv_passes then 'idv_failed' end", "null", "null",
         "case when decision = 'yellow' then 240000000 else 2000000 end", "true"),
        ("5", "'ProvisionSuccess'", "'WalletActive'", "'wallet'", "null", "null", "null",
         "case when decision = 'yellow' then 250000000 else 8000000 end", ok),
        ("6", "'WalletActive'", "'TokenActive'", "'token_service'", "null", "null", "null",
         "case when decision = 'yellow' then 300000000 else 60000000 end", ok),
        ("7", "'TokenActive'",
         "case when suspends then 'TokenSuspended' else 'TokenDeactivated' end",
         "case when suspends then 'cardholder' else 'wallet' end",
         "case when suspends then 'device_lost' else 'wallet_removed' end", "null", "null",
         "86400000000", f"{ok} and (suspends or deactivates)"),
        ("8", "'TokenSuspended'", "'TokenActive'",
         "case when resumed_by_other then 'issuer' else 'cardholder' end", "'device_found'",
         "null", "null", "97200000000", f"{ok} and suspends and resumes"),
    ]
    selects = [
        f"select token_ref, {v} as version, cast({f} as varchar) as from_state, "
        f"cast({t} as varchar) as to_state, cast({a} as varchar) as actor, "
        f"cast({r} as varchar) as reason_code, cast({d} as varchar) as decision, "
        f"cast({m} as varchar) as idv_method, t0 + to_microseconds({o}) as occurred_at, "
        f"wallet_id, network, token_type from bench_tokens where {w}"
        for v, f, t, a, r, d, m, o, w in steps]
    union = "\n        union all\n        ".join(selects)
    return f"""
    create or replace temp table bench_steps as
    select
        token_ref, version, 'ev-' || token_ref || '-' || version as event_id, from_state,
        to_state, actor, reason_code, decision, idv_method, wallet_id, network, token_type,
        occurred_at, occurred_at + interval 40 millisecond as recorded_at,
        timestamptz '{loaded_at.isoformat()}' as _loaded_at
    from ({union}) as s
    """


def _canonical(alias: str) -> str:
    def ts(col: str) -> str:
        return f"strftime({alias}.{col} at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"

    parts = [f"{alias}.token_ref", f"cast({alias}.version as varchar)", f"{alias}.event_id",
             f"coalesce({alias}.from_state, '')", f"{alias}.to_state", f"{alias}.actor",
             f"coalesce({alias}.reason_code, '')", f"coalesce({alias}.decision, '')",
             f"coalesce({alias}.idv_method, '')", f"{alias}.wallet_id", f"{alias}.network",
             f"{alias}.token_type", ts("occurred_at"), ts("recorded_at"), "prev"]
    return " || '|' || ".join(parts)


def _chain(con: duckdb.DuckDBPyConnection) -> None:
    """Fill prev_hash and row_hash version by version (each row hashes its predecessor's)."""
    con.execute("create or replace temp table bench_hashes "
                "(token_ref varchar, version integer, prev_hash varchar, row_hash varchar)")
    max_version = con.execute("select max(version) from bench_steps").fetchone()[0]
    for v in range(1, max_version + 1):
        prev = (f"'{GENESIS}'" if v == 1 else "h.row_hash")
        join = ("" if v == 1 else
                f"join bench_hashes h on h.token_ref = s.token_ref and h.version = {v - 1}")
        con.execute(f"""
            insert into bench_hashes
            select s.token_ref, s.version, prev, sha256({_canonical('s')})
            from (select *, {prev} as prev from bench_steps s {join}
                  where s.version = {v}) as s""")


def _insert_transitions(con: duckdb.DuckDBPyConnection) -> None:
    offset = con.execute("select coalesce(max(transition_id), 0) "
                         "from raw.token_state_transitions").fetchone()[0]
    con.execute(f"""
        insert into raw.token_state_transitions
        select {offset} + row_number() over (order by s.recorded_at, s.token_ref, s.version)
                   as transition_id,
               s.token_ref, s.version, s.event_id, s.from_state, s.to_state, s.actor,
               s.reason_code, s.decision, s.idv_method, s.wallet_id, s.network, s.token_type,
               s.occurred_at, s.recorded_at,
               {offset} + row_number() over (order by s.recorded_at, s.token_ref, s.version),
               h.prev_hash, h.row_hash, s._loaded_at, null
        from bench_steps s
        join bench_hashes h on h.token_ref = s.token_ref and h.version = s.version""")
    con.execute("update raw.token_state_transitions "
                "set _source_location = 'pg:token_state_transitions/' || transition_id "
                "where _source_location is null")


def _events_sql(loaded_at: datetime, days: int) -> str:
    seconds = days * 86400
    base = ("select token_ref, wallet_id, network, token_type, decision, t0, i, uses, "
            "idv_passes, suspends from bench_tokens")
    return f"""
    insert into raw.wallet_events
    select event_id, event_type, event_time, wallet_id, token_ref, 1, request_id, network,
           token_type, latency_ms, http_status, decision, error_code, idv_method, outcome,
           amount, currency, merchant_category, new_state, reason_code, actor, null,
           'shardId-00000000000' || cast(hash(token_ref) % 4 as varchar),
           cast(row_number() over () as varchar), event_time + interval 2 second,
           timestamptz '{loaded_at.isoformat()}', 'kinesis:bench/' || event_id
    from (
        select 'pr-' || token_ref as event_id, 'provision_request' as event_type,
               t0 as event_time, wallet_id, token_ref, 'rq-' || token_ref as request_id,
               network, token_type, null::double as latency_ms, null::integer as http_status,
               null as decision, null as error_code, null as idv_method, null as outcome,
               null::double as amount, null as currency, null as merchant_category,
               null as new_state, null as reason_code, null as actor
        from ({base})
        union all
        select 'ps-' || token_ref, 'provision_response', t0 + interval 400 millisecond,
               wallet_id, token_ref, 'rq-' || token_ref, null, null,
               100 + {_u('lat')} * 900, 200, decision, null, null, null, null, null, null,
               null, null, null
        from ({base})
        union all
        select 'ic-' || token_ref, 'idv_challenge', t0 + interval 5 second, wallet_id,
               token_ref, null, null, null, null, null, null, null, 'otp_sms', null, null,
               null, null, null, null, null
        from ({base}) where decision = 'yellow'
        union all
        select 'ir-' || token_ref, 'idv_result', t0 + interval 230 second, wallet_id,
               token_ref, null, null, null, null, null, null, null, 'otp_sms',
               case when idv_passes then 'pass' else 'fail' end, null, null, null, null,
               null, null
        from ({base}) where decision = 'yellow'
        union all
        select 'tu-' || token_ref || '-' || cast(k as varchar), 'token_used',
               t0 + interval 2 hour + to_microseconds(cast(
                   ((hash(i, k) % 1000003) / 1000003.0) * {seconds} * 1000000 as bigint)),
               wallet_id, token_ref, null, null, null, null, null, null, null, null, null,
               round(5 + ((hash(i, k, 'a') % 1000003) / 1000003.0) * 80, 2),
               case when hash(i, k, 'c') % 10 < 7 then 'USD' else 'EUR' end, '5411',
               null, null, null
        from ({base}), range(3) as ks(k)
        where k < uses and (decision = 'green' or (decision = 'yellow' and idv_passes))
        union all
        select 'ln-' || token_ref, 'lifecycle_notice', t0 + interval 1 day, wallet_id,
               token_ref, null, null, null, null, null, null, null, null, null, null, null,
               null, 'TokenSuspended', 'device_lost', 'cardholder'
        from ({base})
        where suspends and (decision = 'green' or (decision = 'yellow' and idv_passes))
    ) as e
    """


def _logs_sql(loaded_at: datetime) -> list[str]:
    base = "select token_ref, wallet_id, decision, t0, i from bench_tokens"
    calls = f"""
        select 'rq-' || token_ref as request_id, t0 as request_time,
               'POST /v1/provision' as route, 200 as status,
               100 + {_u('lat')} * 900 as latency_ms, wallet_id
        from ({base})
        union all
        select 'idv-' || token_ref, t0 + interval 5 second, 'POST /v1/idv/challenge',
               case when {_u('e')} < 0.01 then 503 else 200 end, 80 + {_u('lat2')} * 300,
               wallet_id
        from ({base}) where decision = 'yellow'
    """
    stamp = f"timestamptz '{loaded_at.isoformat()}'"
    return [
        f"""insert into raw.apigw_logs
            select request_id, request_time, route, status, latency_ms, latency_ms * 0.8,
                   wallet_id, null, {stamp}, 's3://bench/apigw/' || request_id || '#1'
            from ({calls})""",
        f"""insert into raw.lambda_logs
            select request_id, request_time, 'tokenwatch-provision', latency_ms * 0.75,
                   ceil(latency_ms * 0.75), 512, 200,
                   case when status >= 500 then 'InternalError' end, null, {stamp},
                   's3://bench/lambda/' || request_id || '#1'
            from ({calls})""",
        f"""insert into raw.quarantine
            select 'apigw_logs', 's3://bench/apigw/bad-' || token_ref || '#1',
                   '{{"request_id": 12345}}', 'field ''request_id'' must be text, got int',
                   {stamp}
            from bench_tokens where i % 1000 = 0""",
    ]


def generate(path: Path, lo: int, hi: int, days: int, loaded_at: datetime,
             suspend_existing: int = 0) -> None:
    """Raw rows for tokens [lo, hi) (and late suspensions of ``suspend_existing`` old ones)."""
    con = duckdb.connect(str(path))
    try:
        con.execute("set timezone = 'UTC'")
        con.execute(_tokens_sql(lo, hi, days))
        con.execute(_transitions_sql(loaded_at))
        _chain(con)
        _insert_transitions(con)
        con.execute(_events_sql(loaded_at, days))
        for sql in _logs_sql(loaded_at):
            con.execute(sql)
        if suspend_existing:
            _late_suspensions(con, suspend_existing, loaded_at)
        con.execute("checkpoint")
    finally:
        con.close()


def _late_suspensions(con: duckdb.DuckDBPyConnection, count: int, loaded_at: datetime) -> None:
    """Late data for old tokens: active tokens get suspended (a new version on their chain)."""
    con.execute(f"""
        create or replace temp table bench_steps as
        select t.token_ref, t.version + 1 as version,
               'late-' || t.token_ref || '-' || (t.version + 1) as event_id,
               'TokenActive' as from_state, 'TokenSuspended' as to_state, 'issuer' as actor,
               'suspected_fraud' as reason_code, null as decision, null as idv_method,
               t.wallet_id, t.network, t.token_type,
               t.occurred_at + interval 2 day as occurred_at,
               t.occurred_at + interval 2 day + interval 40 millisecond as recorded_at,
               timestamptz '{loaded_at.isoformat()}' as _loaded_at, t.row_hash as prev
        from raw.token_state_transitions t
        where t.to_state = 'TokenActive' and t.version = 6
            and not exists (select 1 from raw.token_state_transitions n
                            where n.token_ref = t.token_ref and n.version = 7)
        order by t.token_ref
        limit {count}""")
    con.execute(f"""
        create or replace temp table bench_hashes as
        select s.token_ref, s.version, s.prev as prev_hash, sha256({_canonical('s')}) as row_hash
        from bench_steps s""")
    con.execute("alter table bench_steps drop column prev")
    _insert_transitions(con)


def dbt(args: list[str], env: dict[str, str], log: Path) -> tuple[float, int]:
    """Run dbt in a fresh process; (seconds, peak RSS in MB of that process, sampled)."""
    cmd = [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(PROJECT_DIR),
           "--profiles-dir", str(PROJECT_DIR), "--target", "local"]
    with log.open("w") as out:
        seconds, peak, proc = run_watched(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{tail}")
    return seconds, peak


def slowest(target: Path, n: int = 5) -> str:
    """The ``n`` slowest models of the last dbt run, from its run_results.json."""
    import json

    results = json.loads((target / "run_results.json").read_text())["results"]
    top = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:n]
    return ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f} s" for r in top)


def counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0]
                for t in ("token_state_transitions", "wallet_events", "apigw_logs",
                          "lambda_logs", "quarantine")}


def register_loads(path: Path) -> None:
    """Number the rows' new ``_loaded_at`` stamps in ``raw._loads``, as ingestion does as a
    load's last step (ingestion/warehouse/base.py): the incremental models read by it."""
    con = duckdb.connect(str(path))
    try:
        for table in ("token_state_transitions", "wallet_events", "apigw_logs", "lambda_logs",
                      "quarantine"):
            con.execute("update raw._load_counter set last_seq = last_seq + 1")
            con.execute(f"""
                insert into raw._loads
                select (select last_seq from raw._load_counter), '{table}', _loaded_at,
                       count(*), now()
                from raw.{table}
                where _loaded_at not in (select loaded_at from raw._loads
                                         where table_name = '{table}')
                group by _loaded_at""")
    finally:
        con.close()


GOAL_RATIO, GOAL_RSS_MB = 0.1, 4096


def measure(tokens: int, days: int, threads: int, with_tests: bool, keep: bool) -> dict:
    """One size: generate, full build, +1% and late suspensions, incremental run."""
    workdir = Path(tempfile.mkdtemp(prefix="tokenwatch-bench-transform-"))
    path = workdir / "warehouse.duckdb"
    env = {**os.environ, "TOKENWATCH_DUCKDB_PATH": str(path),
           "TOKENWATCH_DBT_THREADS": str(threads), "DBT_TARGET_PATH": str(workdir / "target"),
           "DBT_LOG_PATH": str(workdir / "logs"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        wh = DuckDBWarehouse(path)
        wh.ensure_schema()
        wh.close()
        # two loads a day apart, each numbered in raw._loads as ingestion numbers them
        loaded = datetime.now(UTC) - timedelta(days=2)
        started = time.perf_counter()
        generate(path, 0, tokens, days, loaded)
        register_loads(path)
        raw = counts(path)
        print(f"generated {tokens:,} tokens in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{t} {n:,}" for t, n in raw.items()), flush=True)

        dbt(["seed"], env, workdir / "seed.log")
        full, full_rss = dbt(["run"], env, workdir / "full.log")
        print(f"full build (dbt run):        {full:8.1f} s   peak RSS {full_rss:,} MB")
        print(f"  slowest: {slowest(workdir / 'target')}", flush=True)

        extra = max(1, tokens // 100)
        generate(path, tokens, tokens + extra, days,
                 loaded + timedelta(days=1), suspend_existing=extra)
        register_loads(path)
        print(f"added {extra:,} tokens and {extra:,} late suspensions: "
              + ", ".join(f"{t} {n:,}" for t, n in counts(path).items()))
        incremental, inc_rss = dbt(["run"], env, workdir / "incremental.log")
        print(f"incremental run (dbt run):   {incremental:8.1f} s   peak RSS {inc_rss:,} MB")
        print(f"  slowest: {slowest(workdir / 'target')}")
        print(f"incremental / full:          {incremental / full:8.3f}   (goal <= {GOAL_RATIO})",
              flush=True)
        if with_tests:
            build, build_rss = dbt(["build"], env, workdir / "build.log")
            print(f"dbt build (models + tests):  {build:8.1f} s   peak RSS {build_rss:,} MB")
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"tokens": tokens, "transitions": raw["token_state_transitions"], "full": full,
            "full_rss": full_rss, "incremental": incremental, "inc_rss": inc_rss}


def _sizes(text: str) -> list[int]:
    sizes = [int(float(part.strip().rstrip("Mm")) * (1_000_000 if part.strip()[-1:] in "Mm"
                                                     else 1)) for part in text.split(",")]
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(
            "token counts of at least 100, e.g. 1000000 or 0.25M,1M,4M")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=_sizes, default=[1_000_000],
                        help="tokens, or a comma-separated list for the scaling row "
                             "(0.25M,1M,4M)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--with-tests", action="store_true", help="also time dbt build")
    parser.add_argument("--keep", action="store_true", help="keep the DuckDB file")
    args = parser.parse_args(argv)

    rows = []
    for tokens in args.tokens:
        print(f"== {tokens:,} tokens ==", flush=True)
        rows.append(measure(tokens, args.days, args.threads, args.with_tests, args.keep))
    print()
    print(f"{'tokens':>10}{'transitions':>13}{'full s':>9}{'us/transition':>15}{'vs first':>10}"
          f"{'incr s':>9}{'incr/full':>11}{'full RSS MB':>13}{'incr RSS MB':>13}")
    base = rows[0]["full"] / rows[0]["transitions"]
    for r in rows:
        per = r["full"] / r["transitions"]
        print(f"{r['tokens']:>10,}{r['transitions']:>13,}{r['full']:>9.1f}{per * 1e6:>15.1f}"
              f"{per / base:>10.2f}{r['incremental']:>9.1f}{r['incremental'] / r['full']:>11.3f}"
              f"{r['full_rss']:>13,}{r['inc_rss']:>13,}")
    worst_ratio = max(r["incremental"] / r["full"] for r in rows)
    worst_rss = max(max(r["full_rss"], r["inc_rss"]) for r in rows)
    print(f"incremental / full (worst): {worst_ratio:.3f} (goal <= {GOAL_RATIO}) "
          f"{'met' if worst_ratio <= GOAL_RATIO else 'NOT met'}")
    print(f"peak RSS (worst): {worst_rss:,} MB (goal <= {GOAL_RSS_MB:,}) "
          f"{'met' if worst_rss <= GOAL_RSS_MB else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
