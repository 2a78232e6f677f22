"""The local stack: moto (S3 + Kinesis), a Datadog intake and PostgreSQL on one machine.

``up`` starts moto's server and the intake as detached processes on free loopback ports,
creates the bucket and the stream, resolves PostgreSQL as everything else does (and migrates
the state service's database), then writes the endpoints to ``$TOKENWATCH_HOME/stack.json``.
``Stack.load()`` is how other commands find them. ``down`` stops what ``up`` started (and a
private PostgreSQL under ``$TOKENWATCH_HOME/pg``) and removes the file. Both are idempotent.

``stack.json`` is written mode 0600 and holds no secret: the PostgreSQL DSN is stored without
its password, which readers take from the environment as ``up`` did (``TOKENWATCH_PG_DSN``'s
password when that names the same server and user, else libpq's ``PGPASSWORD`` or
``PGPASSFILE``/``~/.pgpass``), and the intake's API key is the fixed ``LOCAL_DD_API_KEY``.

Settings (environment): ``TOKENWATCH_BUCKET`` (tokenwatch-lake), ``TOKENWATCH_STREAM``
(wallet-events), ``TOKENWATCH_STREAM_SHARDS`` (4), ``AWS_DEFAULT_REGION`` (us-east-1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import boto3
import httpx
import psutil
from botocore.config import Config
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from state_service import config
from state_service.server import free_port

STACK_FILE = "stack.json"
MOTO_ACCESS_KEY = "testing"  # moto accepts any credentials; these never leave the machine
# The local intake checks DD-API-KEY as Datadog does (a missing or wrong key gets 403), but this
# key is no secret: it opens only the stand-in on loopback, holding simulated data. The real
# DD_API_KEY is never used by the local stack.
LOCAL_DD_API_KEY = "tokenwatch-local-intake"


class StackError(RuntimeError):
    """The stack is not up, or a part of it did not start; the message says which and why."""


@dataclass(frozen=True)
class StackSettings:
    bucket: str = "tokenwatch-lake"
    stream: str = "wallet-events"
    shards: int = 4
    region: str = "us-east-1"

    @classmethod
    def from_env(cls) -> StackSettings:
        shards = os.environ.get("TOKENWATCH_STREAM_SHARDS", "4")
        if not shards.isdigit() or int(shards) < 1:
            raise StackError(f"TOKENWATCH_STREAM_SHARDS must be a positive integer, got {shards!r}")
        return cls(bucket=os.environ.get("TOKENWATCH_BUCKET", cls.bucket),
                   stream=os.environ.get("TOKENWATCH_STREAM", cls.stream),
                   shards=int(shards),
                   region=os.environ.get("AWS_DEFAULT_REGION", cls.region))


@dataclass
class Stack:
    """Endpoints of a running local stack, as written to ``stack.json``."""

    aws_endpoint: str
    region: str
    bucket: str
    stream: str
    shards: int
    intake_url: str
    intake_records: str
    pg_dsn: str
    pg_source: str
    processes: dict[str, int] = field(default_factory=dict)  # name -> pid
    started_at: float = 0.0

    # -- finding it -----------------------------------------------------------------------
    @staticmethod
    def path() -> Path:
        return config.home() / STACK_FILE

    @classmethod
    def load(cls) -> Stack:
        path = cls.path()
        if not path.exists():
            raise StackError(f"the local stack is not up ({path} is missing): "
                             "run `tokenwatch stack up` first")
        try:
            saved = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}  # an older file's extra keys: ignored
            stack = cls(**{k: v for k, v in saved.items() if k in known})
            return replace(stack, pg_dsn=_with_password(stack.pg_dsn))
        except (ValueError, TypeError, AttributeError) as exc:
            raise StackError(f"{path} is not a stack file ({exc}); run `tokenwatch stack down` "
                             "and `tokenwatch stack up`") from exc

    def save(self) -> Path:
        """Write ``stack.json``, mode 0600, with the DSN's password left out."""
        path = self.path()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover .tmp keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(replace(self, pg_dsn=_without_password(self.pg_dsn))),
                                indent=2) + "\n")
        tmp.replace(path)
        return path

    # -- clients --------------------------------------------------------------------------
    def _client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name=self.region,
                            aws_access_key_id=MOTO_ACCESS_KEY,
                            aws_secret_access_key=MOTO_ACCESS_KEY,
                            config=Config(retries={"max_attempts": 3, "mode": "standard"}))

    def s3_client(self):
        return self._client("s3")

    def kinesis_client(self):
        return self._client("kinesis")

    def datadog_options(self) -> dict:
        """Keyword arguments for ``datadog.initialize`` that point it at the intake."""
        return {"api_key": LOCAL_DD_API_KEY, "app_key": "local", "api_host": self.intake_url}

    # -- health ---------------------------------------------------------------------------
    def health(self) -> dict[str, str]:
        """Each component: 'ok' or what is wrong."""
        import psycopg

        out = {}
        for name, pid in self.processes.items():
            out[f"{name} process"] = "ok" if _alive(pid) else f"pid {pid} is not running"
        try:
            self.s3_client().head_bucket(Bucket=self.bucket)
            desc = self.kinesis_client().describe_stream_summary(StreamName=self.stream)
            status = desc["StreamDescriptionSummary"]["StreamStatus"]
            out["aws"] = "ok" if status == "ACTIVE" else f"stream is {status}"
        except Exception as exc:  # noqa: BLE001 - report, do not raise
            out["aws"] = f"unreachable: {type(exc).__name__}: {str(exc)[:120]}"
        try:
            r = httpx.get(f"{self.intake_url}/api/v1/validate", timeout=2,
                          headers={"DD-API-KEY": LOCAL_DD_API_KEY})
            out["intake"] = "ok" if r.status_code == 200 else f"answered {r.status_code}"
        except httpx.HTTPError as exc:
            out["intake"] = f"unreachable: {exc}"
        try:
            with psycopg.connect(self.pg_dsn, connect_timeout=2) as conn:
                conn.execute("select 1")
            out["postgres"] = "ok"
        except psycopg.Error as exc:
            out["postgres"] = f"unreachable: {str(exc).strip()[:120]}"
        return out


def _without_password(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    if "password" not in params:
        return dsn
    del params["password"]
    return make_conninfo(**params)


def _with_password(dsn: str) -> str:
    """``dsn`` with the password the environment gives for it: ``TOKENWATCH_PG_DSN``'s when
    that names the same server and user (``stack up`` found the server through it); otherwise
    ``dsn`` as it is, and libpq takes ``PGPASSWORD`` or the passfile (``~/.pgpass``) itself."""
    params = conninfo_to_dict(dsn)
    env_dsn = os.environ.get("TOKENWATCH_PG_DSN")
    if params.get("password") or not env_dsn:
        return dsn
    given = conninfo_to_dict(env_dsn)
    if given.get("password") and all(given.get(k) == params.get(k)
                                     for k in ("host", "hostaddr", "port", "user")):
        return make_conninfo(dsn, password=given["password"])
    return dsn


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
    return "moto.server" in cmd or "orchestration.local.intake" in cmd


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
    proc = _spawn([sys.executable, "-m", "orchestration.local.intake", "--port", "0",
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
    from state_service.database import ensure_database, resolve_server
    from state_service.migrate import migrate

    home = config.home()
    settings = settings or StackSettings.from_env()
    try:
        existing = Stack.load()
    except StackError:
        existing = None
    if existing is not None:
        if all(v == "ok" for v in existing.health().values()):
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
    from state_service.database import stop_private_server

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
