"""The local stack: moto (S3 + Kinesis), a Datadog intake and PostgreSQL on one machine.

``up`` starts moto's server and the intake as detached processes on free loopback ports,
creates the bucket and the stream, resolves PostgreSQL as everything else does (and migrates
the state service's database), then writes the endpoints to ``$TOKENWATCH_HOME/stack.json``.
``tokenwatch.stack_file.Stack.load()`` is how other commands find them (that module says
what the file holds and what it keeps out). ``down`` stops what ``up`` started (and a private
PostgreSQL under ``$TOKENWATCH_HOME/pg``) and removes the file. Both are idempotent.

Settings (environment): ``TOKENWATCH_BUCKET`` (tokenwatch-lake), ``TOKENWATCH_STREAM``
(wallet-events), ``TOKENWATCH_STREAM_SHARDS`` (4), ``AWS_DEFAULT_REGION`` (us-east-1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tokenwatch import config
from tokenwatch.ports import free_port
from tokenwatch.stack_file import LOCAL_DD_API_KEY, Stack, StackError


@dataclass(frozen=True)
class StackSettings:
    bucket: str = "tokenwatch-lake"
    stream: str = "wallet-events"
    shards: int = 4
    region: str = "us-east-1"

    @classmethod
    def from_env(cls) -> StackSettings:
        settings = config.settings()
        try:
            shards = settings.stream_shards
        except ValueError as exc:  # TOKENWATCH_STREAM_SHARDS must be a positive integer, ...
            raise StackError(str(exc)) from None
        return cls(bucket=settings.bucket, stream=settings.stream, shards=shards,
                   region=settings.aws_default_region)


def health(stack: Stack) -> dict[str, str]:
    """Each component: 'ok' or what is wrong."""
    import psycopg

    out = {}
    for name, pid in stack.processes.items():
        out[f"{name} process"] = "ok" if _alive(pid) else f"pid {pid} is not running"
    try:
        stack.s3_client().head_bucket(Bucket=stack.bucket)
        desc = stack.kinesis_client().describe_stream_summary(StreamName=stack.stream)
        status = desc["StreamDescriptionSummary"]["StreamStatus"]
        out["aws"] = "ok" if status == "ACTIVE" else f"stream is {status}"
    except Exception as exc:  # noqa: BLE001 - report, do not raise
        out["aws"] = f"unreachable: {type(exc).__name__}: {str(exc)[:120]}"
    try:
        r = httpx.get(f"{stack.intake_url}/api/v1/validate", timeout=2,
                      headers={"DD-API-KEY": LOCAL_DD_API_KEY})
        out["intake"] = "ok" if r.status_code == 200 else f"answered {r.status_code}"
    except httpx.HTTPError as exc:
        out["intake"] = f"unreachable: {exc}"
    try:
        with psycopg.connect(stack.pg_dsn, connect_timeout=2) as conn:
            conn.execute("select 1")
        out["postgres"] = "ok"
    except psycopg.Error as exc:
        out["postgres"] = f"unreachable: {str(exc).strip()[:120]}"
    return out


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and _ours(proc)
    except psutil.Error:
        return False


def _ours(proc: psutil.Process) -> bool:
    """Only a process we started (not a pid the OS gave to someone else since)."""
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return "moto.server" in cmd or "sandbox.intake" in cmd


def _wait(what: str, ready: Callable[[], bool], proc: subprocess.Popen, log: Path,
          timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}; see {log}:\n"
                             + log.read_text()[-800:])
        try:
            if ready():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    proc.terminate()
    raise StackError(f"{what} did not become ready within {timeout:.0f} s; see {log}")


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=config.project_root(),
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _start_moto(home: Path) -> tuple[subprocess.Popen, str]:
    log = home / "logs" / "moto.log"
    for _ in range(3):  # a free port can be taken between choosing and binding it
        port = free_port()
        proc = _spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                      log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait("moto server", lambda u=url: httpx.get(f"{u}/moto-api/data.json",
                                                         timeout=1).status_code == 200,
                  proc, log)
            return proc, url
        except StackError:
            if proc.poll() is None:
                raise
    raise StackError(f"moto server could not bind a port; see {log}")


def _start_intake(home: Path, records: Path, api_key: str = LOCAL_DD_API_KEY
                  ) -> tuple[subprocess.Popen, str]:
    log = home / "logs" / "intake.log"
    port_file = home / "intake.port"
    port_file.unlink(missing_ok=True)
    proc = _spawn([sys.executable, "-m", "sandbox.intake", "--port", "0",
                   "--port-file", str(port_file), "--records", str(records),
                   "--api-key", api_key], log)
    _wait("datadog intake", port_file.exists, proc, log)
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    port_file.unlink()
    _wait("datadog intake", lambda: httpx.get(f"{url}/api/v1/validate", timeout=1,
                                              headers={"DD-API-KEY": api_key}).status_code == 200,
          proc, log)
    return proc, url


def _create_lake(stack: Stack) -> None:
    s3 = stack.s3_client()
    s3.create_bucket(Bucket=stack.bucket)
    kinesis = stack.kinesis_client()
    kinesis.create_stream(StreamName=stack.stream, ShardCount=stack.shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stack.stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def up(settings: StackSettings | None = None,
       progress: Callable[[str], None] = lambda msg: None) -> Stack:
    """Start the stack, or return the running one. Idempotent."""
    from state_service.migrate import migrate
    from tokenwatch.postgres import ensure_database, resolve_server

    home = config.home()
    settings = settings or StackSettings.from_env()
    try:
        existing = Stack.load()
    except StackError:
        existing = None
    if existing is not None:
        if all(v == "ok" for v in health(existing).values()):
            progress("the stack is already up")
            return existing
        progress("a previous stack is not healthy: stopping what is left of it")
        down()
    started: list[subprocess.Popen] = []
    try:
        progress("resolving PostgreSQL")
        server = resolve_server()
        dsn = ensure_database(server) if server.source != "env" else server.dsn_for()
        migrate(dsn)
        progress(f"PostgreSQL ({server.source}) ready; starting moto")
        moto, aws = _start_moto(home)
        started.append(moto)
        progress("starting the Datadog intake")
        records = home / "datadog-intake.jsonl"
        intake, intake_url = _start_intake(home, records)
        started.append(intake)
        stack = Stack(aws_endpoint=aws, region=settings.region, bucket=settings.bucket,
                      stream=settings.stream, shards=settings.shards, intake_url=intake_url,
                      intake_records=str(records), pg_dsn=dsn,
                      pg_source=server.source,
                      processes={"moto": moto.pid, "intake": intake.pid},
                      started_at=time.time())
        progress(f"creating bucket {settings.bucket} and stream {settings.stream} "
                 f"({settings.shards} shards)")
        _create_lake(stack)
        stack.save()
        return Stack.load()  # exactly what every other reader of stack.json gets
    except BaseException:
        for proc in started:
            _stop_pid(proc.pid)
        raise


def _stop_pid(pid: int, timeout: float = 10) -> bool:
    """Stop one of our processes (and its group). True if it was running."""
    try:
        proc = psutil.Process(pid)
        if not _ours(proc):
            return False
    except psutil.Error:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        os.killpg(pid, signal.SIGKILL)
        proc.wait(timeout)
    return True


def down() -> list[str]:
    """Stop everything ``up`` started; return what was stopped. Idempotent."""
    from tokenwatch.postgres import stop_private_server

    stopped = []
    path = Stack.path()
    if path.exists():
        try:
            stack = Stack.load()
            for name, pid in stack.processes.items():
                if _stop_pid(pid):
                    stopped.append(f"{name} (pid {pid})")
        except StackError:
            pass  # an unreadable file: nothing we can identify to stop
        path.unlink(missing_ok=True)
    if stop_private_server():
        stopped.append("private PostgreSQL")
    return stopped
