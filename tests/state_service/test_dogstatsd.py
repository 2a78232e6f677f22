"""DogStatsD packets from the service, received on a real local UDP socket."""

from __future__ import annotations

import socket

import httpx

from state_service.app import create_app
from state_service.metrics import ServiceMetrics
from state_service.server import ServiceThread
from tests.state_service.helpers import create_body, new_ref, transition_body


def _drain(sock: socket.socket) -> list[str]:
    packets = []
    sock.settimeout(2)
    try:
        while True:
            data = sock.recv(65535).decode()
            packets.extend(data.splitlines())
            sock.settimeout(0.3)
    except TimeoutError:
        return packets


def test_transition_counter_and_latency_reach_udp(service_dsn):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        metrics = ServiceMetrics("127.0.0.1", port, env="test")
        with ServiceThread(create_app(service_dsn, api_keys=["k"], metrics=metrics,
                                      run_migrations=False)) as svc:
            headers = {"Authorization": "Bearer k"}
            ref = new_ref()
            httpx.post(f"{svc.url}/v1/tokens", json=create_body(ref, "google_pay"),
                       headers=headers).raise_for_status()
            httpx.post(f"{svc.url}/v1/tokens/{ref}/transitions", headers=headers,
                       json=transition_body("ProvisionInitiated", actor="wallet")
                       ).raise_for_status()
            packets = _drain(sock)
    counters = [p for p in packets if p.startswith("tokenwatch.state_service.transitions:1|c")]
    assert len(counters) == 2, packets
    assert "wallet:google_pay" in counters[1]
    assert "from_state:TokenRequested" in counters[1]
    assert "to_state:ProvisionInitiated" in counters[1]
    assert "actor:wallet" in counters[1] and "env:test" in counters[1]
    latencies = [p for p in packets
                 if p.startswith("tokenwatch.state_service.request.latency_ms:")]
    assert len(latencies) >= 2 and all("|h|" in p for p in latencies)
    assert any("route:post_transition" in p for p in latencies), latencies


def test_silent_without_agent_host(monkeypatch):
    monkeypatch.delenv("DD_AGENT_HOST", raising=False)
    assert not ServiceMetrics.from_env().enabled
