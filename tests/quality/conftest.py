"""A state-service database of the test's own, and a way to write transition rows into it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from state_service.database import drop_database, ensure_database
from state_service.migrate import migrate

HASH = "0" * 64


@pytest.fixture()
def source_dsn(pg_server) -> Iterator[str]:
    name = f"tokenwatch_qsrc_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    migrate(dsn)
    yield dsn
    drop_database(pg_server, name)


def write_token(dsn: str, token_ref: str, states: list[str]) -> None:
    """A token and one transition row per state, in one committed transaction (the hash chain
    and the lifecycle's legality are not what these tests are about)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into tokens values (%s, 'apple_pay', 'visa', 'hce', 'ref', %s, %s, "
                     "%s, now(), now())", [token_ref, states[-1], len(states), HASH])
        for version, state in enumerate(states, start=1):
            conn.execute(
                "insert into token_state_transitions (token_ref, version, event_id, to_state, "
                "actor, wallet_id, network, token_type, occurred_at, recorded_at, "
                "request_hash, prev_hash, row_hash) values (%s, %s, %s, %s, 'wallet', "
                "'apple_pay', 'visa', 'hce', now(), now(), %s, %s, %s)",
                [token_ref, version, f"{token_ref}-{version}", state, HASH, HASH, HASH])
