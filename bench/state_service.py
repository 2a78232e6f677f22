"""Benchmark: the state service's write path against PostgreSQL's own speed, in one run.

On one server, in one run, with 16 concurrent clients (``--clients``):

- **baseline**: single-row INSERT transactions, from pgbench (C, prepared statements);
- **ceiling**: the same transition as the service's, with no HTTP at all: pgbench calling the
  project's own write functions (``tokenwatch_prepare_transition`` then
  ``tokenwatch_apply_transition``, migration 0005) in one transaction, toggling its tokens
  between TokenActive and TokenSuspended (the seal is a constant: pgbench cannot HMAC; the
  service's HMAC is a few microseconds of Python);
- **single**: the service (``tokenwatch serve --workers N``) answering
  ``POST /v1/tokens/{ref}/transitions``, the same toggles;
- **batch**: ``POST /v1/batch`` of ``--batch-size`` transitions (each of a client's tokens
  toggled once per batch), counted in transitions/s;
- **traced** (``--traced``): single transitions against a second service with Datadog APM on,
  sending its traces to Datadog's test agent (sandbox/apm_agent.py).

The HTTP clients are one process of raw keep-alive HTTP/1.1 connections on uvloop (requests
pre-encoded, responses parsed only for status and length), so that what is measured is the
service. For each measurement the CPU seconds of the clients, the service's processes and
PostgreSQL's are printed as shares of the elapsed wall time of both cores.

``--compare-with COMMIT`` (repeatable) also measures single transitions against the service
as it was at COMMIT: its tracked files exported with ``git archive`` into a temporary
directory, served from there on a database of its own. ``--rounds`` repeats every
measurement in alternating order and keeps each one's best round.

    .venv/bin/python bench/state_service.py [--seconds 10] [--clients 16] [--workers 2]
    .venv/bin/python bench/state_service.py --traced --compare-with 8b84677^
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
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
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from state_service.migrate import migrate  # noqa: E402
from tokenwatch.ports import free_port  # noqa: E402
from tokenwatch.postgres import drop_database, ensure_database, resolve_server  # noqa: E402

KEY = "bench-" + uuid.uuid4().hex
TOKENS_PER_CLIENT = 4
ACTIVE, SUSPENDED = "TokenActive", "TokenSuspended"
WALK = [("ProvisionInitiated", {}), ("ProvisionPending", {"decision": "green"}),
        ("ProvisionSuccess", {}), ("WalletActive", {}), ("TokenActive", {})]


def _now() -> str:
    return datetime.now(UTC).isoformat()


# -- the HTTP clients: one process, raw keep-alive connections ---------------------------------
def _request(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(head[9:12]), await reader.readexactly(length)


def _transition(ref: str, to: str) -> bytes:
    body = (b'{"to_state":"%s","event_id":"%s","occurred_at":"%s","actor":"issuer"}'
            % (to.encode(), uuid.uuid4().hex.encode(), _now().encode()))
    return _request(f"/v1/tokens/{ref}/transitions", body)


def _batch(refs: list[str], states: dict[str, str]) -> bytes:
    items = []
    for ref in refs:
        states[ref] = SUSPENDED if states[ref] == ACTIVE else ACTIVE
        items.append({"op": "transition", "token_ref": ref, "to_state": states[ref],
                      "event_id": uuid.uuid4().hex, "occurred_at": _now(), "actor": "issuer"})
    return _request("/v1/batch", json.dumps({"items": items}).encode())


async def _client(host: str, port: int, mode: str, refs: list[str], states: dict[str, str],
                  stop_at: float, lat: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done, n = 0, 0
    while time.perf_counter() < stop_at:
        if mode == "batch":
            request = _batch(refs, states)
        else:
            ref = refs[n % len(refs)]
            states[ref] = SUSPENDED if states[ref] == ACTIVE else ACTIVE
            request = _transition(ref, states[ref])
        t0 = time.perf_counter()
        status, body = await _exchange(reader, writer, request)
        lat.append(time.perf_counter() - t0)
        if status not in (200, 201) or (mode == "batch" and b'"status":4' in body):
            raise RuntimeError(f"unexpected {status}: {body[:300]!r}")
        done += len(refs) if mode == "batch" else 1
        n += 1
    writer.close()
    return done


def _load_process(url: str, mode: str, groups: list[list[str]], states: dict[str, str],
                  start_at: float, seconds: float, out) -> None:
    import uvloop

    host, port = url.removeprefix("http://").split(":")

    async def main() -> tuple[int, list[float]]:
        lat: list[float] = []
        while time.perf_counter() < start_at:
            await asyncio.sleep(0.001)
        stop_at = time.perf_counter() + seconds
        counts = await asyncio.gather(*(_client(host, int(port), mode, refs, states, stop_at,
                                                lat) for refs in groups))
        return sum(counts), lat

    done, lat = uvloop.run(main())
    out.put((done, lat, states))


# -- CPU accounting ---------------------------------------------------------------------------
def _tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _postgres() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres",
                                                                          "postmaster")]


class CpuSplit:
    """CPU seconds of the service and PostgreSQL over one measurement. PostgreSQL's backends
    come and go with their connections (pgbench's exit with it), so they are sampled every
    0.2 s and each one's last reading counts."""

    def __init__(self, service_pid: int | None, agent_pid: int | None = None):
        self.service = _tree(service_pid) if service_pid else []
        self.agent = _tree(agent_pid) if agent_pid else []

    def _pg_now(self) -> None:
        for p in _postgres():
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            self._pg_first.setdefault(p.pid, t.user + t.system if self._started else 0.0)
            self._pg_last[p.pid] = t.user + t.system

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._pg_now()

    def __enter__(self):
        self._pg_first: dict[int, float] = {}
        self._pg_last: dict[int, float] = {}
        self._started = True
        self._pg_now()  # backends alive now count from here; later ones from zero
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        self.before = _cpu(self.service)
        self.agent_before = _cpu(self.agent)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self._pg_now()
        self._stop.set()
        self._thread.join()
        self.service_s = _cpu(self.service) - self.before
        self.agent_s = _cpu(self.agent) - self.agent_before
        self.pg_s = sum(self._pg_last[pid] - self._pg_first[pid] for pid in self._pg_last)


def run_http(url: str, service_pid: int, mode: str, groups: list[list[str]],
             states: dict[str, str], seconds: float, agent_pid: int | None = None) -> dict:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.perf_counter() + 1.0
    proc = ctx.Process(target=_load_process, args=(url, mode, groups, states, start_at,
                                                   seconds, out))
    proc.start()
    client = psutil.Process(proc.pid)
    while time.perf_counter() < start_at:
        time.sleep(0.001)
    with CpuSplit(service_pid, agent_pid) as cpu:
        c0 = _cpu([client])
        time.sleep(seconds)
        c1 = _cpu([client])
        done, lat, new_states = out.get(timeout=120)
    proc.join(timeout=30)
    states.update(new_states)
    lat.sort()
    return {"rate": done / seconds, "requests": len(lat),
            "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000,
            "cpu": (c1 - c0, cpu.service_s, cpu.pg_s, cpu.wall, cpu.agent_s)}


# -- pgbench: the baseline and the ceiling ----------------------------------------------------
_INSERT_SCRIPT = ("insert into bench_insert (token_ref, payload) values (md5(random()::text),"
                  " repeat('x', 64));\n")
_REF = "'pgb-' || :client_id || '-' || :t"
_EVENT = "'pgb-' || :client_id || '-' || :r"
_CEILING_SCRIPT = rf"""\set t random(0, 3)
\set r random(1, 2000000000)
begin;
select outcome, state as to_state, version, from_state, wallet_id, network, token_type,
  transition_id, xact_id, recorded_at, prev_hash, row_hash, {_EVENT} as event_id, {_REF} as ref
  from tokenwatch_prepare_transition({_REF}, {_EVENT}, (select case state
  when 'TokenActive' then 'TokenSuspended' else 'TokenActive' end from tokens
  where token_ref = {_REF}), 'issuer', null, null, null, now(), repeat('a', 64)) \gset
select tokenwatch_apply_transition(:transition_id, :xact_id, :ref, :version, :event_id,
  :from_state, :to_state, 'issuer', null, null, null, :wallet_id, :network, :token_type, now(),
  :recorded_at, repeat('a', 64), :prev_hash, :row_hash, 'bench', repeat('0', 64));
end;
"""


def pgbench(dsn: str, script: str, clients: int, seconds: float) -> dict:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script.replace("\\\\", "\\"))
    args = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T",
            str(int(seconds)), "-r", "-f", f.name, "-h", str(params.get("host", "127.0.0.1")),
            "-p", str(params.get("port", 5432)), "-U", str(params.get("user", "postgres")),
            str(params["dbname"])]
    env = os.environ | ({"PGPASSWORD": params["password"]} if params.get("password") else {})
    with CpuSplit(None) as cpu:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        client = psutil.Process(proc.pid)
        c = 0.0
        while proc.poll() is None:
            c = max(c, _cpu([client]))
            time.sleep(0.2)
        out, err = proc.communicate()
    os.unlink(f.name)
    tps = lat = None
    for line in out.splitlines():
        if line.startswith("tps"):
            tps = float(line.split("=")[1].split()[0])
        if line.startswith("latency average"):
            lat = float(line.split("=")[1].split()[0])
    if tps is None:
        raise SystemExit(f"pgbench failed:\n{out[-2000:]}\n{err[-2000:]}")
    return {"rate": tps, "p50_ms": lat, "p99_ms": None,
            "cpu": (c, 0.0, cpu.pg_s, cpu.wall, 0.0)}


def export_commit(commit: str, into: str) -> str:
    """``commit``'s tracked files, extracted into ``into``; returns its short hash."""
    git = ["git", "-C", str(ROOT)]
    full = subprocess.run([*git, "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tar = subprocess.run([*git, "archive", full], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return full[:7]


def start_service(src: Path, dsn: str, workers: int, log,
                  extra_env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``tokenwatch serve`` of the tree at ``src`` on ``dsn`` (it migrates the database first,
    as that tree's serve does); returns the process and its URL once /healthz answers."""
    port = free_port()
    env = os.environ | {"TOKENWATCH_PG_DSN": dsn, "TOKENWATCH_API_KEYS": KEY,
                        "PYTHONPATH": str(src)}
    env.pop("DD_AGENT_HOST", None)
    env |= extra_env or {}
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


def _setup(url: str, refs: list[str], prefix_states: dict[str, str]) -> None:
    """Create ``refs`` and walk them to TokenActive through the batch endpoint."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=120) as c:
        for i in range(0, len(refs), 150):
            chunk = refs[i:i + 150]
            items = [{"op": "create", "token_ref": r, "wallet_id": "apple_pay",
                      "network": "visa", "token_type": "hce", "card_ref": f"c-{r}",
                      "event_id": f"{r}-0", "occurred_at": _now()} for r in chunk]
            items += [{"op": "transition", "token_ref": r, "to_state": to,
                       "event_id": uuid.uuid4().hex, "occurred_at": _now(),
                       "actor": "token_service", **extra} for to, extra in WALK for r in chunk]
            results = c.post("/v1/batch", json={"items": items}).raise_for_status().json()
            bad = [x for x in results["results"] if x["status"] != 201]
            if bad:
                raise SystemExit(f"setup failed: {bad[:3]}")
    prefix_states.update({r: ACTIVE for r in refs})


def _row(name: str, r: dict) -> str:
    p99 = f"{r['p99_ms']:>9.2f}" if r.get("p99_ms") is not None else f"{'-':>9}"
    client, service, pg, wall, agent = r["cpu"]
    cores = wall * psutil.cpu_count()
    split = (f"{100 * client / cores:>6.0f}%{100 * service / cores:>8.0f}%"
             f"{100 * pg / cores:>5.0f}%" + (f"{100 * agent / cores:>6.0f}%" if agent else ""))
    return f"{name:40}{r['rate']:>10.0f}{r['p50_ms']:>9.2f}{p99}  {split}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--traced", action="store_true",
                    help="also measure a service with Datadog APM on (test agent as the sink)")
    ap.add_argument("--compare-with", action="append", default=[], metavar="COMMIT",
                    help="also measure the service at COMMIT (repeatable)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measurements of each, in alternating order; the best is kept")
    args = ap.parse_args()

    server = resolve_server()
    work = tempfile.mkdtemp(prefix="tokenwatch-bench-service-")
    services: dict[str, dict] = {}  # label -> src, database, dsn, process, url, refs
    agent = None
    try:
        trees: list[tuple[str, Path, dict]] = [("working tree", ROOT, {})]
        if args.traced:
            from sandbox.apm_agent import TestAgent

            agent = TestAgent(Path(work) / "apm-agent.log").__enter__()
            agent.start_session("bench")
            trees.append(("traced", ROOT, {"DD_TRACE_ENABLED": "true",
                                           "DD_TRACE_AGENT_URL": agent.url}))
        for commit in args.compare_with:
            src = Path(work) / commit.replace("/", "_")
            trees.append((export_commit(commit, str(src)), src, {}))
        for label, src, env in trees:
            name = f"tokenwatch_bench_{uuid.uuid4().hex[:8]}"
            services[label] = {"src": src, "name": name, "env": env,
                               "dsn": ensure_database(server, name)}
        dsn = services["working tree"]["dsn"]  # pgbench runs on this database
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create table bench_insert (id bigint generated always as identity "
                         "primary key, token_ref text not null, payload text not null, "
                         "created_at timestamptz not null default now())")
        for label, svc in services.items():
            svc["log"] = tempfile.TemporaryFile(dir=work)
            svc["proc"], svc["url"] = start_service(svc["src"], svc["dsn"], args.workers,
                                                    svc["log"], svc["env"])
            svc["states"] = {}
            svc["groups"] = [[f"b{label[:2]}-{c}-{t}-{uuid.uuid4().hex[:6]}"
                              for t in range(TOKENS_PER_CLIENT)] for c in range(args.clients)]
            _setup(svc["url"], [r for g in svc["groups"] for r in g], svc["states"])
        main_svc = services["working tree"]
        main_svc["batch_groups"] = [[f"bb-{c}-{t}-{uuid.uuid4().hex[:6]}"
                                     for t in range(args.batch_size)]
                                    for c in range(args.clients)]
        _setup(main_svc["url"], [r for g in main_svc["batch_groups"] for r in g],
               main_svc["states"])
        _setup(main_svc["url"], [f"pgb-{c}-{t}" for c in range(args.clients)
                                 for t in range(TOKENS_PER_CLIENT)], {})
        print(f"PostgreSQL: {server.source}; {args.clients} clients; {args.seconds:.0f} s per "
              f"measurement; service with {args.workers} worker(s); batches of "
              f"{args.batch_size}" + (f"; {args.rounds} rounds" if args.rounds > 1 else ""))
        kinds = ["baseline", "ceiling", "single", "batch", *[label for label in services
                                                              if label != "working tree"]]
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for i in range(args.rounds):
            for kind in (kinds if i % 2 == 0 else list(reversed(kinds))):
                if kind == "baseline":
                    r = pgbench(dsn, _INSERT_SCRIPT, args.clients, args.seconds)
                elif kind == "ceiling":
                    r = pgbench(dsn, _CEILING_SCRIPT, args.clients, args.seconds)
                elif kind in ("single", "batch"):
                    groups = main_svc["groups" if kind == "single" else "batch_groups"]
                    r = run_http(main_svc["url"], main_svc["proc"].pid, kind, groups,
                                 main_svc["states"], args.seconds)
                else:
                    svc = services[kind]
                    r = run_http(svc["url"], svc["proc"].pid, "single", svc["groups"],
                                 svc["states"], args.seconds,
                                 agent._proc.pid if agent and kind == "traced" else None)
                runs[kind].append(r)
                if args.rounds > 1:
                    print(f"  round {i + 1}: {kind:14}{r['rate']:>8.0f}/s")
        for svc in services.values():
            svc["sealed"], svc["role"] = describe(svc["dsn"])
        if agent:
            spans = sum(len(t) for t in agent.traces("bench"))
    finally:
        for svc in services.values():
            if "proc" in svc:
                svc["proc"].terminate()
                svc["proc"].wait(timeout=30)
            drop_database(server, svc["name"])
        if agent:
            agent.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)
    b = {k: best(v) for k, v in runs.items()}
    print(f"\n{'':40}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}  {'CPU: clients':>6}"
          f"{'service':>9}{'PG':>6}" + (f"{'agent':>7}" if args.traced else ""))
    print(_row("baseline: pgbench single-row INSERT", b["baseline"]))
    print(_row("ceiling: pgbench write functions", b["ceiling"]))
    print(_row("single: POST .../transitions", b["single"]))
    print(_row(f"batch: POST /v1/batch x{args.batch_size} (transitions)", b["batch"]))
    for label in services:
        if label == "working tree":
            continue
        name = ("traced: single, APM on" if label == "traced"
                else f"single, service at {label}")
        print(_row(name, b[label]))
    single, ceiling, base = b["single"]["rate"], b["ceiling"]["rate"], b["baseline"]["rate"]
    print(f"\nceiling/baseline {ceiling / base:.2f}; single/ceiling {single / ceiling:.2f} "
          f"(goal >= 0.5); single/baseline {single / base:.2f} (goal >= 0.3); single p99 "
          f"{b['single']['p99_ms']:.1f} ms (goal <= 25); batch/baseline "
          f"{b['batch']['rate'] / base:.2f} (goal >= 1.0)")
    if "traced" in b:
        overhead = 1 - b["traced"]["rate"] / single
        per_request = [r["cpu"][1] / (r["rate"] * r["cpu"][3]) for r in (b["single"],
                                                                          b["traced"])]
        print(f"tracing overhead: {100 * overhead:.1f}% of single's throughput (goal <= 10%), "
              f"p50 x{b['traced']['p50_ms'] / b['single']['p50_ms']:.2f}; the service's CPU "
              f"per request {1e6 * per_request[0]:.0f} -> {1e6 * per_request[1]:.0f} us "
              f"(+{100 * (per_request[1] / per_request[0] - 1):.0f}%; the test agent, on the "
              f"same cores, is the agent column); {spans} spans reached the agent")
    for label in services:
        if label not in ("working tree", "traced"):
            print(f"working tree/{label}: {single / b[label]['rate']:.2f} ops/s")
    print("sealed/role: " + "; ".join(f"{k}: {v['sealed']}, {v['role']}"
                                      for k, v in services.items()))


if __name__ == "__main__":
    main()
