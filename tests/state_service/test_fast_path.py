"""The write path's front door (state_service/fast_path.py) answers exactly as FastAPI's routes
do: the same requests to a service with it and to one without give the same statuses, bodies
and content types, and the door answered the valid ones itself."""

from __future__ import annotations

import httpx

from state_service.app import create_app
from state_service.fast_path import WriteFastPath
from state_service.lifecycle import State
from state_service.server import ServiceThread
from tests.state_service.helpers import create_body, new_ref, transition_body

KEY = "fast-path-key-0123456789"


def _door(app) -> WriteFastPath:
    layer = app.middleware_stack
    while not isinstance(layer, WriteFastPath):
        layer = layer.app
    return layer


def _requests(ref: str) -> list[tuple[str, str, bytes | dict, str]]:
    """(method, path, body, content type): valid writes, replays, refusals, bad input."""
    create = create_body(ref)
    step = transition_body(State.PROVISION_INITIATED)
    json = "application/json"
    return [
        ("POST", "/v1/tokens", create, json),
        ("POST", "/v1/tokens", create, json),  # replay
        ("POST", "/v1/tokens", create | {"wallet_id": "google_pay"}, json),  # event_id reused
        ("POST", "/v1/tokens", create | {"event_id": f"{ref}-again"}, json),  # token exists
        ("POST", f"/v1/tokens/{ref}/transitions", step, json),
        ("POST", f"/v1/tokens/{ref}/transitions", step, "application/json; charset=utf-8"),
        ("POST", f"/v1/tokens/{ref}/transitions", transition_body(State.TOKEN_ACTIVE), json),
        ("POST", "/v1/tokens/nobody-here/transitions", transition_body(State.TOKEN_ACTIVE), json),
        ("POST", "/v1/tokens/4111111111111111/transitions", step, json),  # PAN-like path
        ("POST", f"/v1/tokens/{ref}/transitions", step | {"reason_code": "4111111111111111"},
         json),
        ("POST", "/v1/tokens", create | {"card_ref": "4111 1111 1111 1111"}, json),
        ("POST", "/v1/tokens", b'{"token_ref": ', json),  # not JSON
        ("POST", "/v1/tokens", b"\xff\xfe", json),  # not UTF-8
        ("POST", f"/v1/tokens/{ref}/transitions", step, "text/plain"),
        ("POST", f"/v1/tokens/{ref}/transitions", step | {"extra": 1}, json),
        ("POST", f"/v1/tokens/{ref}/transitions", step | {"occurred_at": "2026-02-30T00:00:00Z"},
         json),
        ("POST", f"/v1/tokens/{ref}/transitions",
         transition_body(State.PROVISION_PENDING), json),  # decision missing
        ("POST", f"/v1/tokens/{ref}/transitions",
         transition_body(State.PROVISION_PENDING, decision="green"), json),
    ]


def _send(c: httpx.Client, method: str, path: str, body, content_type: str):
    data = body if isinstance(body, bytes) else httpx.Request(
        "POST", "http://x", json=body).content
    r = c.request(method, path, content=data, headers={"content-type": content_type})
    return r.status_code, r.headers.get("content-type"), r.content


def test_the_door_answers_as_the_routes_do(service_dsn):
    with_door = create_app(service_dsn, api_keys=[KEY], run_migrations=False)
    without = create_app(service_dsn, api_keys=[KEY], run_migrations=False, fast_path=False)
    headers = {"Authorization": f"Bearer {KEY}"}
    with ServiceThread(with_door) as a, ServiceThread(without) as b, \
            httpx.Client(base_url=a.url, headers=headers, timeout=30) as ca, \
            httpx.Client(base_url=b.url, headers=headers, timeout=30) as cb:
        ref_a, ref_b = new_ref("door"), new_ref("door")
        got_a = [_send(ca, *r) for r in _requests(ref_a)]
        got_b = [_send(cb, *r) for r in _requests(ref_b)]
        answered = _door(with_door).answered
    for (sa, ta, ba), (sb, tb, bb) in zip(got_a, got_b, strict=True):
        assert (sa, ta) == (sb, tb)
        assert ba.replace(ref_a.encode(), b"REF") == bb.replace(ref_b.encode(), b"REF")
    statuses = [s for s, _, _ in got_a]
    assert statuses == [201, 200, 409, 409, 201, 200, 409, 404, 422, 422, 422, 422, 422, 422,
                        422, 422, 422, 201]
    assert b"4111" not in b"".join(body for _, _, body in got_a)
    assert answered == 9  # the valid bodies; every refused one went to FastAPI
