"""Benchmark: the state service under 16 concurrent HTTP clients vs plain INSERTs.

Prints sustained transitions/s with p50/p99 latency for 16 concurrent clients against
``tokenwatch serve`` (a real uvicorn process on the resolved PostgreSQL), and, on the same
server in the same run, a baseline of plain single-row INSERT transactions from 16 concurrent
psycopg connections driven by the same harness, then the ratio. pgbench's figure for the same
single-row INSERT is printed too when pgbench is on PATH.

    .venv/bin/python bench/state_service.py [--seconds 15] [--clients 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from state_service.database import drop_database, ensure_database, resolve_server  # noqa: E402
from state_service.migrate import migrate  # noqa: E402
from state_service.server import free_port  # noqa: E402

KEY = "bench-" + uuid.uuid4().hex
TOKENS_PER_CLIENT = 4
PROCESSES = 4


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _http_client(url: str, refs: list[str], stop_at: float, out: list) -> None:
    """Toggle this client's own tokens between TokenActive and TokenSuspended."""
    state = dict.fromkeys(refs, "TokenActive")
    lat, n = [], 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as c:
        while time.perf_counter() < stop_at:
            ref = refs[n % len(refs)]
            to = "TokenSuspended" if state[ref] == "TokenActive" else "TokenActive"
            t0 = time.perf_counter()
            r = c.post(f"/v1/tokens/{ref}/transitions", json={
                "to_state": to, "event_id": uuid.uuid4().hex, "occurred_at": _now(),
                "actor": "issuer"})
            lat.append(time.perf_counter() - t0)
            if r.status_code != 201:
                raise RuntimeError(f"unexpected {r.status_code}: {r.text}")
            state[ref], n = to, n + 1
    out.append(lat)


def _insert_client(dsn: str, _refs: list[str], stop_at: float, out: list) -> None:
    lat = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            conn.execute("insert into bench_insert (token_ref, payload) values (%s, %s)",
                         [uuid.uuid4().hex, "x" * 64])
            lat.append(time.perf_counter() - t0)
    out.append(lat)


def _process(kind: str, target: str, ref_groups: list[list[str]], start_at: float,
             seconds: float) -> list[float]:
    fn = _http_client if kind == "http" else _insert_client
    out: list[list[float]] = []
    while time.perf_counter() < start_at:
        time.sleep(0.001)
    stop_at = time.perf_counter() + seconds
    threads = [threading.Thread(target=fn, args=(target, refs, stop_at, out))
               for refs in ref_groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for lat in out for x in lat]


def run_load(kind: str, target: str, clients: int, seconds: float, refs: list[str]) -> dict:
    groups = [refs[i * TOKENS_PER_CLIENT:(i + 1) * TOKENS_PER_CLIENT] for i in range(clients)]
    per_proc = [groups[p::PROCESSES] for p in range(PROCESSES)]
    start_at = time.perf_counter() + 1.0
    with mp.get_context("fork").Pool(PROCESSES) as pool:
        results = pool.starmap(_process, [(kind, target, g, start_at, seconds)
                                          for g in per_proc])
    lat = sorted(x for r in results for x in r)
    return {"ops": len(lat), "rate": len(lat) / seconds,
            "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000}


def _setup_tokens(url: str, n: int) -> list[str]:
    refs = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    steps = [("ProvisionInitiated", {}), ("ProvisionPending", {"decision": "green"}),
             ("ProvisionSuccess", {}), ("WalletActive", {}), ("TokenActive", {})]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        for ref in refs:
            c.post("/v1/tokens", json={
                "token_ref": ref, "wallet_id": "apple_pay", "network": "visa",
                "token_type": "hce", "card_ref": f"c-{ref}", "event_id": f"{ref}-0",
                "occurred_at": _now()}).raise_for_status()
            for to, extra in steps:
                c.post(f"/v1/tokens/{ref}/transitions", json={
                    "to_state": to, "event_id": uuid.uuid4().hex, "occurred_at": _now(),
                    "actor": "token_service", **extra}).raise_for_status()
    return refs


def _pgbench(dsn: str, clients: int, seconds: int) -> float | None:
    if not shutil.which("pgbench"):
        return None
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("insert into bench_insert (token_ref, payload) values (md5(random()::text), "
                "repeat('x', 64));\n")
    args = ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", f.name,
            "-h", str(params.get("host", "127.0.0.1")), "-p", str(params.get("port", 5432)),
            "-U", str(params.get("user", "postgres")), str(params["dbname"])]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    os.unlink(f.name)
    for line in out.splitlines():
        if line.startswith("tps"):
            return float(line.split("=")[1].split()[0])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = ap.parse_args()

    server = resolve_server()
    name = f"tokenwatch_bench_{uuid.uuid4().hex[:8]}"
    dsn = ensure_database(server, name)
    migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table bench_insert (id bigint generated always as identity "
                     "primary key, token_ref text not null, payload text not null, "
                     "created_at timestamptz not null default now())")
    port = free_port()
    env = os.environ | {"TOKENWATCH_PG_DSN": dsn, "TOKENWATCH_API_KEYS": KEY}
    env.pop("DD_AGENT_HOST", None)
    svc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "serve", "--port",
                            str(port), "--workers", str(args.workers)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        refs = _setup_tokens(url, args.clients * TOKENS_PER_CLIENT)
        print(f"PostgreSQL: {server.source}; {args.clients} clients in {PROCESSES} processes; "
              f"{args.seconds:.0f} s per measurement; service with {args.workers} worker(s)")
        base = run_load("insert", dsn, args.clients, args.seconds, refs)
        http = run_load("http", url, args.clients, args.seconds, refs)
        pgb = _pgbench(dsn, args.clients, int(args.seconds))
    finally:
        svc.terminate()
        svc.wait(timeout=30)
        drop_database(server, name)
    print(f"{'':34}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'baseline: single-row INSERT txns':34}{base['rate']:>10.0f}"
          f"{base['p50_ms']:>10.2f}{base['p99_ms']:>10.2f}")
    print(f"{'state service: HTTP transitions':34}{http['rate']:>10.0f}"
          f"{http['p50_ms']:>10.2f}{http['p99_ms']:>10.2f}")
    if pgb:
        print(f"{'reference: pgbench same INSERT':34}{pgb:>10.0f}")
    ratio = http["rate"] / base["rate"]
    print(f"ratio service/baseline: {ratio:.2f} (goal >= 0.5), p99 {http['p99_ms']:.1f} ms "
          f"(goal <= 25 ms)")


if __name__ == "__main__":
    main()
