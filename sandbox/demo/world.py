"""The demo's own world, reset at its start, so its numbers are exactly what it simulated.

* **PostgreSQL**: a database of its own, ``tokenwatch_demo`` on the server tokenwatch resolves
  to (``tokenwatch.postgres``; with ``TOKENWATCH_PG_DSN`` the same server and user, another
  dbname), dropped and created again, then migrated. The server's other databases
  (``tokenwatch``, anyone's) are never touched.
* **The warehouse**: the default local DuckDB file, ``$TOKENWATCH_HOME/warehouse.duckdb``, and
  its read replica, deleted. The default one, not a file of the demo's own, because it is the
  file ``make dagster``, ``make docs``, dbt by hand and the Tableau hint all open: after a demo
  they show the demo's week. It is derived data (ingestion and dbt rebuild it from the
  sources), and a ``TOKENWATCH_DUCKDB_PATH`` set by the user is never the demo's: the demo
  points its own process at the default file instead.
* **The lake and the stream** of the local stack (moto): the bucket emptied, the stream
  deleted and created again with its shards, so ingestion reads only what the demo writes.
* **The stack file**: ``stack.json`` names the demo's database (so ``make dagster`` and
  ``tokenwatch ingest`` read it too), and its ``data_start`` starts again.

The simulator's seed is one per first day: a second demo on the same day resets this world and
simulates exactly the same traffic into it, so it prints the same numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from psycopg.conninfo import make_conninfo

DEMO_DATABASE = "tokenwatch_demo"


@dataclass(frozen=True)
class DemoWorld:
    """Where the demo writes: its database (on ``server``) and its warehouse file."""

    server: object  # tokenwatch.postgres.PgServer
    database: str
    warehouse: Path

    @property
    def dsn(self) -> str:
        """The demo's database as the admin."""
        return self.server.dsn_for(self.database)

    def environment(self) -> dict[str, str]:
        """The variables that point every part of this process (the service, ingestion, dbt,
        the gate) at this world."""
        env = {"TOKENWATCH_DUCKDB_PATH": str(self.warehouse), "TOKENWATCH_WAREHOUSE": "duckdb",
               "TOKENWATCH_DUCKDB_REPLICA_PATH": str(self.replica)}
        if self.server.source == "env":
            env["TOKENWATCH_PG_DSN"] = make_conninfo(self.server.dsn, dbname=self.database)
        else:
            env["TOKENWATCH_PG_DATABASE"] = self.database
        return env

    @property
    def replica(self) -> Path:
        """The warehouse's read replica, under its default name."""
        from ingestion.warehouse import replica_beside

        return replica_beside(self.warehouse)

    def describe(self) -> str:
        return (f"database {self.database} (the server's other databases untouched), "
                f"warehouse {self.warehouse}")


def demo_world(database: str = DEMO_DATABASE, warehouse: Path | None = None) -> DemoWorld:
    """The demo's world on the server tokenwatch resolves to (see ``tokenwatch.postgres``)."""
    from tokenwatch import config
    from tokenwatch.postgres import resolve_server

    return DemoWorld(resolve_server(), database,
                     warehouse or config.home() / "warehouse.duckdb")


def activate(world: DemoWorld) -> None:
    """Point this process at ``world`` (``os.environ``, for the rest of the demo)."""
    os.environ.update(world.environment())


def reset_database(world: DemoWorld) -> str:
    """Drop the demo's database, create it again and migrate it; return its DSN."""
    from state_service.migrate import migrate
    from tokenwatch.postgres import drop_database, ensure_database

    drop_database(world.server, world.database)
    dsn = ensure_database(world.server, world.database)
    migrate(dsn)
    return dsn


def reset_warehouse(world: DemoWorld) -> list[Path]:
    """Delete the demo's warehouse file, its WAL and its read replica; return what was there."""
    removed = []
    for base in (world.warehouse, world.replica):
        for path in (base, base.with_name(base.name + ".wal")):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


def reset_lake(stack) -> int:
    """Empty the stack's bucket and create its stream again (same shards); return how many
    objects were deleted."""
    from ingestion.sources.s3 import list_objects

    s3, kinesis = stack.s3_client(), stack.kinesis_client()
    keys = [{"Key": obj["Key"]} for obj in list_objects(s3, stack.bucket, "")]
    for start in range(0, len(keys), 1000):  # delete_objects takes 1,000 keys at a time
        s3.delete_objects(Bucket=stack.bucket,
                          Delete={"Objects": keys[start:start + 1000], "Quiet": True})
    deleted = len(keys)
    try:
        kinesis.delete_stream(StreamName=stack.stream, EnforceConsumerDeletion=True)
        kinesis.get_waiter("stream_not_exists").wait(
            StreamName=stack.stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    except kinesis.exceptions.ResourceNotFoundException:
        pass
    kinesis.create_stream(StreamName=stack.stream, ShardCount=stack.shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stack.stream,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return deleted


def point_stack_at(stack, world: DemoWorld):
    """Write ``stack.json`` naming the demo's database (and no data start yet); return the
    stack as every reader of the file now gets it."""
    from tokenwatch.stack_file import Stack

    replace(stack, pg_dsn=make_conninfo(stack.pg_dsn, dbname=world.database),
            data_start="").save()
    return Stack.load()


def reset(world: DemoWorld, stack=None) -> str:
    """The demo's whole world as new: its database, its warehouse and (with ``stack``) the
    lake, the stream and the stack file. Returns the one line the demo prints."""
    reset_database(world)
    reset_warehouse(world)
    if stack is not None:
        reset_lake(stack)
        point_stack_at(stack, world)
    return (f"reset the demo's world: {world.describe()}"
            + (f", bucket {stack.bucket}, stream {stack.stream}" if stack is not None else ""))
