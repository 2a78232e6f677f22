"""Where the world is: the state service's database, the wallet-event stream and the lake (and,
for whoever writes into them, the state service itself). One description, handed to every
stage that reads or writes the sources: ingestion, the gate's reconciliation, the audit's
checkpoints, the simulator.

``world_from_env()`` builds it for the environment:

* ``TOKENWATCH_ENV=local`` reads the endpoints ``tokenwatch stack up`` wrote
  (``tokenwatch.stack_file``).
* ``TOKENWATCH_ENV=prod`` uses boto3's default credential chain and region, the bucket and
  stream named by ``TOKENWATCH_BUCKET`` / ``TOKENWATCH_STREAM``, and the state service's
  database as ``TOKENWATCH_READER_PG_DSN`` gives it (or ``TOKENWATCH_PG_DSN`` with the reader
  role as the user).

Either way the state database is read as ``tokenwatch_reader`` (SELECT only, see
``state_service.roles``): ingestion and the gate's reconciliation never hold the admin's
rights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from state_service import roles
from tokenwatch import config


@dataclass(frozen=True)
class World:
    """The sources (and the service that writes them): what a run reads or writes."""

    pg_dsn: str  # the state service's database, as this reader connects to it
    kinesis: Any  # boto3 Kinesis client
    stream: str
    s3: Any  # boto3 S3 client
    bucket: str
    service_url: str = ""  # the state service, for writers (the simulator)
    api_key: str = ""  # a write key of that service


def world_from_env() -> World:
    if config.env_name() == "local":
        from tokenwatch.stack_file import Stack

        stack = Stack.load()
        return World(roles.dsn_for(roles.READER, stack.pg_dsn), stack.kinesis_client(),
                     stack.stream, stack.s3_client(), stack.bucket)
    import boto3

    settings = config.settings()
    reader_env = roles.DSN_ENV[roles.READER]
    # in prod the lake and the stream are named explicitly (their defaults are the local stack's)
    missing = [config.env_var(v) for v in ("bucket", "stream") if not settings.is_set(v)]
    if not (roles.explicit_dsn(roles.READER, settings) or settings.pg_dsn):
        missing.insert(0, f"{reader_env} (or {config.env_var('pg_dsn')})")
    if missing:
        raise ValueError(f"TOKENWATCH_ENV=prod needs {', '.join(missing)} to be set")
    return World(roles.dsn_for(roles.READER, lambda: config.secret(settings.pg_dsn)),
                 boto3.client("kinesis"), settings.stream,
                 boto3.client("s3"), settings.bucket)
