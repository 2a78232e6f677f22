"""A simulated world for tests that need realistic data: its own state-service database,
its own bucket and stream on the session's moto server, and the simulator's summary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ingestion.world import World
from sandbox.simulator.faults import Faults
from sandbox.simulator.run import Settings, simulate
from state_service import roles
from state_service.app import create_app
from state_service.migrate import migrate
from state_service.server import ServiceThread
from tokenwatch.postgres import PgServer, ensure_database

START = datetime(2026, 11, 2, tzinfo=UTC)
#: Faults on, at rates high enough that every kind shows up in a few hundred tokens.
FAULTS = Faults(kinesis_duplicates=0.05, s3_duplicate_objects=0.1, malformed_lines=0.02,
                malformed_records=0.02, illegal_transitions=0.1, retries=0.05)


def fresh_target(local_stack, service_url: str, api_key: str, shards: int = 4) -> World:
    """A new bucket and stream on the stack's moto server, for one simulation."""
    s3, kinesis = local_stack.s3_client(), local_stack.kinesis_client()
    bucket, stream = f"lake-{uuid.uuid4().hex[:8]}", f"events-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return World(pg_dsn="", kinesis=kinesis, stream=stream, s3=s3, bucket=bucket,
                 service_url=service_url, api_key=api_key)


@dataclass(frozen=True)
class Simulated:
    """A simulation's world (where it wrote) and what it wrote."""

    settings: Settings
    target: World
    summary: dict
    pg_dsn: str  # the database holding exactly this world's transitions, as readers see it
    #              (tokenwatch_reader, what ingestion connects as)
    database: str
    admin_dsn: str = ""  # the same database as the admin

    def sources(self) -> World:
        """The world as ingestion reads it (the database as ``tokenwatch_reader``)."""
        return replace(self.target, pg_dsn=self.pg_dsn)


def build_world(pg_server: PgServer, local_stack, api_key: str, tokens: int = 300,
                days: int = 3, seed: int = 4242, faults: Faults = FAULTS) -> Simulated:
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
    return Simulated(settings, target, summary, roles.role_dsn(dsn, roles.READER), database,
                     dsn)
