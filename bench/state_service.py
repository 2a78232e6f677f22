"""Benchmark: the state service under 16 concurrent HTTP clients vs plain INSERTs.

Prints sustained transitions/s with p50/p99 latency for 16 concurrent clients against
``tokenwatch serve`` (a real uvicorn process on the resolved PostgreSQL), and, on the same
server in the same run, a baseline of plain single-row INSERT transactions from 16 concurrent
psycopg connections driven by the same harness, then the ratio. pgbench's figure for the same
single-row INSERT is printed too when pgbench is on PATH.

``--compare-with COMMIT`` (repeatable) measures, in the same run and with the same load, the
service as it was at COMMIT too: its tracked files exported with ``git archive`` into a temporary
directory (the repository, its index and worktrees untouched; removed afterwards), served from
there (``PYTHONPATH`` and cwd) on a database of its own that its own ``tokenwatch serve``
migrates, and connecting as that commit's ``create_app``/``app_from_env`` does. It prints each
commit's figures and the ratio working tree / COMMIT; ``sealed`` says whether the rows each
service wrote carry seals, ``role`` which PostgreSQL role it connected as. ``--rounds`` repeats
every measurement, in alternating order (ABBA), and keeps each one's best round. The write-path
cost of the row seals (8b84677), the working tree against the commit before them:

    .venv/bin/python bench/state_service.py [--seconds 15] [--clients 16] [--workers 2]
    .venv/bin/python bench/state_service.py --compare-with 8b84677^ --rounds 2
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from state_service.migrate import migrate  # noqa: E402
from tokenwatch.ports import free_port  # noqa: E402
from tokenwatch.postgres import drop_database, ensure_database, resolve_server  # noqa: E402

KEY = "bench-" + uuid.uuid4().hex
TOKENS_PER_CLIENT = 4
PROCESSES = 4


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _http_client(url: str, refs: list[str], stop_at: float, out: list) -> None:
    """Toggle this client's own tokens between TokenActive and TokenSuspended (from the state
    an earlier round left them in: four GETs, a few ms of the measured seconds)."""
    lat, n = [], 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30) as c:
        state = {ref: c.get(f"/v1/tokens/{ref}").raise_for_status().json()["state"]
                 for ref in refs}
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
    failed: list[Exception] = []

    def client(refs: list[str]) -> None:
        try:
            fn(target, refs, stop_at, out)
        except Exception as exc:  # noqa: BLE001 - a failed client fails the run, not its thread
            failed.append(exc)

    while time.perf_counter() < start_at:
        time.sleep(0.001)
    stop_at = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(refs,)) for refs in ref_groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
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


def export_commit(commit: str, into: str) -> str:
    """``commit``'s tracked files, extracted into ``into``; returns its short hash."""
    git = ["git", "-C", str(ROOT)]
    full = subprocess.run([*git, "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tar = subprocess.run([*git, "archive", full], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return full[:7]


def start_service(src: Path, dsn: str, workers: int, log) -> tuple[subprocess.Popen, str]:
    """``tokenwatch serve`` of the tree at ``src`` on ``dsn`` (it migrates the database first,
    as that tree's serve does); returns the process and its URL once /healthz answers."""
    port = free_port()
    env = os.environ | {"TOKENWATCH_PG_DSN": dsn, "TOKENWATCH_API_KEYS": KEY,
                        "PYTHONPATH": str(src)}
    env.pop("DD_AGENT_HOST", None)
    svc = subprocess.Popen([sys.executable, "-m", "tokenwatch.cli", "serve", "--port",
                            str(port), "--workers", str(workers)], cwd=src, env=env,
                           stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if svc.poll() is not None:
            break
        try:
            httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
            return svc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    svc.kill()
    log.seek(0)
    raise SystemExit(f"the service from {src} did not start:\n{log.read().decode()[-3000:]}")


def describe(dsn: str) -> tuple[str, str]:
    """Whether the service's rows carry seals, and the role(s) it is connected as."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        has_mac = conn.execute("select 1 from information_schema.columns where table_name ="
                               " 'token_state_transitions' and column_name = 'row_mac'"
                               ).fetchone()
        sealed = "no"
        if has_mac:
            n, macs = conn.execute("select count(*), count(row_mac) from"
                                   " token_state_transitions").fetchone()
            sealed = "yes" if n == macs else f"{macs}/{n}"
        roles = conn.execute("select string_agg(distinct usename, ',') from pg_stat_activity"
                             " where datname = current_database() and pid <> pg_backend_pid()"
                             ).fetchone()[0]
    return sealed, roles or "?"


def best(results: list[dict]) -> dict:
    return max(results, key=lambda r: r["rate"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--compare-with", action="append", default=[], metavar="COMMIT",
                    help="also measure the service at COMMIT (repeatable)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measurements of each, in alternating order; the best is kept")
    args = ap.parse_args()

    server = resolve_server()
    work = tempfile.mkdtemp(prefix="tokenwatch-bench-service-")
    services: dict[str, dict] = {}  # label -> src, database, dsn, process, url, refs
    try:
        trees = [("working tree", ROOT)]
        for commit in args.compare_with:
            src = Path(work) / commit.replace("/", "_")
            trees.append((export_commit(commit, str(src)), src))
        for label, src in trees:
            name = f"tokenwatch_bench_{uuid.uuid4().hex[:8]}"
            services[label] = {"src": src, "name": name, "dsn": ensure_database(server, name)}
        dsn = services["working tree"]["dsn"]  # the INSERT baseline runs on this database
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create table bench_insert (id bigint generated always as identity "
                         "primary key, token_ref text not null, payload text not null, "
                         "created_at timestamptz not null default now())")
        for svc in services.values():
            svc["log"] = tempfile.TemporaryFile(dir=work)
            svc["proc"], svc["url"] = start_service(svc["src"], svc["dsn"], args.workers,
                                                    svc["log"])
            svc["refs"] = _setup_tokens(svc["url"], args.clients * TOKENS_PER_CLIENT)
        print(f"PostgreSQL: {server.source}; {args.clients} clients in {PROCESSES} processes; "
              f"{args.seconds:.0f} s per measurement; service with {args.workers} worker(s)"
              + (f"; {args.rounds} rounds" if args.rounds > 1 else ""))
        runs: dict[str, list[dict]] = {"baseline": [], **{label: [] for label in services}}
        for i in range(args.rounds):
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            for label in order:
                if label == "baseline":
                    r = run_load("insert", dsn, args.clients, args.seconds,
                                 services["working tree"]["refs"])
                else:
                    svc = services[label]
                    r = run_load("http", svc["url"], args.clients, args.seconds, svc["refs"])
                runs[label].append(r)
                if args.rounds > 1:
                    print(f"  round {i + 1}: {label:14}{r['rate']:>8.0f} ops/s  "
                          f"p99 {r['p99_ms']:.1f} ms")
        for svc in services.values():
            svc["sealed"], svc["role"] = describe(svc["dsn"])
        pgb = _pgbench(dsn, args.clients, int(args.seconds))
    finally:
        for svc in services.values():
            if "proc" in svc:
                svc["proc"].terminate()
                svc["proc"].wait(timeout=30)
            drop_database(server, svc["name"])
        shutil.rmtree(work, ignore_errors=True)
    base, http = best(runs["baseline"]), best(runs["working tree"])
    print(f"{'':34}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}  sealed  role")
    print(f"{'baseline: single-row INSERT txns':34}{base['rate']:>10.0f}"
          f"{base['p50_ms']:>10.2f}{base['p99_ms']:>10.2f}")
    for label, svc in services.items():
        r = best(runs[label])
        name = "state service: HTTP transitions" if label == "working tree" \
            else f"  the same, service at {label}"
        print(f"{name:34}{r['rate']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
              f"  {svc['sealed']:6}  {svc['role']}")
    if pgb:
        print(f"{'reference: pgbench same INSERT':34}{pgb:>10.0f}")
    ratio = http["rate"] / base["rate"]
    print(f"ratio service/baseline: {ratio:.2f} (goal >= 0.5), p99 {http['p99_ms']:.1f} ms "
          f"(goal <= 25 ms)")
    for label in list(services)[1:]:
        then = best(runs[label])
        print(f"ratio working tree/{label}: {http['rate'] / then['rate']:.2f} ops/s, "
              f"p50 x{http['p50_ms'] / then['p50_ms']:.2f}, "
              f"p99 x{http['p99_ms'] / then['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
