"""Hostile input against the live service on real PostgreSQL: every bad request gets a 4xx that
names what was wrong, never a 500, never a stored card number, never an echoed value."""

from __future__ import annotations

import socket
from urllib.parse import quote

import httpx
import pytest

from state_service.app import create_app
from state_service.lifecycle import State
from state_service.server import ServiceThread
from tests.conftest import API_KEY
from tests.pan_cases import CASES
from tests.state_service.helpers import create_body, new_ref, token_in, transition_body
from tokenwatch.pan import find_pan_like

S = State
PAN = "4111111111111111"
READ_KEY = "read-key-1"
#: Every way of writing a card number the issue found stored, and the case table's own.
PAN_SPELLINGS = sorted({c.value for c in CASES if c.pan} | {
    "4111 1111 1111 1111", "4111-1111-1111-1111", "card:4111111111111111",
    " 4111111111111111", "4111111111111111 ", "4111111111111111\n",
    "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11"
    "\uff11\uff11"})


def stored_anywhere(db, needle: str) -> int:
    """Rows of either table whose any column's text holds ``needle``."""
    return db.execute(
        "select (select count(*) from tokens t where t::text like %(n)s)"
        " + (select count(*) from token_state_transitions x where x::text like %(n)s)",
        {"n": f"%{needle}%"}).fetchone()[0]


def assert_refused(r: httpx.Response, field: str, value: str, status: int = 422) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == "invalid_request", body
    assert field in [f["field"] for f in body["fields"]], body
    for digits in find_pan_like(value):
        assert digits not in r.text and digits[:6] + digits[6:12] not in r.text
    assert value.strip() not in r.text or len(value.strip()) < 4


# -- no card number in any field ------------------------------------------------------------
@pytest.mark.parametrize("pan", PAN_SPELLINGS)
def test_card_ref_holding_a_pan_in_any_spelling_is_refused(client, db, pan):
    ref = new_ref()
    r = client.post("/v1/tokens", json=create_body(ref, card_ref=pan))
    assert_refused(r, "card_ref", pan)
    assert db.execute("select count(*) from tokens where token_ref = %s", [ref]).fetchone()[0] == 0
    assert stored_anywhere(db, PAN) == 0


@pytest.mark.parametrize(("field", "value"), [
    ("token_ref", PAN), ("token_ref", "tok-4111111111111111"), ("event_id", PAN),
    ("event_id", "ev:4111-1111-1111-1111"), ("wallet_id", "w_4111111111111111"),
])
def test_a_pan_in_an_identifier_is_refused_naming_the_field(client, db, field, value):
    r = client.post("/v1/tokens", json=create_body(new_ref()) | {field: value})
    assert_refused(r, field, value)
    assert stored_anywhere(db, PAN) == 0


def test_a_pan_in_a_transition_or_a_path_is_refused(client, db):
    ref = token_in(client, S.TOKEN_REQUESTED)
    r = client.post(f"/v1/tokens/{ref}/transitions",
                    json=transition_body(S.PROVISION_INITIATED, event_id=f"ev-{PAN}"))
    assert_refused(r, "event_id", PAN)
    r = client.post(f"/v1/tokens/{PAN}/transitions",
                    json=transition_body(S.PROVISION_INITIATED))
    assert_refused(r, "token_ref", PAN)
    r = client.get(f"/v1/tokens/{PAN}")
    assert_refused(r, "token_ref", PAN)
    assert stored_anywhere(db, PAN) == 0


# -- 4xx, never 500 -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/tokens/%00", "/v1/tokens/a%00b", "/v1/tokens/%FF",
                                  "/v1/tokens/" + "x" * 300, "/v1/tokens/has%7Cpipe"])
def test_hostile_token_refs_in_the_path_get_422(client, path):
    r = client.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == "token_ref"


@pytest.mark.parametrize("field", ["token_ref", "wallet_id", "card_ref", "event_id",
                                   "network", "token_type", "actor", "occurred_at"])
def test_a_nul_byte_in_any_string_field_of_a_creation_gets_422(client, db, field):
    body = create_body(new_ref(), actor="wallet")
    body[field] = body[field][:3] + "\x00" + body[field][3:]
    r = client.post("/v1/tokens", json=body)
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["fields"]]


@pytest.mark.parametrize("field", ["event_id", "reason_code", "actor", "to_state"])
def test_a_nul_byte_in_a_transition_gets_422(client, field):
    ref = token_in(client, S.TOKEN_ACTIVE)
    body = transition_body(S.TOKEN_SUSPENDED, reason_code="device_lost")
    body[field] = body[field][:3] + "\x00" + body[field][3:]
    r = client.post(f"/v1/tokens/{ref}/transitions", json=body)
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["fields"]]


@pytest.mark.parametrize(("value", "why"), [
    ("0001-01-01T00:00:00+14:00", "overflows when converted to UTC"),
    ("9999-12-31T23:59:59-14:00", "overflows the other way"),
    ("1970-01-01T00:00:00Z", "before the accepted window"),
    ("2999-01-01T00:00:00Z", "far in the future"),
    (0, "a Unix number, not a timestamp string"),
    (1700000000, "a Unix number"),
    (1.5, "a float"),
    (True, "a boolean"),
    ([], "a list"),
    ("2026-11-24T10:00:00", "no timezone"),
    ("2026-11-24T10:00:00Z\n", "a trailing newline"),
    ("yesterday", "not ISO-8601"),
])
def test_out_of_range_or_non_string_timestamps_get_422(client, db, value, why):
    ref = new_ref()
    r = client.post("/v1/tokens", json=create_body(ref, occurred_at=value))
    assert r.status_code == 422, (why, r.text)
    assert r.json()["fields"][0]["field"] == "occurred_at"
    assert db.execute("select count(*) from tokens where token_ref = %s", [ref]).fetchone()[0] == 0


@pytest.mark.parametrize(("field", "value"), [
    ("wallet_id", "abc\n"), ("wallet_id", "apple_pay\n"), ("token_ref", "tok-1\n"),
    ("event_id", "ev-1\n"), ("card_ref", "cref-1\n"), ("network", "visa\n"),
])
def test_trailing_newlines_are_refused(client, field, value):
    r = client.post("/v1/tokens", json=create_body(new_ref()) | {field: value})
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["fields"]]


def test_not_found_bodies_do_not_echo_the_ref(client):
    ref = "tok-nobody-knows-me"
    for r in (client.get(f"/v1/tokens/{ref}"),
              client.post(f"/v1/tokens/{ref}/transitions",
                          json=transition_body(S.PROVISION_INITIATED))):
        assert r.status_code == 404 and r.json()["error"] == "token_not_found"
        assert ref not in r.text


def test_a_bad_batch_item_gets_its_own_answer_and_the_others_are_applied(client, db):
    first, last = new_ref(), new_ref()
    items = [
        {"op": "create", **create_body(first)},
        {"op": "create", **create_body(new_ref(), occurred_at="0001-01-01T00:00:00+14:00")},
        {"op": "create", **create_body(new_ref(), wallet_id="ab\x00c")},
        {"op": "transition", "token_ref": "a\x00b", **transition_body(S.PROVISION_INITIATED)},
        {"op": "create", **create_body(new_ref(), card_ref="4111 1111 1111 1111")},
        {"op": "transition", "token_ref": first, **transition_body(S.PROVISION_INITIATED)},
        {"op": "create", **create_body(last)},
        {"op": "create", **create_body(new_ref(), occurred_at=0)},
        {"op": "delete", "token_ref": first},
    ]
    r = client.post("/v1/batch", json={"items": items})
    assert r.status_code == 200, r.text
    statuses = [x["status"] for x in r.json()["results"]]
    assert statuses == [201, 422, 422, 422, 422, 201, 201, 422, 422]
    assert r.json()["results"][1]["body"]["fields"][0]["field"] == "occurred_at"
    assert r.json()["results"][4]["body"]["fields"][0]["field"] == "card_ref"
    assert [x["index"] for x in r.json()["results"]] == list(range(len(items)))
    assert "4111" not in r.text
    assert db.execute("select count(*) from token_state_transitions where token_ref in (%s, %s)",
                      [first, last]).fetchone()[0] == 3


def test_an_item_that_is_not_an_object_refuses_the_whole_batch_before_applying_any(client, db):
    ref = new_ref()
    r = client.post("/v1/batch", json={"items": [{"op": "create", **create_body(ref)}, "x"]})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "items.1"
    assert db.execute("select count(*) from tokens where token_ref = %s", [ref]).fetchone()[0] == 0


def test_non_json_and_wrong_shapes_get_4xx(client):
    for content, ctype in ((b"{not json", "application/json"), (b"\xff\xfe", "application/json"),
                           (b"[]", "application/json"), (b"null", "application/json"),
                           (b"a=b", "application/x-www-form-urlencoded"),
                           (b"[" * 50_000 + b"]" * 50_000, "application/json")):
        r = client.post("/v1/tokens", content=content, headers={"Content-Type": ctype})
        assert 400 <= r.status_code < 500, (content[:20], r.status_code, r.text)


# -- the key before the body, and a body limit ------------------------------------------------
def raw_request(url: str, head: str, body: bytes = b"", chunks: int = 0) -> bytes:
    """Send ``head`` (and ``body``, or ``chunks`` chunks of 1 MiB) on a socket; the answer's
    first bytes. Sending stops as soon as the service answers or closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + body)
        chunk = b"x" * (1 << 20)
        s.settimeout(0.05)
        answer = b""
        for _ in range(chunks):
            try:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:
                break
            try:
                answer = s.recv(4096)
                if answer:
                    break
            except TimeoutError:
                continue
        s.settimeout(10)
        try:
            answer = answer or s.recv(4096)
            head, _, body = answer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:  # the body may come in a packet of its own
                more = s.recv(4096)
                if not more:
                    break
                body += more
            return head + b"\r\n\r\n" + body
        except OSError:
            return answer


def test_no_key_answers_401_before_the_body_is_read(service):
    head = ("POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000000\r\n\r\n")
    answer = raw_request(service.url, head)  # 100 MB announced, none sent
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_an_invalid_body_without_a_key_gets_401_not_422(service):
    r = httpx.post(f"{service.url}/v1/tokens", content=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


def test_a_body_over_the_limit_answers_413_without_being_read(service):
    head = (f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
    answer = raw_request(service.url, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer


def test_a_chunked_body_growing_past_the_limit_answers_413(service):
    head = (f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    answer = raw_request(service.url, head, chunks=100)  # up to 100 MiB offered
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_just_under_the_limit_is_read(service_dsn):
    app = create_app(service_dsn, api_keys=["k"], max_body_bytes=4096, run_migrations=False)
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url,
                                                 headers={"Authorization": "Bearer k"}) as c:
        body = create_body(new_ref())
        assert c.post("/v1/tokens", json=body).status_code == 201
        big = create_body(new_ref(), card_ref="c" * 128) | {"pad": "x" * 5000}
        r = c.post("/v1/tokens", json=big)
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"


# -- reads are authenticated --------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed_service(service_dsn):
    app = create_app(service_dsn, api_keys=["w1"], read_keys=[READ_KEY], run_migrations=False)
    with ServiceThread(app) as svc:
        yield svc


def test_reads_need_a_read_or_write_key(keyed_service):
    url = keyed_service.url
    ref = new_ref()
    assert httpx.post(f"{url}/v1/tokens", json=create_body(ref),
                      headers={"Authorization": "Bearer w1"}).status_code == 201
    for path in (f"/v1/tokens/{ref}", "/v1/lifecycle", f"/v1/tokens/{quote('nope')}",
                 "/v1/anything"):
        r = httpx.get(url + path)
        assert r.status_code == 401, path
        assert ref not in r.text and "suspected_fraud" not in r.text
        assert httpx.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    for key in (READ_KEY, "w1"):
        r = httpx.get(f"{url}/v1/tokens/{ref}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["token_ref"] == ref
    r = httpx.post(f"{url}/v1/tokens", json=create_body(new_ref()),
                   headers={"Authorization": f"Bearer {READ_KEY}"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_only_health_and_the_api_description_are_open(keyed_service):
    url = keyed_service.url
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/openapi.json").status_code == 200
    assert httpx.get(f"{url}/docs").status_code == 200
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path == "/healthz":
                assert "security" not in op
            else:
                assert op["security"] == [{"HTTPBearer": []}], (method, path)
                assert "401" in op["responses"], (method, path)
