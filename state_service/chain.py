"""The per-token hash chain over the canonical transition row, its seals, and verification.

Canonical row: the fields below joined by ``|``, with NULL as the empty string and timestamps
in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. ``row_hash = sha256(canonical)`` in hex; the first
row of a token chains from ``GENESIS_HASH``. Identifiers cannot contain ``|`` (the API's
patterns forbid it), so the form is unambiguous and can be recomputed in SQL by the audit marts.

Seals. The plain chain shows an edit that was not followed by re-hashing; anyone who can write
to the database can re-hash, though. So each row is also sealed with ``row_mac``: HMAC-SHA256,
under a key PostgreSQL never sees (``TOKENWATCH_CHAIN_KEYS``; its id is stored with the row, so
keys rotate without rewriting history), of the row's own content (``SEALED_FIELDS``: every
column but ``prev_hash``/``row_hash``, transition_id and xact_id included). A row edited and
re-hashed, inserted, or moved to another version no longer matches its seal, and because the
seal does not cover the neighbours' hashes, re-hashing the rest of the chain leaves their seals
valid: the verifier names exactly the rows touched. The token's fixed attributes (wallet,
network, token type, card_ref, creation time) are sealed the same way in ``tokens.attrs_mac``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

GENESIS_HASH = "0" * 64

CANONICAL_FIELDS: tuple[str, ...] = (
    "token_ref", "version", "event_id", "from_state", "to_state", "actor", "reason_code",
    "decision", "idv_method", "wallet_id", "network", "token_type", "occurred_at",
    "recorded_at", "prev_hash",
)


#: Every column of a transition row that its seal (``row_mac``) covers, in this order.
SEALED_FIELDS: tuple[str, ...] = (
    "transition_id", "xact_id", "token_ref", "version", "event_id", "from_state", "to_state",
    "actor", "reason_code", "decision", "idv_method", "wallet_id", "network", "token_type",
    "occurred_at", "recorded_at", "request_hash", "key_id",
)
#: A token's fixed attributes, sealed in ``tokens.attrs_mac``.
TOKEN_SEALED_FIELDS: tuple[str, ...] = (
    "token_ref", "wallet_id", "network", "token_type", "card_ref", "created_at", "key_id",
)


def format_ts(value: datetime) -> str:
    """A timestamp as the chain writes it: UTC, microseconds, ``Z``."""
    if value.tzinfo is None:
        raise ValueError("timestamps in the hash chain must be timezone-aware")
    # isoformat is strftime("%Y-%m-%dT%H:%M:%S.%fZ")'s text for four-digit years, faster
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def canonical(row: Mapping[str, object], fields: tuple[str, ...] = CANONICAL_FIELDS) -> str:
    parts = []
    for field in fields:
        value = row[field]
        if value is None:
            parts.append("")
        elif isinstance(value, datetime):
            parts.append(format_ts(value))
        else:
            parts.append(str(value))
    return "|".join(parts)


def row_hash(row: Mapping[str, object]) -> str:
    return hashlib.sha256(canonical(row).encode()).hexdigest()


#: A row's own content (every canonical field but prev_hash, with its identity first): what a
#: checkpoint records as ``content_hash``, so the warehouse can tell an edited row (its content
#: changed) from one that was only re-hashed (its neighbour changed). No key: SQL recomputes it.
CONTENT_FIELDS: tuple[str, ...] = ("transition_id", "xact_id") + tuple(
    f for f in CANONICAL_FIELDS if f != "prev_hash")


def content_hash(row: Mapping[str, object]) -> str:
    return hashlib.sha256(canonical(row, CONTENT_FIELDS).encode()).hexdigest()


def _sealed_text(kind: str, fields: tuple[str, ...], row: Mapping[str, object]) -> bytes:
    parts = [kind]
    for field in fields:
        value = row[field]
        parts.append("" if value is None else
                     format_ts(value) if isinstance(value, datetime) else str(value))
    return "|".join(parts).encode()


def row_mac(key: bytes, row: Mapping[str, object]) -> str:
    """The seal of a transition row (``row["key_id"]`` names ``key``)."""
    return hmac.new(key, _sealed_text("row-v1", SEALED_FIELDS, row), hashlib.sha256).hexdigest()


def attrs_mac(key: bytes, token: Mapping[str, object]) -> str:
    """The seal of a token's fixed attributes."""
    return hmac.new(key, _sealed_text("token-v1", TOKEN_SEALED_FIELDS, token),
                    hashlib.sha256).hexdigest()
