"""A database outage gives 503 with a clear message, and the service recovers by itself."""

from __future__ import annotations

import time

import httpx

from state_service.app import create_app
from state_service.server import ServiceThread
from tests.state_service.helpers import create_body, new_ref, transition_body
from tests.tcp_proxy import Proxy


def test_database_down_gives_503_then_recovers(service_dsn):
    proxy = Proxy(service_dsn).start()
    app = create_app(proxy.proxied_dsn(), api_keys=["k"], run_migrations=False)
    headers = {"Authorization": "Bearer k"}
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url, headers=headers,
                                                 timeout=30) as c:
        ref = new_ref()
        assert c.post("/v1/tokens", json=create_body(ref)).status_code == 201

        proxy.stop()
        r = c.post(f"/v1/tokens/{ref}/transitions", json=transition_body("ProvisionInitiated"))
        assert r.status_code == 503
        assert r.json() == {"error": "database_unavailable",
                            "message": "the state database is not reachable; retry later"}
        assert "Traceback" not in r.text
        health = c.get("/healthz")
        assert health.status_code == 503 and health.json()["database"] == "unavailable"
        assert c.get(f"/v1/tokens/{ref}").status_code == 503

        proxy.start()  # the database is back on the same address
        deadline, status = time.monotonic() + 30, None
        body = transition_body("ProvisionInitiated")
        while time.monotonic() < deadline:
            status = c.post(f"/v1/tokens/{ref}/transitions", json=body).status_code
            if status in (200, 201):
                break
            time.sleep(0.5)
        assert status in (200, 201)
        assert c.get("/healthz").status_code == 200
        assert c.get(f"/v1/tokens/{ref}").json()["version"] == 2
    proxy.stop()
