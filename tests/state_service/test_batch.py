"""The bulk path: each item applied exactly as its single endpoint would, in order."""

from __future__ import annotations

from state_service.lifecycle import State
from tests.state_service.helpers import create_body, new_ref, transition_body


def test_batch_applies_items_in_order_with_per_item_results(client, db):
    ref, other = new_ref(), new_ref()
    step = transition_body(State.PROVISION_INITIATED, actor="wallet")
    items = [
        {"op": "create", **create_body(ref, "samsung_pay")},
        {"op": "transition", "token_ref": ref, **step},
        {"op": "transition", "token_ref": ref, **step},  # retry: replay
        {"op": "transition", "token_ref": ref, **transition_body(State.TOKEN_ACTIVE)},  # illegal
        {"op": "transition", "token_ref": "missing-1", **transition_body(State.TOKEN_ACTIVE)},
        {"op": "create", **create_body(other, card_ref="4111111111111111")},  # PAN
        {"op": "transition", **transition_body(State.TOKEN_ACTIVE)},  # no token_ref
        {"op": "delete", "token_ref": ref},
        {"op": "transition", "token_ref": ref,
         **transition_body(State.PROVISION_PENDING, decision="yellow", idv_method="otp_email")},
    ]
    r = client.post("/v1/batch", json={"items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 201, 200, 409, 404, 422, 422, 422, 201]
    assert results[3]["body"]["error"] == "illegal_transition"
    assert results[3]["body"]["allowed"] == ["ProvisionPending"]
    assert results[5]["body"]["fields"][0]["field"] == "card_ref"
    assert "4111111111111111" not in r.text
    assert results[6]["body"]["fields"][0]["field"] == "token_ref"
    assert results[7]["body"]["fields"][0]["field"] == "op"
    assert results[8]["body"] == {"token_ref": ref, "state": "ProvisionPending", "version": 3,
                                  "replayed": False}
    assert db.execute("select count(*) from token_state_transitions where token_ref = %s",
                      [ref]).fetchone()[0] == 3
    assert db.execute("select count(*) from tokens where token_ref = %s",
                      [other]).fetchone()[0] == 0


def test_batch_needs_a_key_and_bounds_its_size(service, client):
    import httpx

    assert httpx.post(f"{service.url}/v1/batch", json={"items": [{}]}).status_code == 401
    assert client.post("/v1/batch", json={"items": []}).status_code == 422
    assert client.post("/v1/batch", json={"items": [{}] * 1001}).status_code == 422
