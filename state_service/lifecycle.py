"""The token lifecycle: the single definition of states, legal transitions and attributes.

Everything else reads from here: the state service enforces it, the tests walk it, and
the dbt seed ``lifecycle_transitions.csv`` is generated from it (``tokenwatch lifecycle seed``).

The machine is the seed design's, plus one extension real token service providers have:
``TokenDeactivated`` (deletion by the cardholder, issuer or wallet, distinct from expiry).

Wallets are not lifecycle things: they are registered in ``tokenwatch/wallets.py``.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

from tokenwatch import wallets


class State(StrEnum):
    TOKEN_REQUESTED = "TokenRequested"
    PROVISION_INITIATED = "ProvisionInitiated"
    PROVISION_PENDING = "ProvisionPending"
    PROVISION_SUCCESS = "ProvisionSuccess"
    PROVISION_FAILED = "ProvisionFailed"
    WALLET_ACTIVE = "WalletActive"
    TOKEN_ACTIVE = "TokenActive"
    TOKEN_SUSPENDED = "TokenSuspended"
    TOKEN_EXPIRED = "TokenExpired"
    TOKEN_DEACTIVATED = "TokenDeactivated"


S = State
INITIAL_STATE = S.TOKEN_REQUESTED

#: from_state -> the states it may move to. Terminal states map to an empty tuple.
TRANSITIONS: MappingProxyType[State, tuple[State, ...]] = MappingProxyType(
    {
        S.TOKEN_REQUESTED: (S.PROVISION_INITIATED,),
        S.PROVISION_INITIATED: (S.PROVISION_PENDING,),
        S.PROVISION_PENDING: (S.PROVISION_SUCCESS, S.PROVISION_FAILED),
        S.PROVISION_SUCCESS: (S.WALLET_ACTIVE,),
        S.PROVISION_FAILED: (),
        S.WALLET_ACTIVE: (S.TOKEN_ACTIVE, S.TOKEN_DEACTIVATED),
        S.TOKEN_ACTIVE: (S.TOKEN_SUSPENDED, S.TOKEN_EXPIRED, S.TOKEN_DEACTIVATED),
        S.TOKEN_SUSPENDED: (S.TOKEN_ACTIVE, S.TOKEN_EXPIRED, S.TOKEN_DEACTIVATED),
        S.TOKEN_EXPIRED: (),
        S.TOKEN_DEACTIVATED: (),
    }
)

#: The seed design's two groups: provisioning states and payment-token states.
PROVISIONING_STATES: frozenset[State] = frozenset(
    {S.TOKEN_REQUESTED, S.PROVISION_INITIATED, S.PROVISION_PENDING, S.PROVISION_SUCCESS,
     S.PROVISION_FAILED}
)


def phase(state: State | str) -> str:
    """``provisioning`` or ``payment``: the group a state belongs to in the seed design."""
    return "provisioning" if State(state) in PROVISIONING_STATES else "payment"


TERMINAL_STATES: frozenset[State] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

ACTORS: tuple[str, ...] = ("issuer", "cardholder", "wallet", "token_service", "system")

#: Reason codes and what they mean (the dbt seed ``reason_codes.csv`` is generated from this).
REASON_CODES: MappingProxyType[str, str] = MappingProxyType(
    {
        "device_lost": "The cardholder reported the device lost.",
        "device_stolen": "The cardholder reported the device stolen.",
        "suspected_fraud": "The issuer or token service suspects fraudulent use.",
        "account_closed": "The underlying card account was closed.",
        "not_fraud": "A fraud suspicion was cleared.",
        "device_found": "A lost device was found again.",
        "cardholder_request": "The cardholder asked for the change.",
        "idv_failed": "Identity verification (ID&V) failed.",
        "idv_timeout": "Identity verification was abandoned or timed out.",
        "issuer_declined": "The issuer declined the provisioning request.",
        "risk_declined": "The token service's risk engine declined the request.",
        "expiry": "The token or card reached its expiry date.",
        "card_replaced": "The card was reissued and the token moved to the new card.",
        "wallet_removed": "The token was removed from the wallet (app deleted, device wiped).",
    }
)

DECISIONS: tuple[str, ...] = ("green", "yellow", "red")
IDV_METHODS: tuple[str, ...] = ("otp_sms", "otp_email", "call_center", "issuer_app")

NETWORKS: tuple[str, ...] = ("visa", "mastercard")
TOKEN_TYPES: tuple[str, ...] = ("secure_element", "hce", "card_on_file")

#: The state a transition carries a provisioning decision on.
DECISION_STATE = S.PROVISION_PENDING


def allowed_from(state: State | str) -> tuple[State, ...]:
    """The states that ``state`` may move to."""
    return TRANSITIONS[State(state)]


def is_legal(from_state: State | str | None, to_state: State | str) -> bool:
    """True when ``from_state -> to_state`` is a legal transition (``None`` means creation)."""
    if from_state is None:
        return State(to_state) == INITIAL_STATE
    return State(to_state) in TRANSITIONS[State(from_state)]


def legal_pairs() -> list[tuple[State, State]]:
    """Every legal (from, to) pair, in definition order."""
    return [(f, t) for f, nxt in TRANSITIONS.items() for t in nxt]


def illegal_pairs() -> list[tuple[State, State]]:
    """Every (from, to) pair of states that is not a legal transition."""
    legal = set(legal_pairs())
    return [(f, t) for f in State for t in State if (f, t) not in legal]


def as_dict() -> dict:
    """The machine as plain data: what ``GET /v1/lifecycle`` returns."""
    return {
        "initial_state": INITIAL_STATE.value,
        "states": [
            {"name": s.value, "phase": phase(s), "terminal": s in TERMINAL_STATES} for s in State
        ],
        "transitions": [{"from_state": f.value, "to_state": t.value} for f, t in legal_pairs()],
        "actors": list(ACTORS),
        "reason_codes": dict(REASON_CODES),
        "decisions": list(DECISIONS),
        "decision_state": DECISION_STATE.value,
        "idv_methods": list(IDV_METHODS),
        "wallets": list(wallets.wallet_ids()),  # the registry's (tokenwatch/wallets.py)
        "networks": list(NETWORKS),
        "token_types": list(TOKEN_TYPES),
    }
