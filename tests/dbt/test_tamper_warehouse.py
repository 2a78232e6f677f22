"""One table of tamper cases, two verifiers: every case of tests/tamper.py that the warehouse
can see is named by the audit marts (audit_exceptions, from audit_token_chains) with the same
kind and version as ``tokenwatch audit verify`` names it, run in the same test on the same
database, and the untouched tokens pass both.

The order of tests/tamper.py: the service records a history (as ``tokenwatch_service``), a
checkpoint is taken (S3 under Object Lock, and the warehouse), a superuser tampers, a second
checkpoint is taken (a forged row lands in it with ``sealed = false``), then both verify. The
warehouse gets the log as ingestion loads it (``load_transitions``) and dbt builds only what
audit_exceptions needs.

Cases with ``in_warehouse=False`` (token_attributes, token_head, unsealed_row) are Python's
alone: the warehouse holds no ``tokens`` table and no key, so it cannot see them; the test
says so by asserting the warehouse reports nothing for those tokens.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from ingestion.sources.checkpoints import loader
from state_service import roles
from state_service.app import create_app
from state_service.audit import verify_log
from state_service.checkpoints import ensure_bucket, take_checkpoint
from state_service.server import ServiceThread
from state_service.verify import KINDS
from tests.dbt.dbt_runner import duckdb_env, postgres_env, run_dbt
from tests.tamper import CASES, ROWS, apply_all, record_history

KEYS = ("k2026", {"k2025": b"an-older-key-still-verifying", "k2026": b"the-current-key-of-2026"})
KEYS_ENV = ",".join(f"{k}:{v.decode()}" for k, v in KEYS[1].items())
#: beyond one token per case: two left alone, and one whose hashes are nulled in the warehouse
UNTOUCHED, NULLED = 2, 1
#: the versions whose prev_hash and row_hash are nulled in the warehouse's copy
NULL_PREV_HASH_AT, NULL_ROW_HASH_AT = 3, 6


def _settled(admin_dsn: str, timeout: float = 120) -> None:
    """Wait until every transaction that wrote to the log is below the cluster's snapshot xmin:
    a checkpoint (and ingestion) reads only below it, and another session on the shared
    server may hold a transaction open for a while."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_dsn, autocommit=True) as db:
        while True:
            newest, xmin = db.execute(
                "select (select max(xact_id)::text::bigint from token_state_transitions),"
                " pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
            if newest is None or xmin > newest:
                return
            if time.monotonic() > deadline:
                raise AssertionError("a session on the PostgreSQL server keeps a transaction "
                                     f"open below xact {newest}: the checkpoint would miss rows")
            time.sleep(0.5)


def _load_log(reader_dsn: str, admin_dsn: str, wh, timeout: float = 120) -> None:
    from ingestion.sources.transitions import load_transitions

    with psycopg.connect(admin_dsn) as db:
        (expected,) = db.execute("select count(*) from token_state_transitions").fetchone()
    deadline = time.monotonic() + timeout
    while True:
        load_transitions(reader_dsn, wh)
        if wh.count("token_state_transitions") >= expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the log did not load: a transaction stays open on the server")
        time.sleep(0.5)


def _null_hashes(wh, ref: str) -> None:
    """The brief's reproduction: one row's prev_hash and another's row_hash set to null in the
    warehouse's copy (the raw layer is where the audit marts read)."""
    wh.execute("update raw.token_state_transitions set prev_hash = null"
               " where token_ref = %s and version = %s", [ref, NULL_PREV_HASH_AT])
    wh.execute("update raw.token_state_transitions set row_hash = null"
               " where token_ref = %s and version = %s", [ref, NULL_ROW_HASH_AT])


@pytest.fixture()
def tampered(source_dsn, local_stack, monkeypatch, tmp_path):
    """The recorded, checkpointed, tampered and checkpointed-again history, and Python's
    verification of it; ``load(wh)`` writes the checkpoints and the log into a warehouse."""
    monkeypatch.setenv("TOKENWATCH_CHAIN_KEYS", KEYS_ENV)
    monkeypatch.setenv("TOKENWATCH_CHAIN_KEY_ID", KEYS[0])
    service_dsn = roles.role_dsn(source_dsn, roles.SERVICE)
    reader_dsn = roles.role_dsn(source_dsn, roles.READER)
    app = create_app(service_dsn, api_keys=["k"], run_migrations=False)
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url, timeout=30,
                                                 headers={"Authorization": "Bearer k"}) as c:
        refs = record_history(c, len(CASES) + UNTOUCHED + NULLED)
    s3 = local_stack.s3_client()
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    ensure_bucket(s3, bucket)
    return source_dsn, reader_dsn, refs, s3, bucket


def _verify_both(target: str, tampered, wh, tmp_path: Path) -> dict:
    admin_dsn, reader_dsn, refs, s3, bucket = tampered
    _settled(admin_dsn)
    take_checkpoint(reader_dsn, s3, bucket, KEYS, loader(wh))
    clean = verify_log(reader_dsn, KEYS[1], s3, bucket)
    assert clean.ok, clean.findings
    applied = apply_all(admin_dsn, refs)  # CASES[i] on refs[i]; the last three left alone
    assert len(applied) == len(CASES)
    _settled(admin_dsn)
    take_checkpoint(reader_dsn, s3, bucket, KEYS, loader(wh))

    # Python: tokenwatch audit verify, against both checkpoints
    python = verify_log(reader_dsn, KEYS[1], s3, bucket)
    py_found = {f.token_ref: (f.kind, f.version) for f in python.findings}
    assert len(python.findings) == len(CASES), [str(f) for f in python.findings]
    for ref, case in applied.items():
        assert py_found.get(ref) == (case.kind, case.version), (case.name, py_found.get(ref))

    # the warehouse: the log as ingestion loads it, the hashes of one more token nulled there
    untouched, nulled = refs[len(CASES):len(CASES) + UNTOUCHED], refs[-1]
    _load_log(reader_dsn, admin_dsn, wh)
    _null_hashes(wh, nulled)
    wh.close()  # dbt opens the warehouse next (DuckDB: one writer)
    env = duckdb_env(wh.path) if target == "duckdb" else postgres_env(wh.dsn)
    started = time.monotonic()
    res = run_dbt(["build", "--select", "+audit_exceptions", "--indirect-selection", "cautious",
                   "--exclude", "test_type:unit"],  # the unit tests run with the full builds
                  "local" if target == "duckdb" else "postgres", env, tmp_path / "dbt")
    assert res.success, res.explain()
    print(f"dbt build +audit_exceptions on {target}: {time.monotonic() - started:.1f} s")

    def q(sql: str) -> list[tuple]:
        if target == "duckdb":
            import duckdb

            with duckdb.connect(str(wh.path), read_only=True) as con:
                return con.execute(sql).fetchall()
        with psycopg.connect(wh.dsn) as conn:
            return conn.execute(sql).fetchall()

    exceptions: dict[str, list[tuple]] = {}
    for ref, kind, version in q("select token_ref, exception_type, token_version from "
                                "analytics_compliance.audit_exceptions"):
        exceptions.setdefault(ref, []).append((kind, version))
    verdicts = dict((ref, (kind, version)) for ref, kind, version in q(
        "select token_ref, chain_verdict, finding_version from "
        "analytics_compliance.audit_token_chains"))
    statuses: dict[str, set[str]] = {}
    for ref, status in q("select token_ref, chain_status from "
                         "analytics_compliance.audit_token_transitions"):
        statuses.setdefault(ref, set()).add(status)

    for ref, case in applied.items():  # the table, for -s
        print(f"{case.name:64s} {case.kind:18s} {case.version!s:5s} python {py_found.get(ref)}"
              f"  {target} {verdicts.get(ref)}")
    wh_found = {}
    for ref, case in applied.items():
        chain_findings = [e for e in exceptions.get(ref, []) if e[0] in KINDS]
        if case.in_warehouse:
            # exactly one chain finding per token, the case's, as Python names it
            assert chain_findings == [(case.kind, case.version)], (case.name, chain_findings)
            assert verdicts[ref] == (case.kind, case.version), case.name
            wh_found[ref] = chain_findings[0]
        else:
            # Python's alone: the tokens table and the seals stay in PostgreSQL, so the
            # warehouse (the log and the checkpoints, no key) sees nothing wrong with these
            assert case.kind in ("token_attributes", "token_head", "unsealed_row"), case.name
            assert ref not in exceptions, (case.name, exceptions[ref])
            assert verdicts[ref] == ("intact", None) and statuses[ref] == {"verified"}
    # both verifiers agree on every case the warehouse can see
    assert wh_found == {ref: py_found[ref] for ref, case in applied.items() if case.in_warehouse}

    for ref in untouched:
        assert ref not in exceptions, exceptions[ref]
        assert statuses[ref] == {"verified"} and verdicts[ref] == ("intact", None)
    (verified_rows,), = q("select count(*) from analytics_compliance.audit_token_transitions "
                          "where chain_status = 'verified' and token_ref in ("
                          + ", ".join(f"'{r}'" for r in untouched) + ")")
    assert verified_rows == UNTOUCHED * ROWS

    # nulled hashes are never agreement: two rows not verified, and findings for them
    assert nulled not in py_found  # intact in PostgreSQL: only the warehouse copy was nulled
    rows_of_nulled = dict(q("select token_version, chain_status from "
                            "analytics_compliance.audit_token_transitions "
                            f"where token_ref = '{nulled}'"))
    assert rows_of_nulled[NULL_PREV_HASH_AT] == "prev_hash_mismatch"
    assert rows_of_nulled[NULL_ROW_HASH_AT] == "row_hash_mismatch"
    assert {v for v, s in rows_of_nulled.items() if s != "verified"} == {
        NULL_PREV_HASH_AT, NULL_ROW_HASH_AT, NULL_ROW_HASH_AT + 1}  # v7 links to a null hash
    assert ("edited_row", NULL_PREV_HASH_AT) in exceptions[nulled]
    assert ("hash_chain_break", NULL_PREV_HASH_AT) in exceptions[nulled]
    assert ("hash_chain_break", NULL_ROW_HASH_AT) in exceptions[nulled]

    # the checkpoints' own sequence is intact
    assert q("select count(*) from analytics_compliance.audit_exceptions "
             "where exception_type = 'checkpoint_missing'") == [(0,)]
    return {"python": py_found, "warehouse": wh_found}


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_both_verifiers_name_every_tamper_case(target, tampered, warehouse_factory, tmp_path):
    _verify_both(target, tampered, warehouse_factory(target), tmp_path)
