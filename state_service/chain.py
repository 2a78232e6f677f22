"""The per-token hash chain over the canonical transition row, and its verification.

Canonical row: the fields below joined by ``|``, with NULL as the empty string and timestamps
in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. ``row_hash = sha256(canonical)`` in hex; the first
row of a token chains from ``GENESIS_HASH``. Identifiers cannot contain ``|`` (the API's
patterns forbid it), so the form is unambiguous and can be recomputed in SQL by the audit marts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

GENESIS_HASH = "0" * 64

CANONICAL_FIELDS: tuple[str, ...] = (
    "token_ref", "version", "event_id", "from_state", "to_state", "actor", "reason_code",
    "decision", "idv_method", "wallet_id", "network", "token_type", "occurred_at",
    "recorded_at", "prev_hash",
)


def format_ts(value: datetime) -> str:
    """A timestamp as the chain writes it: UTC, microseconds, ``Z``."""
    if value.tzinfo is None:
        raise ValueError("timestamps in the hash chain must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row: Mapping[str, object]) -> str:
    parts = []
    for field in CANONICAL_FIELDS:
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


@dataclass(frozen=True)
class ChainBreak:
    token_ref: str
    version: int
    problem: str

    def __str__(self) -> str:
        return f"token {self.token_ref} version {self.version}: {self.problem}"


@dataclass
class VerifyResult:
    tokens: int = 0
    rows: int = 0
    breaks: list[ChainBreak] | None = None

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify_rows(rows: Iterable[Mapping[str, object]]) -> VerifyResult:
    """Verify rows sorted by (token_ref, version). Reports the first break of each token."""
    result = VerifyResult(breaks=[])
    current: str | None = None
    expected_prev, expected_version, broken = GENESIS_HASH, 1, False
    for row in rows:
        result.rows += 1
        if row["token_ref"] != current:
            current = str(row["token_ref"])
            result.tokens += 1
            expected_prev, expected_version, broken = GENESIS_HASH, 1, False
        if broken:
            continue
        problem = None
        if row["version"] != expected_version:
            problem = f"version {row['version']} where {expected_version} was expected (gap)"
        elif row["prev_hash"] != expected_prev:
            problem = "prev_hash does not match the previous row's row_hash"
        elif row_hash(row) != row["row_hash"]:
            problem = "row_hash does not match the row's content (the row was altered)"
        if problem:
            result.breaks.append(ChainBreak(current, int(row["version"]), problem))
            broken = True
        expected_prev = str(row["row_hash"])
        expected_version = int(row["version"]) + 1
    return result


def verify_database(dsn: str) -> VerifyResult:
    """Recompute every token's chain in the state service's database."""
    columns = ", ".join(CANONICAL_FIELDS + ("row_hash",))
    with psycopg.connect(dsn) as conn, conn.cursor(name="verify_chain") as cur:
        cur.itersize = 5000
        cur.execute(f"select {columns} from token_state_transitions order by token_ref, version")
        names = [d.name for d in cur.description]
        result = verify_rows(dict(zip(names, r, strict=True)) for r in cur)
        tips = conn.execute(
            "select t.token_ref, t.version, t.last_hash, x.row_hash from tokens t "
            "left join token_state_transitions x "
            "  on x.token_ref = t.token_ref and x.version = t.version "
            "where x.row_hash is distinct from t.last_hash").fetchall()
    for token_ref, version, _last, _tip in tips:
        result.breaks.append(ChainBreak(token_ref, version,
                                        "tokens.last_hash does not match the chain's last row"))
    return result
