"""Group commit (state_service/group_commit.py): single writes that wait for a busy worker go
together as one transaction, and each still answers exactly what it would have answered
alone; a client that goes away, or a database that does, costs nobody else's write."""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import pytest
from psycopg.rows import dict_row

from state_service import verify
from state_service.app import create_app
from state_service.batch_writer import BatchWriter
from state_service.group_commit import GroupCommit
from state_service.lifecycle import State
from state_service.schemas import CreateToken, TransitionRequest
from state_service.server import ServiceThread
from state_service.store import DatabaseUnavailable, Outcome, StoreError, TransitionStore
from tests.conftest import API_KEY
from tests.state_service.helpers import WALK, create_body, new_ref, token_in, transition_body
from tests.tcp_proxy import Proxy
from tokenwatch import config
from tokenwatch.postgres import drop_database, ensure_database


def _answer(result) -> tuple:
    """What a client hears, with the token's name taken out (two runs use different ones)."""
    if isinstance(result, Outcome):
        return ("ok", result.state, result.version, result.created, result.from_state,
                result.wallet_id, result.actor)
    assert isinstance(result, StoreError), result
    return (type(result).__name__, str(result))


def _moves(ref: str, twin: str) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """One token's writes as (token_ref, body), the same for its twin but for the names:
    legal moves, an illegal one, a replay, a reused event_id, an unknown token, a creation of
    a token that exists, and a creation with a move of the new token right behind it."""
    suspend = transition_body(State.TOKEN_SUSPENDED, reason_code="device_lost")
    reused = transition_body(State.TOKEN_ACTIVE) | {"event_id": suspend["event_id"]}
    new = new_ref("gcnew")
    out = [
        (ref, suspend),
        (ref, transition_body(State.TOKEN_SUSPENDED)),  # illegal: already suspended
        (ref, dict(suspend)),  # a replay of the first
        (ref, reused),  # its event_id for a different request
        (ref, transition_body(State.TOKEN_ACTIVE)),
        ("nobody-" + ref, transition_body(State.TOKEN_ACTIVE)),
        ("create", create_body(ref, event_id=f"again-{uuid.uuid4().hex}")),  # exists
        ("create", create_body(new)),
        (new, transition_body(State.PROVISION_INITIATED)),
    ]
    names = {ref: twin, new: new.replace("gcnew", "gctwn")}

    def rename(v):
        if isinstance(v, str):
            for a, b in names.items():
                v = v.replace(a, b)
        return v

    twins = [(rename(r), {k: rename(v) for k, v in body.items()} | (
        {"event_id": "t." + body["event_id"]} if "event_id" in body else {}))
        for r, body in out]
    return out, twins


def _call(writes, ref: str, body: dict):
    if ref == "create":
        return writes.create_token(CreateToken.model_validate(body))
    return writes.transition(ref, TransitionRequest.model_validate(body))


async def _settle(aw):
    try:
        return await aw
    except StoreError as exc:
        return exc


@pytest.fixture()
def store(service_dsn):
    app = create_app(service_dsn, api_keys=[API_KEY], run_migrations=False)
    return app.state.store


def _run(store: TransitionStore, body):
    async def main():
        await store.pool.open(wait=True)
        try:
            return await body()
        finally:
            await store.pool.close()
    return asyncio.run(main())


def _verified(db, refs: list[str]) -> verify.Verification:
    """``tokenwatch audit verify`` over these tokens only (other tests tamper with theirs)."""
    where = " where token_ref = any(%s) order by"
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(verify._ROWS_SQL.replace(" order by", where, 1), [refs]).fetchall()
        tokens = cur.execute(verify._TOKENS_SQL.replace(" order by", where, 1),
                             [refs]).fetchall()
    return verify.verify_streams(rows, tokens, [], config.chain_keys()[1], touched_only=True)


def test_writes_that_wait_go_as_one_group_and_answer_what_they_would_alone(
        client, store, db):
    refs = [token_in(client, State.TOKEN_ACTIVE) for _ in range(4)]
    twins = [token_in(client, State.TOKEN_ACTIVE) for _ in range(4)]
    blocker = token_in(client, State.TOKEN_ACTIVE)
    grouped, alone = [], []
    for ref, twin in zip(refs, twins, strict=True):
        a, b = _moves(ref, twin)
        grouped += a
        alone += b
    writes = GroupCommit(store, BatchWriter(store), in_flight=1)

    async def both():
        # the blocker goes alone and holds the one place; every write behind it waits
        first = asyncio.ensure_future(_call(writes, blocker, transition_body(
            State.TOKEN_SUSPENDED)))
        waiting = [asyncio.ensure_future(_settle(_call(writes, r, b))) for r, b in grouped]
        await asyncio.sleep(0)
        queued = len(writes._waiting)
        await first
        got = await asyncio.gather(*waiting)
        one_by_one = [await _settle(_call(store, r, b)) for r, b in alone]
        return queued, got, one_by_one

    queued, got, one_by_one = _run(store, both)
    assert queued == len(grouped)
    assert (writes.groups, writes.grouped) == (1, len(grouped))
    kinds = {type(r).__name__ for r in got}
    assert {"Outcome", "IllegalTransitionError", "EventIdConflict", "TokenNotFound",
            "TokenExists"} <= kinds, kinds
    assert [_answer(r) for r in got] == [_answer(r) for r in one_by_one]
    # the grouped rows chain and carry their seals as the write functions' do
    created = [r.token_ref for r in got if isinstance(r, Outcome)]
    checked = _verified(db, sorted(set(created)))
    assert checked.ok and checked.tokens == len(set(created)) == 8, checked.findings[:3]


def test_a_client_that_goes_away_takes_no_other_write_with_it(client, store, db):
    blocker = token_in(client, State.TOKEN_ACTIVE)
    refs = [token_in(client, State.TOKEN_ACTIVE) for _ in range(3)]
    bodies = [transition_body(State.TOKEN_SUSPENDED) for _ in refs]
    writes = GroupCommit(store, BatchWriter(store), in_flight=1)

    async def main():
        first = asyncio.ensure_future(_call(writes, blocker, transition_body(
            State.TOKEN_SUSPENDED)))
        waiting = [asyncio.ensure_future(_call(writes, r, b))
                   for r, b in zip(refs, bodies, strict=True)]
        await asyncio.sleep(0)
        waiting[0].cancel()  # the group's first write: its client left
        await first
        rest = await asyncio.gather(*waiting[1:])
        while writes.in_flight:  # the group outlives its first request
            await asyncio.sleep(0.01)
        return rest

    rest = _run(store, main)
    assert [(o.state, o.created) for o in rest] == [(State.TOKEN_SUSPENDED, True)] * 2
    # the write whose client left was written all the same (a retry would answer a replay)
    landed = db.execute("select count(*) from token_state_transitions where event_id = any(%s)",
                        [[b["event_id"] for b in bodies]]).fetchone()[0]
    assert landed == 3


def test_a_group_the_database_cannot_take_answers_503_to_each_write(service_dsn, client, db):
    refs = [token_in(client, State.TOKEN_ACTIVE) for _ in range(4)]
    bodies = [transition_body(State.TOKEN_SUSPENDED) for _ in refs]
    proxy = Proxy(service_dsn).start()
    app = create_app(proxy.proxied_dsn(), api_keys=[API_KEY], run_migrations=False)
    store = app.state.store
    writes = GroupCommit(store, BatchWriter(store), in_flight=1)

    async def main():
        await store.pool.open(wait=True)
        try:
            await store.ping()
            proxy.stop()
            tasks = [asyncio.ensure_future(_settle(_call(writes, r, b)))
                     for r, b in zip(refs, bodies, strict=True)]
            return await asyncio.gather(*tasks)
        finally:
            await store.pool.close()

    try:
        got = asyncio.run(main())
    finally:
        proxy.stop()
    assert writes.groups == 1
    assert all(isinstance(r, DatabaseUnavailable) for r in got), got
    assert len({id(r) for r in got}) == len(got)  # each its own, raised in its own request
    assert db.execute("select count(*) from token_state_transitions where event_id = any(%s)",
                      [[b["event_id"] for b in bodies]]).fetchone()[0] == 0


def test_under_real_http_load_groups_form_and_nothing_is_lost_or_doubled(
        service_dsn, db, monkeypatch):
    """32 clients through a service with one write in flight per worker: most writes wait
    and go in groups. Each client walks tokens of its own and all of them fight over one shared
    token with replays of each other's event ids; every answer is one its write could have had
    alone, and the log has exactly the writes answered 201."""
    monkeypatch.setenv("TOKENWATCH_SERVICE_WRITE_GROUPS", "1")
    app = create_app(service_dsn, api_keys=[API_KEY], run_migrations=False)
    statuses: list[int] = []
    lock = threading.Lock()
    with ServiceThread(app) as svc, httpx.Client(
            base_url=svc.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
        shared = token_in(c, State.TOKEN_ACTIVE)
        shared_events = [f"shared-{uuid.uuid4().hex}" for _ in range(6)]

        def work(n: int) -> None:
            with httpx.Client(base_url=svc.url, timeout=60,
                              headers={"Authorization": f"Bearer {API_KEY}"}) as own:
                ref = new_ref(f"gc{n}")
                mine = [own.post("/v1/tokens", json=create_body(ref)).status_code]
                for to, extra in WALK[State.TOKEN_ACTIVE]:
                    mine.append(own.post(f"/v1/tokens/{ref}/transitions",
                                         json=transition_body(to, **extra)).status_code)
                assert mine == [201] * 6, mine
                for i, event in enumerate(shared_events):  # the same 6 requests from everyone
                    to = State.TOKEN_SUSPENDED if i % 2 == 0 else State.TOKEN_ACTIVE
                    r = own.post(f"/v1/tokens/{shared}/transitions", json={
                        "to_state": to.value, "event_id": event, "actor": "issuer",
                        "occurred_at": "2026-11-20T10:00:00Z"})
                    with lock:
                        statuses.append(r.status_code)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        writes = app.state.writes
    assert len(statuses) == 32 * 6
    assert set(statuses) <= {200, 201, 409}, set(statuses)
    assert writes.groups > 0 and writes.grouped > writes.groups
    # each shared event recorded at most once; the token's versions are exactly its rows
    created = statuses.count(201)
    rows = db.execute("select count(*), count(distinct event_id) from token_state_transitions"
                      " where token_ref = %s and event_id like 'shared-%%'",
                      [shared]).fetchone()
    assert rows == (created, created)
    version = db.execute("select version from tokens where token_ref = %s",
                         [shared]).fetchone()[0]
    assert version == len(WALK[State.TOKEN_ACTIVE]) + 1 + created


def test_a_database_never_migrated_answers_503_to_every_write(pg_server):
    """Before ``tokenwatch db migrate``: the lone write (the write functions), a grouped write
    and a batch (plain SQL on tables that are not there) all answer 503 naming the cause. The
    batch writer let UndefinedTable through as a 500 before."""
    name = f"tokenwatch_bare_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    try:
        app = create_app(dsn, api_keys=[API_KEY], run_migrations=False)
        store = app.state.store
        writes = GroupCommit(store, BatchWriter(store), in_flight=1)

        async def main():
            tasks = [asyncio.ensure_future(_settle(_call(writes, "create", create_body(
                new_ref("bare"))))) for _ in range(3)]
            return await asyncio.gather(*tasks)

        got = _run(store, main)
        assert writes.groups == 1
        assert [type(r) for r in got] == [DatabaseUnavailable] * 3
        assert all("not migrated" in str(r) for r in got)
        with ServiceThread(create_app(dsn, api_keys=[API_KEY], run_migrations=False)) as svc:
            r = httpx.post(f"{svc.url}/v1/batch", headers={"Authorization": f"Bearer {API_KEY}"},
                           json={"items": [{"op": "create", **create_body(new_ref("bare"))}]})
        assert r.status_code == 200
        (item,) = r.json()["results"]
        assert item["status"] == 503 and "not migrated" in item["body"]["message"]
    finally:
        drop_database(pg_server, name)
