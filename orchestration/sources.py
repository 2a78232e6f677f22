"""Where the sources are, by environment: the local stack, or AWS and the state database.

``TOKENWATCH_ENV=local`` reads the endpoints that ``tokenwatch stack up`` wrote.
``TOKENWATCH_ENV=prod`` uses boto3's default credential chain and region, the bucket and
stream named by ``TOKENWATCH_BUCKET`` / ``TOKENWATCH_STREAM``, and the state service's
database as ``TOKENWATCH_READER_PG_DSN`` gives it (or ``TOKENWATCH_PG_DSN`` with the reader
role as the user).

Either way the state database is read as ``tokenwatch_reader`` (SELECT only, see
``state_service.roles``): ingestion and the gate's reconciliation never hold the admin's
rights.
"""

from __future__ import annotations

import os

from ingestion.run import Sources
from state_service import config, roles


def sources_from_env() -> Sources:
    if config.env_name() == "local":
        from orchestration.local.stack import Stack

        stack = Stack.load()
        return Sources(roles.dsn_for(roles.READER, stack.pg_dsn), stack.kinesis_client(),
                       stack.stream, stack.s3_client(), stack.bucket)
    import boto3

    reader_env = roles.DSN_ENV[roles.READER]
    missing = [v for v in ("TOKENWATCH_BUCKET", "TOKENWATCH_STREAM") if not os.environ.get(v)]
    if not (os.environ.get(reader_env) or os.environ.get("TOKENWATCH_PG_DSN")):
        missing.insert(0, f"{reader_env} (or TOKENWATCH_PG_DSN)")
    if missing:
        raise ValueError(f"TOKENWATCH_ENV=prod needs {', '.join(missing)} to be set")
    return Sources(roles.dsn_for(roles.READER, lambda: os.environ["TOKENWATCH_PG_DSN"]),
                   boto3.client("kinesis"), os.environ["TOKENWATCH_STREAM"],
                   boto3.client("s3"), os.environ["TOKENWATCH_BUCKET"])
