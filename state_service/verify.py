"""``tokenwatch audit verify``: the transition log checked against its chain, its seals and the
checkpoints kept outside the database, naming what it finds.

Three streams sorted by token (the log, the tokens, the checkpoints' rows) are merged one token
at a time, so memory stays constant however long the log is. Each token gets at most one
finding, the first thing wrong with it, by kind:

=========================  =======================================================================
``edited_row``             a row's content changed (its hash or its seal no longer matches)
``deleted_row``            a version is missing, or the chain ends before a checkpointed version
``inserted_row``           a row no seal vouches for, past what the checkpoints recorded
``reordered_rows``         rows whose seals hold at another version than the one they sit at
``forked_version``         two rows with one version
``whole_chain_rewrite``    no row of the token carries a valid seal
``token_erased``           a token the checkpoints recorded has no rows, or its ``tokens`` row
                           went missing
``token_attributes``       the token's fixed attributes (wallet, network, type, card_ref) changed
``token_head``             ``tokens``' state/version/last_hash disagree with the chain's last row
``checkpoint_mismatch``    a checkpointed row hash differs while the seals hold
``checkpoint_missing``     a checkpoint is missing from the sequence, or its digest or seal fails
``unsealed_row``           a row without a seal (written before migration 0003, or stripped)
=========================  =======================================================================

Exit codes of the command: 0 intact, 1 tampered, 2 could not check (no database, unknown key).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from state_service import chain

KINDS = ("edited_row", "deleted_row", "inserted_row", "reordered_rows", "forked_version",
         "whole_chain_rewrite", "token_erased", "token_attributes", "token_head",
         "checkpoint_mismatch", "checkpoint_missing", "unsealed_row")

_ROW_COLUMNS = ("transition_id", "xact_id", "token_ref", "version", "event_id", "from_state",
                "to_state", "actor", "reason_code", "decision", "idv_method", "wallet_id",
                "network", "token_type", "occurred_at", "recorded_at", "request_hash",
                "prev_hash", "row_hash", "key_id", "row_mac")
_ROWS_SQL = ("select " + ", ".join("xact_id::text as xact_id" if c == "xact_id" else c
                                   for c in _ROW_COLUMNS)
             + " from token_state_transitions order by token_ref collate \"C\", version,"
               " transition_id")
#: ``--since``: only the tokens written to since a checkpoint's snapshot.
_TOUCHED = ("token_ref in (select token_ref from token_state_transitions"
            " where xact_id >= %s::text::xid8)")
_TOKENS_SQL = ("select token_ref, wallet_id, network, token_type, card_ref, state, version,"
               " last_hash, created_at, key_id, attrs_mac from tokens"
               " order by token_ref collate \"C\"")


class CannotVerify(RuntimeError):
    """Verification could not run (exit 2): say why."""


@dataclass(frozen=True)
class Finding:
    kind: str
    token_ref: str
    version: int | None
    detail: str

    def __str__(self) -> str:
        at = f" version {self.version}" if self.version is not None else ""
        return f"{self.kind}: token {self.token_ref}{at}: {self.detail}"


@dataclass
class Verification:
    tokens: int = 0
    rows: int = 0
    unsealed_rows: int = 0
    checkpoints: int = 0
    checkpointed_rows: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        return counts


@dataclass(frozen=True)
class CheckpointRow:
    token_ref: str
    version: int
    row_hash: str
    seq: int
    #: whether the row's seal held when the checkpoint was taken: a row forged before a
    #: checkpoint is recorded in it as what it is, and vouches for nothing
    sealed: bool = True


def _grouped(rows: Iterable, ref: Callable = lambda r: r["token_ref"]
             ) -> Iterator[tuple[str, list]]:
    for token_ref, group in itertools.groupby(rows, key=ref):
        yield token_ref, list(group)


def verify_token(ref: str, rows: list[dict], token: dict | None,
                 checkpointed: list[CheckpointRow], keys: Mapping[str, bytes]) -> Finding | None:
    """The first thing wrong with one token's history, or None."""
    if not rows:
        if checkpointed or token is not None:
            return Finding("token_erased", ref, None,
                           f"{len(checkpointed)} checkpointed row(s) and no row in the log"
                           if checkpointed else "the token has no transition rows")
        return None
    if token is None:
        return Finding("token_erased", ref, None,
                       f"{len(rows)} row(s) in the log but no tokens row")
    versions = [r["version"] for r in rows]
    dupes = sorted({v for v in versions if versions.count(v) > 1})
    if dupes:
        return Finding("forked_version", ref, dupes[0],
                       f"{versions.count(dupes[0])} rows carry version {dupes[0]}")
    if token.get("key_id") is not None:
        key = keys.get(token["key_id"])
        if key is None:
            raise CannotVerify(f"token {ref} is sealed with key id {token['key_id']!r}, which "
                               "TOKENWATCH_CHAIN_KEYS does not hold")
        if chain.attrs_mac(key, token) != token.get("attrs_mac"):
            return Finding("token_attributes", ref, None,
                           "the token's fixed attributes (wallet, network, type, card_ref, "
                           "creation time) do not match their seal")

    def seal_holds(row: Mapping, version: int) -> bool | None:
        if row.get("key_id") is None:
            return None
        key = keys.get(row["key_id"])
        if key is None:
            raise CannotVerify(f"a row of token {ref} is sealed with key id {row['key_id']!r}, "
                               "which TOKENWATCH_CHAIN_KEYS does not hold")
        return chain.row_mac(key, dict(row, version=version)) == row.get("row_mac")

    by_version = {r["version"]: r for r in rows}
    bad_seal = [r for r in rows if seal_holds(r, r["version"]) is False]
    sealed = [r for r in rows if r.get("key_id") is not None]
    cp_versions = {c.version: c for c in checkpointed if c.sealed}
    cp_head = max(cp_versions, default=0)
    missing = sorted(set(range(1, max(versions) + 1)) - set(versions))

    if bad_seal:
        if len(bad_seal) == len(sealed) and len(rows) > 1:
            return Finding("whole_chain_rewrite", ref, 1,
                           f"none of the token's {len(rows)} rows matches its seal")
        moved = {}
        for r in bad_seal:
            for v in range(1, max(versions) + 2):
                if v != r["version"] and seal_holds(r, v):
                    moved[r["version"]] = v
                    break
        stuck = [r["version"] for r in bad_seal if r["version"] not in moved]
        if moved and not stuck and sorted(moved) == sorted(moved.values()):
            first = min(moved)
            return Finding("reordered_rows", ref, first,
                           f"rows at versions {sorted(moved)} were sealed at versions "
                           f"{[moved[v] for v in sorted(moved)]}")
        if moved and all(moved[v] == v - 1 for v in moved):
            at = min(stuck) if stuck else min(moved)
            return Finding("inserted_row", ref, at,
                           f"a row was inserted at version {at}; the {len(moved)} row(s) after "
                           "it were moved up and re-hashed")
        if moved and all(moved[v] == v + 1 for v in moved):
            at = min(moved)
            return Finding("deleted_row", ref, at,
                           f"the row sealed at version {at} is gone; the {len(moved)} row(s) "
                           "after it were moved down and re-hashed")
        first = min(stuck or moved)
        if first > cp_head and cp_head:
            return Finding("inserted_row", ref, first,
                           f"version {first} is past the checkpoint (version {cp_head}) and "
                           "no seal vouches for it")
        return Finding("edited_row", ref, first,
                       "the row does not match its seal (edited, then re-hashed)")
    if missing:
        return Finding("deleted_row", ref, missing[0], f"version {missing[0]} is missing")
    if versions[0] < 1:  # a version below 1: the SQL verifier's rule too
        return Finding("deleted_row", ref, None, "versions are not 1..n")
    unsealed = [r["version"] for r in rows if r.get("key_id") is None]
    if unsealed:
        return Finding("unsealed_row", ref, unsealed[0],
                       f"{len(unsealed)} row(s) carry no seal (written before seals existed, "
                       "or stripped of theirs)")
    if cp_head > versions[-1]:
        return Finding("deleted_row", ref, versions[-1] + 1,
                       f"a checkpoint recorded version {cp_head}; the log ends at "
                       f"{versions[-1]}")
    prev = chain.GENESIS_HASH
    for r in rows:
        if r["prev_hash"] != prev or chain.row_hash(r) != r["row_hash"]:
            return Finding("edited_row", ref, r["version"],
                           "prev_hash does not match the previous row" if r["prev_hash"] != prev
                           else "row_hash does not match the row's content")
        prev = r["row_hash"]
    for v, cp in sorted(cp_versions.items()):
        if by_version[v]["row_hash"] != cp.row_hash:
            return Finding("checkpoint_mismatch", ref, v,
                           f"checkpoint {cp.seq} recorded another hash for this row")
    head = rows[-1]
    if (token["version"], token["last_hash"], token["state"]) != (
            head["version"], head["row_hash"], head["to_state"]):
        return Finding("token_head", ref, token["version"],
                       "tokens' state, version or last_hash differ from the chain's last row")
    return None


def verify_streams(rows: Iterable[dict], tokens: Iterable[dict],
                   checkpointed: Iterable[CheckpointRow], keys: Mapping[str, bytes],
                   progress: Callable[[int], None] = lambda n: None,
                   touched_only: bool = False) -> Verification:
    """Merge three streams sorted by token_ref (bytewise) and verify each token. With
    ``touched_only`` the log streams hold only some tokens: a token the checkpoints know and
    the streams do not is left alone, not reported as erased."""
    result = Verification()
    counted_rows = _counting(rows, result)
    streams = [((ref, 0, group) for ref, group in _grouped(counted_rows)),
               ((t["token_ref"], 1, t) for t in tokens),
               ((ref, 2, group) for ref, group in _grouped(checkpointed,
                                                            lambda c: c.token_ref))]
    merged = heapq.merge(*streams, key=lambda item: (item[0].encode(), item[1]))
    for ref, items in itertools.groupby(merged, key=lambda item: item[0]):
        got: dict[int, object] = {kind: value for _, kind, value in items}
        if touched_only and 0 not in got and 1 not in got:
            continue
        rows_of = got.get(0) or []
        cps: list[CheckpointRow] = got.get(2) or []
        result.tokens += 1
        result.unsealed_rows += sum(1 for r in rows_of if r.get("key_id") is None)
        result.checkpointed_rows += len(cps)
        finding = verify_token(ref, rows_of, got.get(1), cps, keys)
        if finding:
            result.findings.append(finding)
        if result.tokens % 10_000 == 0:
            progress(result.rows)
    progress(result.rows)
    return result


def _counting(rows: Iterable[dict], result: Verification) -> Iterator[dict]:
    for r in rows:
        result.rows += 1
        yield r


def verify_database(dsn: str, keys: Mapping[str, bytes], checkpointed: Iterable[CheckpointRow] = (),
                    progress: Callable[[int], None] = lambda n: None,
                    since_xact: int | None = None) -> Verification:
    """Verify the log at ``dsn`` (any role that can read it) against ``checkpointed`` rows
    (sorted by token_ref, version). The session runs in UTC and reads through server-side
    cursors, a few thousand rows at a time. With ``since_xact``, only the tokens with a row
    written by a transaction at or above it are verified (whole, against every checkpoint)."""
    try:
        conn = psycopg.connect(dsn, options="-c TimeZone=UTC", row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise CannotVerify(f"the state database is not reachable: {exc}") from exc
    with conn, conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        rows_cur = conn.cursor(name="verify_rows")
        rows_cur.itersize = 5000
        tokens_cur = conn.cursor(name="verify_tokens")
        tokens_cur.itersize = 5000
        if since_xact is None:
            rows_cur.execute(_ROWS_SQL)
            tokens_cur.execute(_TOKENS_SQL)
        else:
            where = " where " + _TOUCHED + " order by"
            rows_cur.execute(_ROWS_SQL.replace(" order by", where, 1), [str(since_xact)])
            tokens_cur.execute(_TOKENS_SQL.replace(" order by", where, 1), [str(since_xact)])
        return verify_streams(rows_cur, tokens_cur, checkpointed, keys, progress,
                              touched_only=since_xact is not None)
