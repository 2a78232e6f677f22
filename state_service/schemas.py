"""Request and response bodies of the state service's HTTP contract."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from state_service import lifecycle
from state_service.lifecycle import State
from state_service.pan import looks_like_pan

IDENTIFIER = r"^[A-Za-z0-9._:\-]{1,128}$"
_CUSTOM_WALLET = re.compile(lifecycle.CUSTOM_WALLET_PATTERN)

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
Actor = Literal["issuer", "cardholder", "wallet", "token_service", "system"]
Network = Literal["visa", "mastercard"]
TokenType = Literal["secure_element", "hce", "card_on_file"]
Decision = Literal["green", "yellow", "red"]
IdvMethod = Literal["otp_sms", "otp_email", "call_center", "issuer_app"]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone offset, for example 2026-11-24T10:00:00Z")
    return value


def _reason(value: str | None) -> str | None:
    if value is not None and value not in lifecycle.REASON_CODES:
        raise ValueError(f"must be one of {', '.join(lifecycle.REASON_CODES)}")
    return value


def _wallet(value: str) -> str:
    if value not in lifecycle.KNOWN_WALLETS and not _CUSTOM_WALLET.match(value):
        raise ValueError(
            f"must be one of {', '.join(lifecycle.KNOWN_WALLETS)} or a custom wallet id "
            f"matching {lifecycle.CUSTOM_WALLET_PATTERN}")
    return value


def _card_ref(value: str) -> str:
    if looks_like_pan(value):
        raise ValueError("looks like a card number (13-19 digits passing the Luhn check); "
                         "send an opaque card reference or a PAR, never a PAN")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
ReasonCode = Annotated[str | None, AfterValidator(_reason)]


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_ref: Identifier
    wallet_id: Annotated[str, AfterValidator(_wallet)]
    network: Network
    token_type: TokenType
    card_ref: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_card_ref)]
    event_id: Identifier
    occurred_at: AwareDatetime
    actor: Actor = "wallet"


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_state: State
    event_id: Identifier
    occurred_at: AwareDatetime
    actor: Actor
    reason_code: ReasonCode = None
    decision: Decision | None = None
    idv_method: IdvMethod | None = None

    @model_validator(mode="after")
    def _decision_rules(self) -> TransitionRequest:
        if self.to_state == lifecycle.DECISION_STATE:
            if self.decision is None:
                raise ValueError(f"decision is required on {lifecycle.DECISION_STATE.value}")
            if (self.decision == "yellow") != (self.idv_method is not None):
                raise ValueError("idv_method is required when decision is yellow, "
                                 "and only then")
        elif self.decision is not None or self.idv_method is not None:
            raise ValueError(f"decision and idv_method are only allowed on "
                             f"{lifecycle.DECISION_STATE.value}")
        return self


class TokenState(BaseModel):
    token_ref: str
    state: State
    version: int
    replayed: bool = False


class TransitionRecord(BaseModel):
    version: int
    event_id: str
    from_state: State | None
    to_state: State
    actor: str
    reason_code: str | None
    decision: str | None
    idv_method: str | None
    occurred_at: datetime
    recorded_at: datetime
    row_hash: str


class TokenDetail(BaseModel):
    token_ref: str
    wallet_id: str
    network: str
    token_type: str
    state: State
    version: int
    created_at: datetime
    updated_at: datetime
    history: list[TransitionRecord]


class IllegalTransition(BaseModel):
    error: Literal["illegal_transition"] = "illegal_transition"
    from_state: State
    to_state: State
    allowed: list[State]


class ErrorBody(BaseModel):
    error: str
    message: str


class BatchRequest(BaseModel):
    """Items are ``{"op": "create", ...CreateToken}`` or
    ``{"op": "transition", "token_ref": ..., ...TransitionRequest}``."""

    items: Annotated[list[dict], Field(min_length=1, max_length=1000)]


class BatchResult(BaseModel):
    index: int
    status: int
    body: dict


class BatchResponse(BaseModel):
    results: list[BatchResult]
