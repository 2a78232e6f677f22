"""Where the sources are, by environment: the local stack, or AWS and the state database.

``TOKENWATCH_ENV=local`` reads the endpoints that ``tokenwatch stack up`` wrote.
``TOKENWATCH_ENV=prod`` uses boto3's default credential chain and region, the bucket and
stream named by ``TOKENWATCH_BUCKET`` / ``TOKENWATCH_STREAM``, and ``TOKENWATCH_PG_DSN`` for
the state service's database.
"""

from __future__ import annotations

import os

from ingestion.run import Sources
from state_service import config


def sources_from_env() -> Sources:
    if config.env_name() == "local":
        from orchestration.local.stack import Stack

        stack = Stack.load()
        return Sources(stack.pg_dsn, stack.kinesis_client(), stack.stream, stack.s3_client(),
                       stack.bucket)
    import boto3

    missing = [v for v in ("TOKENWATCH_PG_DSN", "TOKENWATCH_BUCKET", "TOKENWATCH_STREAM")
               if not os.environ.get(v)]
    if missing:
        raise ValueError(f"TOKENWATCH_ENV=prod needs {', '.join(missing)} to be set")
    return Sources(os.environ["TOKENWATCH_PG_DSN"], boto3.client("kinesis"),
                   os.environ["TOKENWATCH_STREAM"], boto3.client("s3"),
                   os.environ["TOKENWATCH_BUCKET"])
