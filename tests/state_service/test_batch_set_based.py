"""The set-based batch answers and writes exactly what its items sent one by one would have,
concurrent batches on the same tokens neither deadlock nor lose a write, and a value
PostgreSQL refuses costs only its own item."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
from psycopg.rows import dict_row

from state_service import chain, lifecycle
from state_service.app import create_app
from state_service.batch_writer import BatchWriter, Item
from state_service.lifecycle import State
from state_service.schemas import CreateToken
from tests.state_service.helpers import create_body, new_ref, transition_body
from tokenwatch import config

_COMPARED = ("version", "event_id", "from_state", "to_state", "actor", "reason_code",
             "decision", "idv_method", "wallet_id", "network", "token_type", "occurred_at",
             "request_hash")


def _script(rng: random.Random, refs: list[str]) -> list[dict]:
    """A random sequence: creations, legal and illegal moves, replays, reused event_ids,
    unknown tokens, duplicate creations."""
    items: list[dict] = []
    states: dict[str, State] = {}  # what the script expects, to make most moves legal
    for _ in range(160):
        ref = rng.choice(refs)
        roll = rng.random()
        if roll < 0.15 or ref not in states:
            states.setdefault(ref, lifecycle.INITIAL_STATE)
            items.append({"op": "create", **create_body(ref, rng.choice(
                ["apple_pay", "google_pay"]), event_id=f"{ref}-c{rng.randrange(2)}")})
        elif roll < 0.25 and items:
            items.append(dict(rng.choice(items)))  # a replay (or a conflict, after a change)
        elif roll < 0.3 and items:
            other = dict(rng.choice(items))  # an event_id reused for a different request
            other["occurred_at"] = "2026-11-02T00:00:00Z"
            items.append(other)
        else:
            allowed = lifecycle.allowed_from(states[ref])
            to = rng.choice(allowed) if allowed and rng.random() < 0.85 else rng.choice(
                list(State))
            if to in allowed:
                states[ref] = to
            extra = {"decision": "green"} if to == lifecycle.DECISION_STATE else {}
            body = transition_body(to, **extra)
            items.append({"op": "transition", "token_ref": ref if roll < 0.97 else "nobody",
                          **body})
    return items


def _rename(items: list[dict], mapping: dict[str, str]) -> list[dict]:
    def swap(v):
        if isinstance(v, str):
            for a, b in mapping.items():
                v = v.replace(a, b)
        return v
    out = [{k: swap(v) for k, v in item.items()} for item in items]
    for item in out:  # the one-by-one run's event_ids are its own too
        if "event_id" in item:
            item["event_id"] = "b." + item["event_id"]
    return out


def _rows(db, refs: list[str]) -> list[dict]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute("select *, xact_id::text as xact_id from token_state_transitions"
                           " where token_ref = any(%s) order by token_ref, version",
                           [refs]).fetchall()


def test_a_batch_answers_and_writes_what_its_items_one_by_one_would(client, db):
    rng = random.Random(17)
    a = [new_ref("seta") for _ in range(6)]
    b = [r.replace("seta", "setb") for r in a]
    items = _script(rng, a)
    mapping = dict(zip(a, b, strict=True))
    singles = _rename(items, mapping)
    batch = client.post("/v1/batch", json={"items": items})
    assert batch.status_code == 200
    one_by_one = []
    for item in singles:
        op = item.pop("op")
        if op == "create":
            r = client.post("/v1/tokens", json=item)
        else:
            r = client.post(f"/v1/tokens/{item.pop('token_ref')}/transitions", json=item)
        one_by_one.append((r.status_code, r.json()))
    answers = [(x["status"], x["body"]) for x in batch.json()["results"]]
    renamed = [str(a).replace("seta", "setb") for a in answers]
    assert renamed == [str(a) for a in one_by_one]
    statuses = {s for s, _ in answers}
    assert {200, 201, 404, 409} <= statuses, statuses  # the script covered the cases
    got_a, got_b = _rows(db, a), _rows(db, b)
    assert len(got_a) == len(got_b) > 20
    for ra, rb in zip(got_a, got_b, strict=True):
        assert ra["token_ref"].replace("seta", "setb") == rb["token_ref"]
        for col in _COMPARED:
            va, vb = ra[col], rb[col]
            if col == "event_id":
                va = "b." + va.replace("seta", "setb")
            if col != "request_hash":
                assert va == vb, col
    key_id, keyring = config.chain_keys()
    for ref in a:
        prev = chain.GENESIS_HASH
        for row in (r for r in got_a if r["token_ref"] == ref):
            assert row["prev_hash"] == prev and row["row_hash"] == chain.row_hash(row)
            assert row["row_mac"] == chain.row_mac(keyring[row["key_id"]], row)
            prev = row["row_hash"]
        token = db.execute("select last_hash, version from tokens where token_ref = %s",
                           [ref]).fetchone()
        if token:
            assert token[0] == prev


def test_concurrent_batches_on_the_same_tokens_neither_deadlock_nor_lose_a_write(client, db):
    refs = [new_ref("race") for _ in range(8)]
    walk = [(State.PROVISION_INITIATED, {}), (State.PROVISION_PENDING, {"decision": "green"}),
            (State.PROVISION_SUCCESS, {}), (State.WALLET_ACTIVE, {}), (State.TOKEN_ACTIVE, {})]
    setup = [{"op": "create", **create_body(r)} for r in refs]
    setup += [{"op": "transition", "token_ref": r, **transition_body(s, **x)}
              for s, x in walk for r in refs]
    assert {x["status"] for x in client.post("/v1/batch", json={"items": setup}).json()[
        "results"]} == {201}
    created: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=str(client.base_url), headers=client.headers,
                          timeout=60) as c:
            for _ in range(6):
                order = rng.sample(refs, len(refs))
                items = [{"op": "transition", "token_ref": r, **transition_body(rng.choice(
                    [State.TOKEN_SUSPENDED, State.TOKEN_ACTIVE]))} for r in order]
                r = c.post("/v1/batch", json={"items": items})
                assert r.status_code == 200
                n = sum(1 for x in r.json()["results"] if x["status"] == 201)
                assert all(x["status"] in (201, 409) for x in r.json()["results"])
                with lock:
                    created.append(n)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(created) == 24
    versions = db.execute("select sum(version) from tokens where token_ref = any(%s)",
                          [refs]).fetchone()[0]
    assert versions == len(refs) * 6 + sum(created)
    rows = db.execute("select count(*) from token_state_transitions where token_ref = any(%s)",
                      [refs]).fetchone()[0]
    assert rows == versions


def test_a_value_postgresql_refuses_costs_only_its_own_item(service_dsn):
    """The schema refuses NUL characters; should one get past it, PostgreSQL's refusal fails the
    set-based statement, and the batch is written item by item: the others still land."""
    app = create_app(service_dsn, api_keys=["k" * 16], run_migrations=False)
    writer = BatchWriter(app.state.store)
    good, bad = new_ref("nul"), new_ref("nul")
    now = datetime.now(UTC)
    body = {"wallet_id": "apple_pay", "network": "visa", "token_type": "hce",
            "actor": "token_service", "occurred_at": now}

    async def write() -> list:
        await app.state.store.pool.open(wait=True)
        try:
            return await writer.write([
                Item(good, CreateToken.model_validate(
                    {"token_ref": good, "card_ref": "c-1", "event_id": uuid.uuid4().hex}
                    | body)),
                Item(bad, CreateToken.model_construct(
                    token_ref=bad, card_ref="c\x00", event_id=uuid.uuid4().hex, **body)),
            ])
        finally:
            await app.state.store.pool.close()

    results = asyncio.run(write())
    assert results[0].created and results[0].version == 1
    assert isinstance(results[1], psycopg.DataError)

