from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from rich.console import Console
from rich.table import Table

out = Console()

# One short journey per wallet: (to_state, actor, extra attributes)
_JOURNEY = [
    ("ProvisionInitiated", "wallet", {}),
    ("ProvisionPending", "token_service", {"decision": "yellow", "idv_method": "otp_sms"}),
    ("ProvisionSuccess", "issuer", {}),
    ("WalletActive", "wallet", {}),
    ("TokenActive", "token_service", {}),
    ("TokenSuspended", "cardholder", {"reason_code": "device_lost"}),
    ("TokenActive", "cardholder", {"reason_code": "device_found"}),
]


def demo() -> None:
    """Start the state service, record a handful of transitions through its API, print them."""
    from state_service.app import create_app
    from state_service.server import ServiceThread, dsn_from_env

    key = secrets.token_urlsafe(24)
    dsn = dsn_from_env()
    run = uuid.uuid4().hex[:8]
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    with ServiceThread(create_app(dsn, api_keys=[key])) as svc, httpx.Client(
        base_url=svc.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        out.print(f"state service listening on {svc.url} (OpenAPI at {svc.url}/docs)")
        refs = []
        for i, (wallet, network) in enumerate([("apple_pay", "visa"), ("google_pay", "mastercard"),
                                               ("samsung_pay", "visa")]):
            ref = f"demo-{run}-{wallet}"
            refs.append(ref)
            client.post("/v1/tokens", json={
                "token_ref": ref, "wallet_id": wallet, "network": network, "token_type": "hce",
                "card_ref": f"cardref-{run}-{i}", "event_id": f"{ref}-0",
                "occurred_at": t0.isoformat()}).raise_for_status()
            for step, (to_state, actor, extra) in enumerate(_JOURNEY, start=1):
                client.post(f"/v1/tokens/{ref}/transitions", json={
                    "to_state": to_state, "actor": actor, "event_id": f"{ref}-{step}",
                    "occurred_at": (t0 + timedelta(seconds=step * 7)).isoformat(), **extra,
                }).raise_for_status()
        refused = client.post(f"/v1/tokens/{refs[0]}/transitions", json={
            "to_state": "ProvisionPending", "actor": "system", "event_id": f"{refs[0]}-bad",
            "occurred_at": t0.isoformat(), "decision": "green"})
        table = Table(title="Recorded transitions")
        for col in ("token", "v", "from", "to", "actor", "reason / decision", "recorded_at"):
            table.add_column(col)
        for ref in refs:
            for h in client.get(f"/v1/tokens/{ref}").json()["history"]:
                table.add_row(ref, str(h["version"]), h["from_state"] or "-", h["to_state"],
                              h["actor"], h["reason_code"] or h["decision"] or "",
                              h["recorded_at"][11:23])
        out.print(table)
        out.print(f"an illegal move (TokenActive -> ProvisionPending) was refused: "
                  f"{refused.status_code} {refused.json()}")
