"""The HTTP contract, against the service on real HTTP and a real PostgreSQL database."""

from __future__ import annotations

import httpx
import pytest

from state_service import lifecycle
from state_service.lifecycle import State
from tests.state_service.helpers import (
    WALK,
    create_body,
    new_ref,
    token_in,
    transition_body,
)
from tokenwatch import wallets

S = State


def count_rows(db, token_ref: str) -> int:
    return db.execute("select count(*) from token_state_transitions where token_ref = %s",
                      [token_ref]).fetchone()[0]


JOURNEYS = {
    "provisioned_then_expired": WALK[S.TOKEN_EXPIRED],
    "yellow_suspend_resume_deactivate": [
        (S.PROVISION_INITIATED, {}),
        (S.PROVISION_PENDING, {"decision": "yellow", "idv_method": "otp_sms"}),
        (S.PROVISION_SUCCESS, {}),
        (S.WALLET_ACTIVE, {}),
        (S.TOKEN_ACTIVE, {}),
        (S.TOKEN_SUSPENDED, {"reason_code": "suspected_fraud", "actor": "issuer"}),
        (S.TOKEN_ACTIVE, {"reason_code": "not_fraud", "actor": "issuer"}),
        (S.TOKEN_SUSPENDED, {"reason_code": "device_lost", "actor": "cardholder"}),
        (S.TOKEN_DEACTIVATED, {"reason_code": "device_stolen", "actor": "cardholder"}),
    ],
    "red_declined": WALK[S.PROVISION_FAILED][:1] + [
        (S.PROVISION_PENDING, {"decision": "red"}),
        (S.PROVISION_FAILED, {"reason_code": "risk_declined"}),
    ],
}


@pytest.mark.parametrize("wallet", wallets.wallet_ids())
@pytest.mark.parametrize("journey", sorted(JOURNEYS))
def test_full_legal_path_per_wallet(client, db, wallet, journey):
    ref = new_ref(wallet)
    r = client.post("/v1/tokens", json=create_body(ref, wallet, network="mastercard"))
    assert r.status_code == 201, r.text
    assert r.json() == {"token_ref": ref, "state": "TokenRequested", "version": 1,
                        "replayed": False}
    steps = JOURNEYS[journey]
    for i, (to_state, extra) in enumerate(steps, start=2):
        extra = dict(extra)
        body = transition_body(to_state, actor=extra.pop("actor", "token_service"), **extra)
        r = client.post(f"/v1/tokens/{ref}/transitions", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["state"] == to_state.value and r.json()["version"] == i

    detail = client.get(f"/v1/tokens/{ref}").json()
    assert detail["state"] == steps[-1][0].value and detail["wallet_id"] == wallet
    assert [h["to_state"] for h in detail["history"]] == (
        ["TokenRequested"] + [s.value for s, _ in steps])
    assert [h["version"] for h in detail["history"]] == list(range(1, len(steps) + 2))
    assert count_rows(db, ref) == len(steps) + 1


@pytest.mark.parametrize("wallet", ["shady_pay", "Apple_Pay", "apple_pay ", "apple", "x" * 300])
def test_an_unregistered_wallet_is_refused_naming_the_registry(client, db, wallet):
    ref = new_ref()
    for r in (client.post("/v1/tokens", json=create_body(ref, wallet)),
              client.post("/v1/batch", json={"items": [
                  {"op": "create", **create_body(ref, wallet)}]}).json()["results"][0]):
        status, body = (r.status_code, r.json()) if isinstance(r, httpx.Response) else (
            r["status"], r["body"])
        assert status == 422, body
        assert body["error"] == "invalid_request" and set(body) == {"error", "fields", "message"}
        (field,) = body["fields"]
        assert field["field"] == "wallet_id"
        assert "tokenwatch/wallets.py" in field["message"]
        assert all(w in field["message"] for w in wallets.wallet_ids())
        assert body["message"] == f"wallet_id: {field['message']}"
        assert wallet not in [m.strip(", ()") for m in field["message"].split()]  # not echoed
    assert count_rows(db, ref) == 0
    assert db.execute("select count(*) from tokens where token_ref = %s", [ref]).fetchone()[0] == 0


def test_the_contract_lists_the_registered_wallets(client):
    spec = client.get("/openapi.json").json()
    for name in ("CreateToken", "BatchCreate"):
        assert spec["components"]["schemas"][name]["properties"]["wallet_id"]["enum"] == list(
            wallets.wallet_ids())
    assert client.get("/v1/lifecycle").json()["wallets"] == list(wallets.wallet_ids())


def test_every_illegal_pair_is_refused_and_writes_nothing(client, db):
    refused = 0
    for from_state in State:
        ref = token_in(client, from_state)
        before = count_rows(db, ref)
        for to_state in State:
            if lifecycle.is_legal(from_state, to_state):
                continue
            extra = {"decision": "green"} if to_state == lifecycle.DECISION_STATE else {}
            r = client.post(f"/v1/tokens/{ref}/transitions",
                            json=transition_body(to_state, **extra))
            assert r.status_code == 409, (from_state, to_state, r.text)
            assert r.json() == {
                "error": "illegal_transition", "from_state": from_state.value,
                "message": f"{from_state.value} -> {to_state.value} is not a legal transition",
                "to_state": to_state.value,
                "allowed": [s.value for s in lifecycle.allowed_from(from_state)]}
            refused += 1
        assert count_rows(db, ref) == before
        assert db.execute("select state from tokens where token_ref = %s",
                          [ref]).fetchone()[0] == from_state.value
    assert refused == len(lifecycle.illegal_pairs())


def test_replay_with_same_body_is_idempotent(client, db):
    ref = token_in(client, S.TOKEN_REQUESTED)
    body = transition_body(S.PROVISION_INITIATED, actor="wallet")
    first = client.post(f"/v1/tokens/{ref}/transitions", json=body)
    again = client.post(f"/v1/tokens/{ref}/transitions", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json() | {"replayed": True}
    assert count_rows(db, ref) == 2

    create = create_body(new_ref())
    assert client.post("/v1/tokens", json=create).status_code == 201
    assert client.post("/v1/tokens", json=create).status_code == 200
    assert count_rows(db, create["token_ref"]) == 1


def test_replay_with_different_body_conflicts(client, db):
    ref = token_in(client, S.TOKEN_REQUESTED)
    body = transition_body(S.PROVISION_INITIATED, actor="wallet")
    assert client.post(f"/v1/tokens/{ref}/transitions", json=body).status_code == 201
    r = client.post(f"/v1/tokens/{ref}/transitions", json=body | {"actor": "issuer"})
    assert r.status_code == 409 and r.json()["error"] == "event_id_conflict"
    # the same event_id on another token is a conflict too
    other = token_in(client, S.TOKEN_REQUESTED)
    r = client.post(f"/v1/tokens/{other}/transitions", json=body)
    assert r.status_code == 409 and r.json()["error"] == "event_id_conflict"
    assert count_rows(db, ref) == 2 and count_rows(db, other) == 1
    # a second creation of the same token under a new event id
    r = client.post("/v1/tokens", json=create_body(ref, event_id="another-create"))
    assert r.status_code == 409 and r.json()["error"] == "token_exists"


def test_unknown_token_is_404(client):
    r = client.post("/v1/tokens/nope-123/transitions",
                    json=transition_body(S.PROVISION_INITIATED))
    assert r.status_code == 404 and r.json()["error"] == "token_not_found"
    assert client.get("/v1/tokens/nope-123").status_code == 404


def test_writes_need_a_valid_bearer_key(service, db):
    ref = new_ref()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        r = httpx.post(f"{service.url}/v1/tokens", json=create_body(ref), headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "unauthorized"
    assert db.execute("select count(*) from tokens where token_ref = %s",
                      [ref]).fetchone()[0] == 0
    # reads need a key too
    assert httpx.get(f"{service.url}/v1/lifecycle").status_code == 401


@pytest.mark.parametrize(("field", "value", "says"), [
    ("network", "amex", "network"),
    ("wallet_id", "Bad Wallet!", "wallet_id"),
    ("occurred_at", "2026-11-01T10:00:00", "occurred_at"),  # no timezone
    ("token_ref", "has|pipe", "token_ref"),
    ("token_type", None, "token_type"),
])
def test_malformed_creation_says_which_field(client, field, value, says):
    r = client.post("/v1/tokens", json=create_body(new_ref()) | {field: value})
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert says in [f["field"] for f in r.json()["fields"]], r.json()


@pytest.mark.parametrize(("body", "says"), [
    ({"to_state": "NotAState"}, "to_state"),
    ({"actor": "martian"}, "actor"),
    ({"reason_code": "bored"}, "reason_code"),
    ({"to_state": "ProvisionPending"}, "decision is required"),
    ({"to_state": "ProvisionPending", "decision": "yellow"}, "idv_method is required"),
    ({"decision": "green"}, "only allowed on ProvisionPending"),
    ({"surprise": 1}, "surprise"),
])
def test_malformed_transition_says_what_is_wrong(client, body, says):
    ref = token_in(client, S.TOKEN_REQUESTED)
    r = client.post(f"/v1/tokens/{ref}/transitions",
                    json=transition_body(S.PROVISION_INITIATED) | body)
    assert r.status_code == 422
    assert says in r.json()["message"], r.json()


@pytest.mark.parametrize("pan", ["4111111111111111", "5500005555555559", "378282246310005",
                                 "6011000990139424"])
def test_pan_like_card_ref_is_rejected_and_not_echoed(client, db, pan):
    ref = new_ref()
    r = client.post("/v1/tokens", json=create_body(ref, card_ref=pan))
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "card_ref"
    assert "card number" in r.json()["message"]
    assert pan not in r.text
    assert db.execute("select count(*) from tokens where token_ref = %s",
                      [ref]).fetchone()[0] == 0


def test_digit_card_ref_failing_luhn_is_accepted(client):
    r = client.post("/v1/tokens", json=create_body(new_ref(), card_ref="4111111111111112"))
    assert r.status_code == 201


def test_lifecycle_health_and_openapi(client):
    machine = client.get("/v1/lifecycle").json()
    assert machine["initial_state"] == "TokenRequested"
    assert {"from_state": "TokenSuspended", "to_state": "TokenActive"} in machine["transitions"]
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    spec = client.get("/openapi.json").json()
    assert {"/v1/tokens", "/v1/tokens/{token_ref}/transitions", "/v1/tokens/{token_ref}",
            "/v1/lifecycle", "/healthz"} <= set(spec["paths"])
