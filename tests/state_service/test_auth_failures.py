"""Refused requests are recorded (PCI DSS 10.2.1.4): every 401 and 403 of the live service
reaches ``auth_failures`` in PostgreSQL, counted per minute, with the path's card number
redacted, under the service's own role, and the counts survive a database that is down."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest

from state_service import roles
from state_service.app import create_app
from state_service.auth_failures import AuthFailures
from state_service.server import ServiceThread
from tests.conftest import API_KEY
from tests.pan_cases import V as PAN

READ_KEY = "read-key-" + uuid.uuid4().hex


def _rows(db, path_like: str) -> list[tuple]:
    return db.execute("select status, method, path, attempts, first_at <= last_at "
                      "from auth_failures where path like %s order by status, method",
                      [path_like]).fetchall()


def _wait_for(db, path_like: str, attempts: int, timeout: float = 10) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(db, path_like)
        if sum(r[3] for r in rows) >= attempts or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@pytest.fixture(scope="module")
def guarded(service_dsn: str):
    with ServiceThread(create_app(service_dsn, api_keys=[API_KEY], read_keys=[READ_KEY],
                                  run_migrations=False)) as svc:
        yield svc


def test_every_refused_request_is_counted(guarded, db) -> None:
    mark = uuid.uuid4().hex[:12]
    path = f"/v1/tokens/tok-{mark}"
    for _ in range(5):
        assert httpx.get(guarded.url + path).status_code == 401  # no key
    assert httpx.get(guarded.url + path, headers={
        "Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(guarded.url + path + "/transitions", json={}, headers={
        "Authorization": f"Bearer {READ_KEY}"}).status_code == 403  # a read key writing
    assert httpx.get(guarded.url + path, headers={  # a good key: not a failure
        "Authorization": f"Bearer {API_KEY}"}).status_code in (200, 404)
    rows = _wait_for(db, f"%{mark}%", 7)
    assert rows == [(401, "GET", path, 6, True), (403, "POST", path + "/transitions", 1, True)]


def test_a_card_number_in_the_path_is_redacted(guarded, db) -> None:
    pan = PAN
    mark = uuid.uuid4().hex[:12]
    assert httpx.get(f"{guarded.url}/v1/tokens/{mark}-{pan}").status_code == 401
    (row,) = _wait_for(db, f"%{mark}%", 1)
    assert pan not in row[2] and mark in row[2]


def test_the_service_role_may_add_to_it_and_nothing_more(db) -> None:
    for privilege, expected in (("INSERT", True), ("UPDATE", True), ("SELECT", True),
                                ("DELETE", False), ("TRUNCATE", False)):
        assert db.execute("select has_table_privilege(%s, 'auth_failures', %s)",
                          [roles.SERVICE, privilege]).fetchone()[0] is expected, privilege
    assert db.execute("select has_table_privilege(%s, 'auth_failures', 'SELECT')",
                      [roles.READER]).fetchone()[0]
    assert not db.execute("select has_table_privilege(%s, 'auth_failures', 'INSERT')",
                          [roles.READER]).fetchone()[0]


def test_counts_are_kept_while_the_database_is_down(service_dsn: str, db) -> None:
    from psycopg_pool import ConnectionPool

    mark = uuid.uuid4().hex[:12]
    down = ConnectionPool("host=127.0.0.1 port=1 connect_timeout=1", min_size=0, max_size=1,
                          open=True, timeout=1)
    recorder = AuthFailures(down)
    for _ in range(3):
        recorder.record(401, "GET", f"/v1/x-{mark}", "10.0.0.1")
    assert recorder.flush() == 0  # nothing written, nothing lost
    down.close()
    recorder.pool = ConnectionPool(service_dsn, min_size=1, open=True)
    try:
        assert recorder.flush() == 1
    finally:
        recorder.pool.close()
    assert [r[3] for r in _rows(db, f"%{mark}%")] == [3]
    with psycopg.connect(service_dsn) as conn:  # the service cannot erase the record
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from auth_failures")
