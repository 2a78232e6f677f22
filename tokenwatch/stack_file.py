"""The local stack's endpoints, as ``tokenwatch stack up`` (``sandbox/stack.py``) writes them
to ``$TOKENWATCH_HOME/stack.json`` and every other command reads them: where moto's S3 and
Kinesis, the Datadog intake and PostgreSQL answer.

``stack.json`` is written mode 0600 and holds no secret: the PostgreSQL DSN is stored without
its password, which readers take from the environment as ``up`` did (``TOKENWATCH_PG_DSN``'s
password when that names the same server and user, else libpq's ``PGPASSWORD`` or
``PGPASSFILE``/``~/.pgpass``), and the intake's API key is the fixed ``LOCAL_DD_API_KEY``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from pathlib import Path

import boto3
from botocore.config import Config
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tokenwatch import config

STACK_FILE = "stack.json"
MOTO_ACCESS_KEY = "testing"  # moto accepts any credentials; these never leave the machine
# The local intake checks DD-API-KEY as Datadog does (a missing or wrong key gets 403), but this
# key is no secret: it opens only the stand-in on loopback, holding simulated data. The real
# DD_API_KEY is never used by the local stack.
LOCAL_DD_API_KEY = "tokenwatch-local-intake"


class StackError(RuntimeError):
    """The stack is not up, or a part of it did not start; the message says which and why."""


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
    #: the earliest day ever simulated into this stack (YYYY-MM-DD; "" before any): where the
    #: data starts, so where the daily partitions start (orchestration/partitions.py)
    data_start: str = ""

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


def data_start() -> date | None:
    """The first day simulated into the local stack (``data_start`` in ``stack.json``), or None
    (no stack, nothing simulated yet, an unreadable file). It reads the file and nothing else:
    cheap enough for import time, where the Dagster definitions are built."""
    try:
        value = json.loads(Stack.path().read_text()).get("data_start")
        return date.fromisoformat(value) if value else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def record_data_start(first_day: date) -> date:
    """Note that data from ``first_day`` on is being simulated into the running stack: its
    ``data_start`` becomes the earliest day ever simulated into it. Returns that day."""
    stack = Stack.load()
    recorded = date.fromisoformat(stack.data_start) if stack.data_start else None
    earliest = min(first_day, recorded) if recorded else first_day
    if earliest != recorded:
        replace(stack, data_start=earliest.isoformat()).save()
    return earliest


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
    env_dsn = config.pg_dsn()
    if params.get("password") or not env_dsn:
        return dsn
    given = conninfo_to_dict(env_dsn)
    if given.get("password") and all(given.get(k) == params.get(k)
                                     for k in ("host", "hostaddr", "port", "user")):
        return make_conninfo(dsn, password=given["password"])
    return dsn
