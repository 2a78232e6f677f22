"""A simulated world for tests that need realistic data: its own state-service database,
its own bucket and stream on the session's moto server, and the simulator's summary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestration.local.simulator.faults import Faults
from orchestration.local.simulator.run import Settings, Target, simulate
from state_service import roles
from state_service.app import create_app
from state_service.database import PgServer, ensure_database
from state_service.migrate import migrate
from state_service.server import ServiceThread

START = datetime(2026, 11, 2, tzinfo=UTC)
#: Faults on, at rates high enough that every kind shows up in a few hundred tokens.
FAULTS = Faults(kinesis_duplicates=0.05, s3_duplicate_objects=0.1, malformed_lines=0.02,
                malformed_records=0.02, illegal_transitions=0.1, retries=0.05)


def fresh_target(local_stack, service_url: str, api_key: str, shards: int = 4) -> Target:
    """A new bucket and stream on the stack's moto server, for one simulation."""
    s3, kinesis = local_stack.s3_client(), local_stack.kinesis_client()
    bucket, stream = f"lake-{uuid.uuid4().hex[:8]}", f"events-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return Target(service_url, api_key, kinesis, stream, s3, bucket)


@dataclass(frozen=True)
class World:
    settings: Settings
    target: Target
    summary: dict
    pg_dsn: str  # the database holding exactly this world's transitions, as readers see it
    #              (tokenwatch_reader, what ingestion connects as)
    database: str
    admin_dsn: str = ""  # the same database as the admin


def build_world(pg_server: PgServer, local_stack, api_key: str, tokens: int = 300,
                days: int = 3, seed: int = 4242, faults: Faults = FAULTS) -> World:
    """Simulate ``tokens`` tokens into a database, bucket and stream of their own."""
    database = f"tokenwatch_world_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, database)
    migrate(dsn)
    settings = Settings(tokens=tokens, days=days, seed=seed, start=START, faults=faults)
    service_dsn = roles.role_dsn(dsn, roles.SERVICE)  # the service under its role
    with ServiceThread(create_app(service_dsn, api_keys=[api_key], pool_size=8,
                                  run_migrations=False)) as svc:
        target = fresh_target(local_stack, svc.url, api_key)
        summary = simulate(settings, target)
    return World(settings, target, summary, roles.role_dsn(dsn, roles.READER), database, dsn)
