"""Request and response bodies of the state service's HTTP contract.

The field rules live here as schema (patterns, enums, the conditional decision/``idv_method``
rule), so ``/openapi.json`` states exactly what the service accepts. Vocabularies come from
``state_service.lifecycle``; the wallets from the registry ``tokenwatch.wallets``; the
card-number rule from ``tokenwatch.pan``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from state_service import lifecycle
from state_service.lifecycle import State
from tokenwatch import wallets
from tokenwatch.pan import looks_like_pan

#: token_ref, event_id: letters, digits and ``._:-`` (never ``|``: the hash chain's separator).
IDENTIFIER = r"^[A-Za-z0-9._:\-]{1,128}$"
#: card_ref: an opaque reference or a PAR; base64 characters allowed, no spaces or controls.
CARD_REF = r"^[A-Za-z0-9._:=+/\-]{1,128}$"
PAN_MESSAGE = ("looks like a card number (PAN); send an opaque reference or a PAR, "
               "never a card number")


def no_pan(value: str) -> str:
    """A validator: ``value`` unless it looks like a PAN (tokenwatch/pan.py), then a 422/400."""
    if looks_like_pan(value):
        raise ValueError(PAN_MESSAGE)
    return value


def _registered_wallet(value: str) -> str:
    """wallet_id: a wallet of the registry (``tokenwatch/wallets.py``), exactly."""
    if not wallets.is_registered(value):
        raise ValueError(wallets.unregistered_message())
    return value


#: occurred_at: RFC 3339 with a timezone offset, a real calendar date in the years 2000-2099 as
#: written, at most microseconds. The rule is this pattern, on the wire and in the schema alike.
OCCURRED_AT = (
    r"^(?:20[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|20[0-9]{2}-(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|20[0-9]{2}-(?:0[13578]|1[02])-31"
    r"|20(?:0[048]|[2468][048]|[13579][26])-02-29)"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$")
_OCCURRED_AT = re.compile(OCCURRED_AT)
OCCURRED_AT_RULE = ("must be an ISO-8601 timestamp string with a timezone offset, in the years "
                    "2000-2099, for example 2026-11-24T10:00:00Z")


def _timestamp_string(value: Any) -> Any:
    if isinstance(value, datetime):  # built in Python, not read off the wire
        if value.tzinfo is None or not 2000 <= value.year <= 2099:
            raise ValueError(OCCURRED_AT_RULE)
        return value
    if not isinstance(value, str) or not _OCCURRED_AT.fullmatch(value):
        raise ValueError(OCCURRED_AT_RULE)
    return value


Identifier = Annotated[str, Field(pattern=IDENTIFIER), AfterValidator(no_pan)]
#: wallet_id: one of the registry's; the schema lists them, so a fuzzer sends only those.
WalletId = Annotated[str, AfterValidator(no_pan), AfterValidator(_registered_wallet),
                     WithJsonSchema({"type": "string", "enum": list(wallets.wallet_ids()),
                                     "description": "A registered wallet (tokenwatch/wallets.py)"
                                                    "; any other wallet id is refused."})]
CardRef = Annotated[str, Field(pattern=CARD_REF, description=(
    "An opaque card reference or a PAR. A value holding a card number is refused.")),
    AfterValidator(no_pan)]
OccurredAt = Annotated[datetime, BeforeValidator(_timestamp_string), WithJsonSchema({
    "type": "string", "pattern": OCCURRED_AT,
    "description": "When it happened, by the writer's clock: RFC 3339 with a timezone offset, "
                   "years 2000-2099, at most microseconds."})]
Actor = Literal[lifecycle.ACTORS]  # type: ignore[valid-type]
Network = Literal[lifecycle.NETWORKS]  # type: ignore[valid-type]
TokenType = Literal[lifecycle.TOKEN_TYPES]  # type: ignore[valid-type]
Decision = Literal[lifecycle.DECISIONS]  # type: ignore[valid-type]
IdvMethod = Literal[lifecycle.IDV_METHODS]  # type: ignore[valid-type]
ReasonCode = Literal[tuple(lifecycle.REASON_CODES)]  # type: ignore[valid-type]


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_ref: Identifier
    wallet_id: WalletId
    network: Network
    token_type: TokenType
    card_ref: CardRef
    event_id: Identifier
    occurred_at: OccurredAt
    actor: Actor = "wallet"


def _decision_rule_schema(schema: dict[str, Any]) -> None:
    """The decision/idv_method rule as JSON Schema: a fuzzer driven by it sends bodies that
    pass, and so reaches the storage code."""
    pending = lifecycle.DECISION_STATE.value
    absent = {"type": "null"}
    schema["oneOf"] = [
        {"properties": {"to_state": {"not": {"const": pending}},
                        "decision": absent, "idv_method": absent}},
        {"properties": {"to_state": {"const": pending},
                        "decision": {"enum": [d for d in lifecycle.DECISIONS if d != "yellow"]},
                        "idv_method": absent},
         "required": ["decision"]},
        {"properties": {"to_state": {"const": pending}, "decision": {"const": "yellow"},
                        "idv_method": {"enum": list(lifecycle.IDV_METHODS)}},
         "required": ["decision", "idv_method"]},
    ]


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_decision_rule_schema)

    to_state: State
    event_id: Identifier
    occurred_at: OccurredAt
    actor: Actor
    reason_code: ReasonCode | None = None
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


class BatchCreate(CreateToken):
    """A creation inside ``POST /v1/batch``."""

    op: Literal["create"]


class BatchTransition(TransitionRequest):
    """A transition inside ``POST /v1/batch``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_decision_rule_schema)

    op: Literal["transition"]
    token_ref: Identifier


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


class ErrorBody(BaseModel):
    error: str
    message: str


class IllegalTransition(BaseModel):
    error: Literal["illegal_transition"] = "illegal_transition"
    message: str
    from_state: State
    to_state: State
    allowed: list[State]


class FieldError(BaseModel):
    field: str = Field(description="The field's path, e.g. ``occurred_at`` or ``body``.")
    message: str


class InvalidRequest(BaseModel):
    """422: the body (or a path parameter) breaks the contract. Input values are never
    echoed: one may be a card number."""

    error: Literal["invalid_request"] = "invalid_request"
    fields: list[FieldError]
    message: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


def _batch_items_schema(schema: dict[str, Any]) -> None:
    items = schema["properties"]["items"]
    items["items"] = {"oneOf": [{"$ref": "#/components/schemas/BatchCreate"},
                                {"$ref": "#/components/schemas/BatchTransition"}]}


class BatchRequest(BaseModel):
    """Items are ``{"op": "create", ...CreateToken}`` or
    ``{"op": "transition", "token_ref": ..., ...TransitionRequest}``. Each item is checked on
    its own: a bad item gets its own 422 result and the others are still applied."""

    model_config = ConfigDict(json_schema_extra=_batch_items_schema)

    items: Annotated[list[dict], Field(min_length=1, max_length=1000)]


class BatchResult(BaseModel):
    index: int
    status: int = Field(description="What the item's own endpoint would have answered: 200, "
                        "201, 404, 409, 422 or 503.")
    body: dict


class BatchResponse(BaseModel):
    results: list[BatchResult]
