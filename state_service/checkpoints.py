"""Checkpoints of the transition log, kept where the database's writers cannot reach.

A checkpoint records every row sealed since the previous one (``token_ref``, ``version``,
``transition_id``, ``row_hash``), read with the same snapshot contract as ingestion (rows whose
``xact_id`` lies in ``[xact_from, xact_to)``, ``xact_to`` the snapshot's xmin: a transaction
that commits late falls into the next checkpoint, never between two). Checkpoints are numbered;
each names the digest of the one before, and its own digest is sealed with the chain key.

They are written twice:

- to S3, ``s3://$TOKENWATCH_AUDIT_BUCKET/checkpoints/<seq>.jsonl.gz``, under Object Lock in
  COMPLIANCE mode for ``TOKENWATCH_CHECKPOINT_RETENTION_DAYS``: not even the bucket's owner can
  delete or overwrite the version written (a later version under the same key is ignored: the
  oldest version is the checkpoint);
- to the warehouse, ``raw.chain_checkpoints`` and ``raw.chain_checkpoint_log``, where the audit
  marts compare the log with them.

Nobody who can write to PostgreSQL can change either, so a history rewritten inside the
database, however well re-hashed, no longer matches them.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import hmac
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from state_service import chain
from state_service.verify import CannotVerify, CheckpointRow, Finding
from tokenwatch import config

FORMAT = "tokenwatch-checkpoint-v1"
#: Each row line: [token_ref, version, transition_id, row_hash, content_hash, sealed], where
#: ``sealed`` says whether the row's seal held when the checkpoint was taken (the checkpoint
#: writer holds the key; a forged row is recorded as what it is).
_COLUMNS = ", ".join("xact_id::text as xact_id" if c == "xact_id" else c for c in sorted(
    set(chain.SEALED_FIELDS) | set(chain.CANONICAL_FIELDS) | {"row_hash", "row_mac"}))
PREFIX = "checkpoints/"


def audit_bucket() -> str:
    """``TOKENWATCH_AUDIT_BUCKET``: the Object Lock bucket of checkpoints."""
    return config.settings().audit_bucket


def retention_days() -> int:
    """``TOKENWATCH_CHECKPOINT_RETENTION_DAYS`` (default 2557: seven years)."""
    return config.settings().checkpoint_retention_days


def ensure_bucket(s3, bucket: str) -> None:
    """Create the checkpoint bucket with Object Lock (local stack and tests; in production the
    bucket is provisioned with it, and this only checks that it is on)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    conf = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    if conf.get("ObjectLockEnabled") != "Enabled":
        raise RuntimeError(f"bucket {bucket} has no Object Lock: checkpoints need it")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    taken_at: str
    prev_digest: str | None
    digest: str
    key_id: str
    seal: str
    xact_from: int
    xact_to: int
    rows: int
    key: str


def _key(seq: int) -> str:
    return f"{PREFIX}{seq:010d}.jsonl.gz"


def _digest(lines: list[bytes]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line)
    return h.hexdigest()


def _seal(key: bytes, digest: str) -> str:
    return hmac.new(key, f"checkpoint-v1|{digest}".encode(), hashlib.sha256).hexdigest()


def list_checkpoints(s3, bucket: str) -> list[Checkpoint]:
    """Every checkpoint in the bucket, oldest first, from each key's oldest version."""
    found = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=PREFIX)
    oldest: dict[str, dict] = {}
    for page in pages:  # S3 lists a key's versions newest first: the last one is the oldest
        for v in page.get("Versions", []):
            oldest[v["Key"]] = v
    for key in sorted(oldest):
        head = s3.head_object(Bucket=bucket, Key=key, VersionId=oldest[key]["VersionId"])
        meta = head["Metadata"]
        where = f"{key}?versionId={oldest[key]['VersionId']}"
        try:
            found.append(Checkpoint(
                seq=int(meta["seq"]), taken_at=meta["taken-at"],
                prev_digest=meta.get("prev-digest") or None, digest=meta["digest"],
                key_id=meta["key-id"], seal=meta["seal"], xact_from=int(meta["xact-from"]),
                xact_to=int(meta["xact-to"]), rows=int(meta["rows"]), key=where))
        except (KeyError, ValueError):  # not written by take_checkpoint: fails its check
            seq = int(key.removeprefix(PREFIX).split(".")[0]) if key[len(PREFIX):][:1].isdigit() \
                else 0
            found.append(Checkpoint(seq, "", None, "", "", "", 0, 0, 0, where))
    return found


def take_checkpoint(dsn: str, s3, bucket: str, keys: tuple[str, Mapping[str, bytes]],
                    sink: Callable[[Checkpoint, Iterable[list]], None] | None = None
                    ) -> Checkpoint:
    """Record every row committed since the previous checkpoint's snapshot; write it to S3
    (locked) and hand it to ``sink`` (``ingestion.sources.checkpoints.loader(wh)`` copies it
    to the warehouse). Any role that can read the log may take one.

    A checkpoint holds the rows visible to its snapshot with ``xact_id >= xact_from`` (the
    previous snapshot's xmin): every transaction the previous snapshot could not see has an
    id at or above that xmin, so a late commit is always in the next checkpoint. Rows near the
    boundary may be in two checkpoints, with the same hash."""
    key_id, keyring = keys
    previous = list_checkpoints(s3, bucket)
    last = previous[-1] if previous else None
    seq = last.seq + 1 if last else 1
    xact_from = last.xact_to if last else 0
    with tempfile.TemporaryFile() as body, tempfile.TemporaryFile() as rows_file:
        count = 0
        with psycopg.connect(dsn, options="-c TimeZone=UTC") as conn, conn.transaction():
            conn.execute("set transaction isolation level repeatable read, read only")
            xact_to = int(conn.execute(
                "select pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()[0])
            cur = conn.cursor(name="checkpoint_rows", row_factory=dict_row)
            cur.itersize = 10_000
            cur.execute(
                f"select {_COLUMNS} from token_state_transitions where xact_id >= %s::text::xid8"
                " order by token_ref collate \"C\", version, transition_id", [str(xact_from)])
            for row in cur:
                key = keyring.get(row["key_id"]) if row["key_id"] else None
                if row["key_id"] and key is None:
                    # a checkpoint is locked for years: one that called every row of a
                    # removed key unsealed would stand for good; take none instead
                    raise CannotVerify(
                        f"a row of token {row['token_ref']} is sealed with key id "
                        f"{row['key_id']!r}, which TOKENWATCH_CHAIN_KEYS does not hold: no "
                        "checkpoint taken (keep every key that ever sealed rows)")
                sealed = key is not None and chain.row_mac(key, row) == row["row_mac"]
                line = json.dumps([row["token_ref"], row["version"], row["transition_id"],
                                   row["row_hash"], chain.content_hash(row), sealed])
                rows_file.write(line.encode() + b"\n")
                count += 1
        taken_at = datetime.now(UTC).isoformat()
        header = {"format": FORMAT, "seq": seq, "taken_at": taken_at,
                  "prev_digest": last.digest if last else None, "xact_from": xact_from,
                  "xact_to": xact_to, "rows": count}
        digest = hashlib.sha256()
        rows_file.seek(0)
        with gzip.GzipFile(fileobj=body, mode="wb", mtime=0, compresslevel=6) as gz:
            head = json.dumps(header, sort_keys=True).encode() + b"\n"
            digest.update(head)
            gz.write(head)
            for chunk in iter(lambda: rows_file.read(1 << 20), b""):
                digest.update(chunk)
                gz.write(chunk)
        body.seek(0)
        seal = _seal(keyring[key_id], digest.hexdigest())
        resp = s3.put_object(
            Bucket=bucket, Key=_key(seq), Body=body, ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=(datetime.now(UTC) + timedelta(days=retention_days()))
            .replace(microsecond=0),
            Metadata={"seq": str(seq), "taken-at": taken_at,
                      "prev-digest": header["prev_digest"] or "", "digest": digest.hexdigest(),
                      "key-id": key_id, "seal": seal, "xact-from": str(xact_from),
                      "xact-to": str(xact_to), "rows": str(count)})
        cp = Checkpoint(seq, taken_at, header["prev_digest"], digest.hexdigest(), key_id, seal,
                        xact_from, xact_to, count, f"{_key(seq)}?versionId={resp['VersionId']}")
        if sink is not None:
            rows_file.seek(0)
            sink(cp, (json.loads(line) for line in rows_file))
    return cp


def check_sequence(checkpoints: list[Checkpoint], s3, bucket: str,
                   keyring: Mapping[str, bytes]
                   ) -> tuple[list[Finding], list[tuple[Checkpoint, str]]]:
    """Findings about the checkpoints themselves, and the sound ones with their local files."""
    findings: list[Finding] = []
    files: list[tuple[Checkpoint, str]] = []
    prev_digest, expected = None, 1
    for cp in checkpoints:
        where = f"checkpoint {cp.seq}"
        if cp.seq != expected:
            findings.append(Finding("checkpoint_missing", "(checkpoints)", None,
                                    f"checkpoint(s) {expected}..{cp.seq - 1} are missing"))
        expected = cp.seq + 1
        key_name, _, version = cp.key.partition("?versionId=")
        body = s3.get_object(Bucket=bucket, Key=key_name, VersionId=version)["Body"]
        digest, lines = hashlib.sha256(), 0
        tmp = tempfile.NamedTemporaryFile("wb", delete=False, suffix=".jsonl")  # noqa: SIM115
        try:  # streamed: a checkpoint of millions of rows is never held in memory
            with tmp, gzip.GzipFile(fileobj=body, mode="rb") as gz:
                for line in gz:
                    digest.update(line)
                    tmp.write(line)
                    lines += 1
        except (OSError, EOFError, ValueError):
            lines = 0
        key = keyring.get(cp.key_id)
        if key is None:  # not a forgery: this verifier cannot judge it
            os.unlink(tmp.name)
            raise CannotVerify(f"{where} is sealed with key id {cp.key_id!r}, which "
                               "TOKENWATCH_CHAIN_KEYS does not hold (keep every key that ever "
                               "sealed rows or checkpoints)")
        if not lines or digest.hexdigest() != cp.digest or _seal(key, cp.digest) != cp.seal:
            os.unlink(tmp.name)
            findings.append(Finding("checkpoint_missing", "(checkpoints)", None,
                                    f"{where}: its digest or seal does not match"))
            continue
        if cp.prev_digest != prev_digest:
            findings.append(Finding("checkpoint_missing", "(checkpoints)", None,
                                    f"{where} does not follow the checkpoint before it"))
        prev_digest = cp.digest
        files.append((cp, tmp.name))
    return findings, files


def merged_rows(files: list[tuple[Checkpoint, str]]) -> Iterator[CheckpointRow]:
    """The rows of every sound checkpoint, sorted by token (bytewise) and version."""
    return heapq.merge(*(rows_of(path, cp.seq) for cp, path in files),
                       key=lambda c: (c.token_ref.encode(), c.version))


def rows_of(path: str, seq: int) -> Iterator[CheckpointRow]:
    with open(path, "rb") as fh:
        next(fh)  # the header
        for line in fh:
            token_ref, version, _tid, row_hash, _content, sealed = json.loads(line)
            yield CheckpointRow(token_ref, int(version), row_hash, seq, bool(sealed))
