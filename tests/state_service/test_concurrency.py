"""Concurrent writers on the same tokens: nothing lost, nothing applied twice."""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter

import httpx

from state_service.audit import verify_log
from state_service.lifecycle import State
from tests.conftest import API_KEY
from tests.state_service.helpers import token_in, transition_body
from tokenwatch import config

WRITERS = 16
ATTEMPTS_PER_WRITER = 40


def _run_writers(target) -> None:
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def wrapped(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_racing_suspend_resume_on_shared_tokens(service, client, db, pg_dsn):
    tokens = [token_in(client, State.TOKEN_ACTIVE) for _ in range(3)]
    created: Counter = Counter()
    refused: Counter = Counter()
    lock = threading.Lock()

    def writer(i):
        rng = random.Random(i)
        with httpx.Client(base_url=service.url, timeout=60,
                          headers={"Authorization": f"Bearer {API_KEY}"}) as c:
            for _ in range(ATTEMPTS_PER_WRITER):
                ref = rng.choice(tokens)
                to = rng.choice([State.TOKEN_SUSPENDED, State.TOKEN_ACTIVE])
                r = c.post(f"/v1/tokens/{ref}/transitions",
                           json=transition_body(to, actor="issuer"))
                assert r.status_code in (201, 409), r.text
                with lock:
                    (created if r.status_code == 201 else refused)[ref] += 1

    _run_writers(writer)
    assert sum(created.values()) + sum(refused.values()) == WRITERS * ATTEMPTS_PER_WRITER
    for ref in tokens:
        rows = db.execute("select version, from_state, to_state from token_state_transitions "
                          "where token_ref = %s order by version", [ref]).fetchall()
        # exactly the accepted writes, on top of the 6 rows of the walk to TokenActive
        assert len(rows) == 6 + created[ref]
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        # every row starts where the previous one ended: no lost or doubled update
        assert all(b[1] == a[2] for a, b in itertools.pairwise(rows))
        state, version = db.execute("select state, version from tokens where token_ref = %s",
                                    [ref]).fetchone()
        assert (state, version) == (rows[-1][2], len(rows))
    assert verify_log(pg_dsn, config.chain_keys()[1]).ok


def test_same_event_id_from_many_writers_is_recorded_once(service, client, db):
    ref = token_in(client, State.TOKEN_REQUESTED)
    body = transition_body(State.PROVISION_INITIATED, actor="wallet")
    statuses: list[int] = []

    def writer(_):
        r = httpx.post(f"{service.url}/v1/tokens/{ref}/transitions", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {API_KEY}"})
        statuses.append(r.status_code)

    _run_writers(writer)
    assert sorted(statuses) == [200] * (WRITERS - 1) + [201]
    assert db.execute("select count(*) from token_state_transitions where event_id = %s",
                      [body["event_id"]]).fetchone()[0] == 1
