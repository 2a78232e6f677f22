"""A way to write transition rows into a state-service database of the test's own
(``source_dsn``, from tests/conftest.py)."""

from __future__ import annotations

import psycopg

HASH = "0" * 64


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
