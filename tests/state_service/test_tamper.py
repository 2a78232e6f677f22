"""Tamper evidence against a database superuser: every case of tests/tamper.py is named by
``audit verify`` (seals, chain and checkpoints), on the token and version the table gives, and
the untampered tokens pass; checkpoints are locked in S3 and their own gaps are found."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from state_service.app import create_app
from state_service.audit import verify_log
from state_service.checkpoints import ensure_bucket, list_checkpoints, take_checkpoint
from state_service.server import ServiceThread
from tests.tamper import CASES, ROWS, apply_all, record_history
from tokenwatch import config

KEYS = ("k2026", {"k2025": b"an-older-key-still-verifying", "k2026": b"the-current-key-of-2026"})
KEYS_ENV = ",".join(f"{k}:{v.decode()}" for k, v in KEYS[1].items())


@pytest.fixture()
def audit_bucket(local_stack):
    s3 = local_stack.s3_client()
    name = f"audit-{uuid.uuid4().hex[:8]}"
    ensure_bucket(s3, name)
    return s3, name


@pytest.fixture()
def recorded(source_dsn, monkeypatch):
    """A history of one token per tamper case plus two left alone, written by the service."""
    monkeypatch.setenv("TOKENWATCH_CHAIN_KEYS", KEYS_ENV)
    monkeypatch.setenv("TOKENWATCH_CHAIN_KEY_ID", KEYS[0])
    app = create_app(source_dsn, api_keys=["k"], run_migrations=False)
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url, timeout=30,
                                                 headers={"Authorization": "Bearer k"}) as c:
        refs = record_history(c, len(CASES) + 2)
    return source_dsn, refs


def test_every_tamper_case_is_named_and_the_rest_passes(recorded, audit_bucket):
    dsn, refs = recorded
    s3, bucket = audit_bucket
    take_checkpoint(dsn, s3, bucket, KEYS)
    clean = verify_log(dsn, KEYS[1], s3, bucket)
    assert clean.ok, clean.findings
    assert clean.rows == len(refs) * ROWS and clean.checkpointed_rows == clean.rows

    applied = apply_all(dsn, refs)
    result = verify_log(dsn, KEYS[1], s3, bucket)
    found = {f.token_ref: f for f in result.findings}
    for ref, case in applied.items():
        assert ref in found, f"not found: {case.name}"
        assert (found[ref].kind, found[ref].version) == (case.kind, case.version), (
            case.name, str(found[ref]))
    untouched = set(refs) - set(applied)
    assert len(untouched) == 2 and not untouched & set(found)
    assert len(result.findings) == len(CASES)


def test_a_checkpoint_after_the_tamper_changes_no_finding(recorded, audit_bucket):
    """The order tests/tamper.py gives: checkpoint, tamper, checkpoint again. The second
    checkpoint records the forged rows with ``sealed = false``: they vouch for nothing (the
    checkpointed head is the last row recorded with its seal intact), so a row appended past
    the first checkpoint is still inserted_row, not edited_row."""
    dsn, refs = recorded
    s3, bucket = audit_bucket
    take_checkpoint(dsn, s3, bucket, KEYS)
    applied = apply_all(dsn, refs)
    take_checkpoint(dsn, s3, bucket, KEYS)
    found = {f.token_ref: f for f in verify_log(dsn, KEYS[1], s3, bucket).findings}
    assert {ref: (found[ref].kind, found[ref].version) for ref in applied} == {
        ref: (case.kind, case.version) for ref, case in applied.items()}
    assert len(found) == len(CASES)


def test_without_checkpoints_the_seals_still_name_re_hashed_edits(recorded):
    dsn, refs = recorded
    applied = apply_all(dsn, refs)
    found = {f.token_ref: f for f in verify_log(dsn, KEYS[1]).findings}
    for ref, case in applied.items():
        if case.kind in ("edited_row", "reordered_rows", "whole_chain_rewrite", "forked_version",
                         "token_attributes", "unsealed_row"):
            assert (found[ref].kind, found[ref].version) == (case.kind, case.version), case.name


def test_a_key_the_verifier_does_not_hold_means_could_not_check(recorded):
    from state_service.verify import CannotVerify

    dsn, _ = recorded
    with pytest.raises(CannotVerify, match="k2026"):
        verify_log(dsn, {"k2025": KEYS[1]["k2025"]})


def test_checkpoints_are_locked_chained_and_their_gaps_found(recorded, audit_bucket):
    dsn, refs = recorded
    s3, bucket = audit_bucket
    first = take_checkpoint(dsn, s3, bucket, KEYS)
    second = take_checkpoint(dsn, s3, bucket, KEYS)  # nothing new: an empty checkpoint
    assert (first.seq, second.seq, second.prev_digest) == (1, 2, first.digest)
    key, _, version = first.key.partition("?versionId=")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied|locked|retention"):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    # an attacker with write access to the bucket but not the key writes over checkpoint 1 and
    # adds a checkpoint 4: the oldest version still counts, and the forgery is named
    s3.put_object(Bucket=bucket, Key=key, Body=b"forged", Metadata={"seq": "1"})
    forged = dict(s3.head_object(Bucket=bucket, Key=second.key.partition("?versionId=")[0])
                  ["Metadata"], seq="4")
    s3.put_object(Bucket=bucket, Key="checkpoints/0000000004.jsonl.gz", Body=b"x",
                  Metadata=forged)
    assert [cp.seq for cp in list_checkpoints(s3, bucket)] == [1, 2, 4]
    result = verify_log(dsn, KEYS[1], s3, bucket)
    kinds = [(f.kind, f.detail) for f in result.findings]
    assert ("checkpoint_missing", "checkpoint(s) 3..3 are missing") in kinds
    assert ("checkpoint_missing", "checkpoint 4: its digest or seal does not match") in kinds
    assert all(f.kind == "checkpoint_missing" for f in result.findings)


def test_verify_cli_exit_codes_and_a_time_zone_far_from_utc(recorded, audit_bucket,
                                                            local_stack):
    dsn, refs = recorded
    s3, bucket = audit_bucket
    take_checkpoint(dsn, s3, bucket, KEYS)
    env = os.environ | {"TOKENWATCH_PG_DSN": dsn, "PGTZ": "Pacific/Kiritimati",
                        "TOKENWATCH_CHAIN_KEYS": KEYS_ENV,
                        "TOKENWATCH_AUDIT_BUCKET": bucket}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tokenwatch.cli", "audit", "verify",
                               *extra], env=env, capture_output=True, text=True, timeout=300)

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact" in ok.stdout and "1 checkpoint" in ok.stdout
    daily = run("--since", "1")  # nothing written since checkpoint 1: no token to read
    assert daily.returncode == 0 and "of 0 token(s)" in daily.stdout, daily.stdout
    apply_all(dsn, refs[:1])
    bad = run()
    assert bad.returncode == 1 and "edited_row" in bad.stdout and refs[0] in bad.stdout
    down = subprocess.run([sys.executable, "-m", "tokenwatch.cli", "audit", "verify"],
                          env=env | {"TOKENWATCH_PG_DSN": "host=127.0.0.1 port=1 dbname=x"},
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 2, down.stdout + down.stderr


def test_local_default_key_is_the_public_development_key(monkeypatch):
    monkeypatch.delenv("TOKENWATCH_CHAIN_KEYS", raising=False)
    monkeypatch.setenv("TOKENWATCH_ENV", "local")
    assert config.chain_keys() == (config.LOCAL_CHAIN_KEY_ID,
                                   {config.LOCAL_CHAIN_KEY_ID: config.LOCAL_CHAIN_KEY})
    monkeypatch.setenv("TOKENWATCH_ENV", "prod")
    with pytest.raises(ValueError, match="TOKENWATCH_CHAIN_KEYS"):
        config.chain_keys()


def test_since_a_checkpoint_only_the_tokens_written_since_are_verified(recorded, audit_bucket,
                                                                       monkeypatch):
    dsn, refs = recorded
    s3, bucket = audit_bucket
    take_checkpoint(dsn, s3, bucket, KEYS)
    monkeypatch.setenv("TOKENWATCH_CHAIN_KEYS", KEYS_ENV)
    monkeypatch.setenv("TOKENWATCH_CHAIN_KEY_ID", KEYS[0])
    app = create_app(dsn, api_keys=["k"], run_migrations=False)
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url, timeout=30,
                                                 headers={"Authorization": "Bearer k"}) as c:
        late = record_history(c, 2)  # written after checkpoint 1
    apply_all(dsn, [refs[0], late[0]])  # an edit on an old token and on a new one
    daily = verify_log(dsn, KEYS[1], s3, bucket, since=1)
    assert daily.tokens == 2  # the two written since; the old ones are not read
    assert [(f.token_ref, f.kind) for f in daily.findings] == [(late[0], CASES[0].kind)]
    full = verify_log(dsn, KEYS[1], s3, bucket)
    assert sorted(f.token_ref for f in full.findings) == sorted([refs[0], late[0]])
    from state_service.verify import CannotVerify

    with pytest.raises(CannotVerify, match="no checkpoint 7"):
        verify_log(dsn, KEYS[1], s3, bucket, since=7)


def test_a_removed_key_stops_the_checkpoint_and_the_verify_without_a_false_finding(
        recorded, audit_bucket):
    # An operator rotates and drops a key still in use. A checkpoint then recorded every row
    # that key sealed as unsealed, locked for years; verify called a checkpoint sealed with a
    # dropped key "checkpoint_missing", which reads as tampering. Both must say "could not
    # check", and write nothing.
    from state_service.verify import CannotVerify

    dsn, refs = recorded  # rows sealed with k2026
    s3, bucket = audit_bucket
    only_old = {"k2025": KEYS[1]["k2025"]}
    with pytest.raises(CannotVerify, match="sealed with key id 'k2026'.*no checkpoint taken"):
        take_checkpoint(dsn, s3, bucket, ("k2025", only_old))
    assert list_checkpoints(s3, bucket) == []  # nothing written, nothing locked
    take_checkpoint(dsn, s3, bucket, ("k2025", KEYS[1]))  # sealed with k2025
    assert verify_log(dsn, KEYS[1], s3, bucket).ok
    with pytest.raises(CannotVerify, match="checkpoint 1 is sealed with key id 'k2025'"):
        verify_log(dsn, {"k2026": KEYS[1]["k2026"]}, s3, bucket)
