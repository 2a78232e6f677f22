"""The audit pack on real PostgreSQL and DuckDB: a clean simulated week (a world of this module's
own: recorded through the service, checkpointed in S3 under Object Lock, ingested, built by dbt,
reviewed by the gate's verdict table, its reports queried) where every control passes; the
session's built warehouse, with its two planted findings (tests/warehouses.py ``_tamper``: a
transition edited in the warehouse's copy, a card number in a wallet event), whose summary page
names both, in the HTML and in the PDF; and the manifest catching one changed byte, an added
and a removed file."""

from __future__ import annotations

import html
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from ingestion.warehouse.duckdb import DuckDBWarehouse
from quality import verdicts
from reporting.api.access_log import AccessEntry, AccessLog
from reporting.api.readers import DuckDBReader
from reporting.api.relations import relation
from reporting.audit_pack import build_pack, check_pack
from tests.conftest import API_KEY
from tests.dbt.dbt_runner import duckdb_env, run_dbt
from tests.warehouses import NOT_A_PAN, PAN, Built, ingest_world, rows
from tests.world import START, build_world
from tokenwatch import config

DAYS = 7
FIRST = START.date()
LAST = FIRST + timedelta(days=DAYS - 1)
EVERY_CONTROL = ("10.2.1", "10.2.2", "10.3.4", "TW-EXC", "TW-PAN", "10.4.1.1", "10.5.1", "10.6",
                 "TW-ACCESS")


@dataclass
class CleanWeek:
    path: Path  # the built DuckDB warehouse
    pg_dsn: str  # the world's database as tokenwatch_reader
    store: tuple  # (s3, bucket) of the checkpoints
    access_log: Path


def _summary_text(page: str) -> str:
    """The summary page of the HTML report, as text (tags gone, entities decoded)."""
    section = page.split('<section class="summary">', 1)[1].split("</section>", 1)[0]
    return html.unescape(re.sub(r"<[^>]+>", " ", section))


def _flat(text: str) -> str:
    """Text with all whitespace gone: PDF lines wrap anywhere."""
    return "".join(text.split())


def _write_access_log(path: Path) -> None:
    """Two requests of the week through the reports API's own writer: one answered, one
    refused for a bad key."""
    log = AccessLog(lambda: DuckDBWarehouse(path), close_after_idle_s=0).start()
    at = datetime(FIRST.year, FIRST.month, FIRST.day, 9, 30)
    log.record(AccessEntry("r1", at, "compliance", "GET", "/v1/query",
                           '{"metrics": "audit_exceptions"}', "audit_exceptions", 200, 7, 12.5,
                           "application/json"))
    log.record(AccessEntry("r2", at + timedelta(hours=1), "invalid", "GET", "/v1/metrics", "{}",
                           "", 401, 0, 0.4, "application/json"))
    log.flush()
    log.close()


@pytest.fixture(scope="module")
def clean_week(pg_server, local_stack, tmp_path_factory) -> CleanWeek:
    from ingestion.sources.checkpoints import loader
    from state_service.checkpoints import ensure_bucket, take_checkpoint
    from tokenwatch.postgres import drop_database

    world = build_world(pg_server, local_stack, API_KEY, tokens=120, days=DAYS, seed=1616)
    try:
        base = tmp_path_factory.mktemp("audit-pack-world")
        path = base / "warehouse.duckdb"
        s3, bucket = local_stack.s3_client(), f"audit-{uuid.uuid4().hex[:8]}"
        ensure_bucket(s3, bucket)
        wh = DuckDBWarehouse(path)
        try:
            wh.ensure_schema()
            ingest_world(world, wh)  # every transition in: all below the snapshot's xmin
            take_checkpoint(world.pg_dsn, s3, bucket, config.chain_keys(), loader(wh))
            # the gate's verdict per day, as orchestration/defs/gate/checks.py records it
            verdicts.record(wh, {FIRST + timedelta(days=i): [("kpi_suite", True),
                                                             ("transitions_reconciled", True)]
                                 for i in range(DAYS)}, "test-gate-run")
        finally:
            wh.close()
        res = run_dbt(["build", "--exclude", "test_type:unit"], "local", duckdb_env(path),
                      base / "dbt")
        assert res.success, res.explain()
        access_log = base / "reports-access.duckdb"
        _write_access_log(access_log)
        # three requests the state service refused in the period, as its recorder counts them
        # (state_service/auth_failures.py; the live path is tests/state_service/)
        refused_at = datetime.combine(FIRST + timedelta(days=1), time(12, 30), tzinfo=UTC)
        from psycopg.conninfo import make_conninfo

        admin = make_conninfo(pg_server.dsn, dbname=world.database)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("insert into auth_failures values (%s, 401, 'POST', "
                         "'/v1/tokens/tok-x/transitions', '10.1.2.3', 3, %s, %s)",
                         [refused_at, refused_at, refused_at])
        yield CleanWeek(path, world.pg_dsn, (s3, bucket), access_log)
    finally:
        drop_database(pg_server, world.database)


@pytest.fixture(scope="module")
def clean_pack(clean_week: CleanWeek, tmp_path_factory):
    reader = DuckDBReader(clean_week.path, 600)
    try:
        return build_pack(reader, relation=relation, start=FIRST, end=LAST,
                          out_dir=tmp_path_factory.mktemp("packs"), pg_dsn=clean_week.pg_dsn,
                          generated_by="test suite", checkpoint_store=clean_week.store,
                          access_log=clean_week.access_log)
    finally:
        reader.close()


def test_a_clean_week_passes_every_control(clean_pack, clean_week):
    assert clean_pack.controls == dict.fromkeys(EVERY_CONTROL, "pass"), clean_pack.summary
    assert clean_pack.passed and clean_pack.summary["verdict"] == "pass"
    assert clean_pack.summary["findings"] == []
    assert clean_pack.summary["chain_findings"] == {"postgres": 0, "warehouse": 0}
    assert clean_pack.directory.name == f"tokenwatch-audit-{FIRST}_{LAST}"
    assert check_pack(clean_pack.directory) == []
    names = {p.name for p in clean_pack.directory.iterdir()}
    assert {"report.html", "report.pdf", "manifest.json", "chain_findings.csv",
            "reconciliation_per_day.csv", "exceptions.csv", "quarantine_by_source_and_reason.csv",
            "lifecycle_actions.csv", "tokens_active_past_expiry.csv", "access_records.csv",
            "failed_authentications.csv", "exceptions_by_day.png",
            "reviews_by_day.png"} <= names
    # the access records and the refused request are the ones written, by name
    access = (clean_pack.directory / "access_records.csv").read_text()
    failed = (clean_pack.directory / "failed_authentications.csv").read_text().splitlines()
    assert "compliance" in access and len(failed) == 2 and ",invalid," in failed[1]
    service = (clean_pack.directory / "service_refused_requests.csv").read_text().splitlines()
    assert len(service) == 2 and ",401,POST,/v1/tokens/tok-x/transitions,10.1.2.3,3," in (
        service[1])
    assert clean_pack.summary["counts"]["State service requests refused"] == "3"
    # the reconciliation holds the PostgreSQL count of each day, read independently here
    with psycopg.connect(clean_week.pg_dsn, options="-c TimeZone=UTC") as conn:
        per_day = dict(conn.execute(
            "select (occurred_at at time zone 'UTC')::date, count(*) from "
            "token_state_transitions group by 1").fetchall())
    recon = (clean_pack.directory / "reconciliation_per_day.csv").read_text().splitlines()[1:]
    assert {date.fromisoformat(line.split(",")[0]): int(line.split(",")[1]) for line in recon} \
        == {d: per_day.get(d, 0) for d in (FIRST + timedelta(days=i) for i in range(DAYS))}
    assert all(line.endswith(",yes") for line in recon)


def test_the_pdf_holds_the_summary_numbers(clean_pack, clean_week):
    with psycopg.connect(clean_week.pg_dsn) as conn:
        (total,), = conn.execute("select count(*) from token_state_transitions").fetchall()
        (tokens,), = conn.execute("select count(*) from tokens").fetchall()
    first_page = PdfReader(clean_pack.report_pdf).pages[0].extract_text()
    flat = _flat(first_page)
    counts = clean_pack.summary["counts"]
    assert counts["Transitions (PostgreSQL / raw / marts)"] == f"{total:,} / {total:,} / {total:,}"
    for label, value in counts.items():
        assert _flat(label) in flat and _flat(value) in flat, (label, value)
    assert f"{total:,}" in first_page and _flat(f"{tokens:,} / {tokens:,}") in flat
    assert "Every control passed (9)" in first_page
    assert _flat(f"{FIRST} to {LAST}") in flat
    assert clean_pack.summary["dbt_manifest_sha256"] in flat
    assert "test suite" in first_page


def test_the_manifest_names_the_file_that_changed_was_added_or_removed(clean_pack, tmp_path):
    pack = tmp_path / clean_pack.directory.name
    shutil.copytree(clean_pack.directory, pack)
    assert check_pack(pack) == []
    csv = pack / "lifecycle_actions.csv"
    data = bytearray(csv.read_bytes())
    data[-2] = ord("9") if data[-2] != ord("9") else ord("8")  # one byte
    csv.write_bytes(bytes(data))
    assert check_pack(pack) == [
        "lifecycle_actions.csv: sha256 differs from the manifest's (the file changed)"]
    runner = CliRunner()
    from tokenwatch.cli import command

    res = runner.invoke(command(), ["audit", "check-pack", str(pack)])
    assert res.exit_code == 1 and "lifecycle_actions.csv" in res.output, res.output

    shutil.rmtree(pack)
    shutil.copytree(clean_pack.directory, pack)
    (pack / "notes.txt").write_text("added later\n")
    (pack / "reviews.csv").unlink()
    assert check_pack(pack) == ["reviews.csv: missing (the manifest lists it)",
                                "notes.txt: extra (not in the manifest)"]
    (pack / "notes.txt").unlink()
    shutil.copy(clean_pack.directory / "reviews.csv", pack / "reviews.csv")
    res = runner.invoke(command(), ["audit", "check-pack", str(pack)])
    assert res.exit_code == 0 and "verified" in res.output, res.output


def _planted(built: Built) -> tuple[tuple, tuple]:
    """The two findings tests/warehouses.py planted, found again here: (token, version) of
    the edited transition and (token, location) of the wallet event holding a card number."""
    edited, = rows(built, "select token_ref, version from raw.token_state_transitions where "
                          "transition_id = (select min(transition_id) from "
                          "raw.token_state_transitions where to_state = 'WalletActive')")
    event, = rows(built, "select token_ref, _source_location from raw.wallet_events where "
                         f"cast(extra as varchar) like '%{PAN}%'")
    return edited, event


@pytest.fixture(scope="module")
def tampered_pack(built_duckdb: Built, world, tmp_path_factory):
    reader = DuckDBReader(built_duckdb.path, 600)
    try:
        first = START.date()
        return build_pack(reader, relation=relation, start=first, end=first + timedelta(days=2),
                          out_dir=tmp_path_factory.mktemp("tampered"), pg_dsn=world.pg_dsn,
                          generated_by="test suite",
                          access_log=tmp_path_factory.mktemp("nolog") / "reports-access.duckdb")
    finally:
        reader.close()


def test_a_planted_tamper_and_a_card_number_are_named_on_the_summary_page(tampered_pack,
                                                                           built_duckdb):
    (token, version), (pan_token, location) = _planted(built_duckdb)
    c = tampered_pack.controls
    assert (c["10.3.4"], c["TW-PAN"], c["TW-EXC"]) == ("fail", "fail", "fail")
    assert c["10.2.1"] == "pass"  # the edit changed no count: everything reconciles
    assert c["10.4.1.1"] == "fail"  # the session's warehouse has no gate verdicts
    assert c["TW-ACCESS"] == "not checked" and not tampered_pack.passed
    assert tampered_pack.summary["chain_findings"] == {"postgres": 0, "warehouse": 1}
    summary = _summary_text(tampered_pack.report_html.read_text())
    first_page = _flat(PdfReader(tampered_pack.report_pdf).pages[0].extract_text())
    for page in (_flat(summary), first_page):
        # the tamper: which token and version, what kind, and that PostgreSQL disagrees
        assert _flat(f"edited_row: token {token} version {version}, found by the warehouse") \
            in page
        assert _flat(f"verifications disagree: token {token}. PostgreSQL intact, the "
                     f"warehouse edited_row at version {version}") in page
        # the card number: which event, what kind, masked
        assert _flat(f"pan_like_value (critical): token {pan_token} in wallet_events row "
                     f"{location}, column extra_json") in page
        assert "411111******1111" in page
        assert "noaccesslogfound" in page
    # no card number anywhere in the pack, the Luhn-failing one is no finding
    for path in tampered_pack.directory.iterdir():
        if path.suffix in (".csv", ".html", ".json"):
            assert PAN not in path.read_text(), path.name
    text = "".join(p.extract_text() for p in PdfReader(tampered_pack.report_pdf).pages)
    assert PAN not in _flat(text)
    assert NOT_A_PAN not in (tampered_pack.directory / "exceptions.csv").read_text()
    assert check_pack(tampered_pack.directory) == []


def test_without_postgresql_the_source_side_is_not_checked(built_duckdb, tmp_path):
    reader = DuckDBReader(built_duckdb.path, 600)
    try:
        pack = build_pack(reader, relation=relation, start=START.date(), end=START.date(),
                          out_dir=tmp_path, pg_dsn=None, formats=("html",),
                          generated_by="test suite", access_log=tmp_path / "none.duckdb")
    finally:
        reader.close()
    assert pack.report_pdf is None and not (pack.directory / "report.pdf").exists()
    assert pack.controls["10.2.1"] == "not checked"
    summary = _summary_text(pack.report_html.read_text())
    assert "PostgreSQL was not read" in summary and "not checked" in summary
    assert check_pack(pack.directory) == []
