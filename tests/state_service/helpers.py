"""Building requests for the state service in tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from state_service.lifecycle import State

_clock = itertools.count()
BASE = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

#: The shortest legal walk from creation to each state: (to_state, extra attributes).
WALK: dict[State, list[tuple[State, dict]]] = {}
_steps = [
    (State.PROVISION_INITIATED, {}),
    (State.PROVISION_PENDING, {"decision": "green"}),
    (State.PROVISION_SUCCESS, {}),
    (State.WALLET_ACTIVE, {}),
    (State.TOKEN_ACTIVE, {}),
]
WALK[State.TOKEN_REQUESTED] = []
for i, (s, _) in enumerate(_steps):
    WALK[s] = _steps[: i + 1]
WALK[State.PROVISION_FAILED] = _steps[:2] + [(State.PROVISION_FAILED,
                                              {"reason_code": "issuer_declined"})]
WALK[State.TOKEN_SUSPENDED] = _steps + [(State.TOKEN_SUSPENDED, {"reason_code": "device_lost"})]
WALK[State.TOKEN_EXPIRED] = _steps + [(State.TOKEN_EXPIRED, {"reason_code": "expiry"})]
WALK[State.TOKEN_DEACTIVATED] = _steps + [(State.TOKEN_DEACTIVATED,
                                           {"reason_code": "cardholder_request"})]


def new_ref(prefix: str = "tok") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def ts() -> str:
    return (BASE + timedelta(seconds=next(_clock))).isoformat()


def create_body(token_ref: str, wallet_id: str = "apple_pay", network: str = "visa",
                **over) -> dict:
    return {"token_ref": token_ref, "wallet_id": wallet_id, "network": network,
            "token_type": "secure_element", "card_ref": f"card-{token_ref}",
            "event_id": f"{token_ref}-create", "occurred_at": ts()} | over


def transition_body(to_state: State | str, actor: str = "token_service", **extra) -> dict:
    return {"to_state": str(to_state), "event_id": f"ev-{uuid.uuid4().hex}",
            "occurred_at": ts(), "actor": actor} | extra


def token_in(client: httpx.Client, state: State, wallet_id: str = "apple_pay") -> str:
    """Create a token and walk it to ``state`` through the API."""
    ref = new_ref(state.value.lower())
    client.post("/v1/tokens", json=create_body(ref, wallet_id)).raise_for_status()
    for to_state, extra in WALK[state]:
        client.post(f"/v1/tokens/{ref}/transitions",
                    json=transition_body(to_state, **extra)).raise_for_status()
    return ref
