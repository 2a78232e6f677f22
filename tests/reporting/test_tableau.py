"""The Tableau extracts and their publication, against real components: the Hyper API writes
the files and reopens them, the marts come from the built warehouses, the gate's verdicts are
recorded into a copy of the warehouse, and tableauserverclient publishes over HTTP to our
stand-in of Tableau's REST API (sandbox/tableau_server.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml
from tableauhyperapi import Connection, HyperProcess, SqlType, TableName, Telemetry

from ingestion.warehouse.duckdb import DuckDBWarehouse
from quality import verdicts
from reporting.tableau import exposures
from reporting.tableau.exposures import ExposureDeclarationError
from reporting.tableau.extract import SCHEMA, write_extracts
from reporting.tableau.publish import TableauPublishError, Target, publish
from sandbox.tableau_server import TableauServerThread
from tests.warehouses import Built
from tokenwatch import config

TOKEN_NAME, TOKEN_SECRET, SITE = "tokenwatch-ci", "pat-secret-" + "x" * 16, "analytics"
#: the column types Tableau sees, as mapped from the warehouse's (DuckDB's and PostgreSQL's)
EXPECTED_TYPES = {
    ("wallet_provisioning_daily", "request_date"): SqlType.date(),
    ("wallet_provisioning_daily", "requests"): SqlType.big_int(),
    ("wallet_provisioning_daily", "provision_success_rate"): SqlType.double(),
    ("wallet_provisioning_daily", "wallet_id"): SqlType.text(),
    ("fct_provisioning_attempts", "requested_at"): SqlType.timestamp(),
    ("fct_provisioning_attempts", "is_provision_success"): SqlType.bool(),
    ("wallet_token_usage_hourly", "hour_of_day"): SqlType.big_int(),  # INTEGER in the mart
    ("dim_token", "is_terminal"): SqlType.bool(),
}
ALLOWED = {str(t) for t in (SqlType.big_int(), SqlType.double(), SqlType.date(),
                            SqlType.timestamp(), SqlType.timestamp_tz(), SqlType.text(),
                            SqlType.bool())}


def relation_of(built: Built):
    nodes = json.loads((built.build.target_path / "manifest.json").read_text())["nodes"]
    return lambda model: (f"{nodes[f'model.tokenwatch.{model}']['schema']}."
                          f"{nodes[f'model.tokenwatch.{model}']['alias']}")


@pytest.fixture(scope="module")
def hyper() -> Iterator[HyperProcess]:
    with HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU,
                      parameters={"log_config": ""}) as process:
        yield process


@contextmanager
def opened(hyper: HyperProcess, path: Path) -> Iterator[Connection]:
    with Connection(hyper.endpoint, str(path)) as con:
        yield con


def hyper_rows(con: Connection, sql: str) -> list[tuple]:
    return [tuple(v.to_date() if hasattr(v, "to_date") else v for v in row)
            for row in con.execute_list_query(sql)]


def table(model: str) -> str:
    return str(TableName(SCHEMA, model))


@pytest.fixture(scope="module")
def gated(built_duckdb: Built, tmp_path_factory) -> dict:
    """A copy of the built DuckDB warehouse where the gate passed every day of the KPI marts
    but one (withheld), and the extracts written from it."""
    work = tmp_path_factory.mktemp("tableau")
    path = work / "warehouse.duckdb"
    shutil.copy(built_duckdb.path, path)  # never write into the shared fixture's file
    wh = DuckDBWarehouse(path)
    try:
        days = sorted(d for (d,) in wh.query(
            "select distinct request_date from analytics_wallet.wallet_provisioning_daily"))
        assert len(days) >= 3, days
        withheld = days[1]
        verdicts.record(wh, {d: [("suite", True), ("pan_scan", True)] for d in days}, "run-1")
        verdicts.record(wh, {withheld: [("suite", True), ("pan_scan", False)]}, "run-2")
        written = write_extracts(wh, relation_of(built_duckdb), work / "out")
    finally:
        wh.close()
    published = [d for d in days if d != withheld]
    return {"path": path, "written": {w.extract.file: w for w in written}, "withheld": withheld,
            "published": published, "out": work / "out"}


def mart(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def day_list(days: list[date]) -> str:
    return ", ".join(f"date '{d}'" for d in days)


# -- what the exposures declare ---------------------------------------------------------


def test_every_tableau_exposure_names_its_extract():
    document = yaml.safe_load((config.project_root() / "dbt_project" /
                               exposures.EXPOSURES_FILE).read_text())
    tableau = {e["name"] for e in document["exposures"] if "(Tableau)" in e.get("label", "")}
    found = exposures.extracts()
    assert {e.exposure for e in found} == tableau
    assert {e.file for e in found} == {"wallet_analytics.hyper", "token_usage.hyper",
                                       "provision_success.hyper", "compliance.hyper"}


def _project_with(tmp_path: Path, old: str, new: str) -> Path:
    shutil.copytree(config.project_root() / "dbt_project" / "models" / "marts",
                    tmp_path / "models" / "marts")
    path = tmp_path / exposures.EXPOSURES_FILE
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return tmp_path


@pytest.mark.parametrize(("old", "new", "message"), [
    ("- {model: dim_wallet}", "- {model: dim_token}",
     "'dim_token' is not in the exposure's depends_on"),
    ("            - {model: wallet_provisioning_daily, day_column: request_date}\n",
     "            - {model: wallet_provisioning_daily, day_column: request_date}\n"
     "            - {model: wallet_comparison}\n",
     "'wallet_comparison' has no day_column: only a dimension (dim_*) goes in whole"),
    ("{model: wallet_service_daily, day_column: activity_date}",
     "{model: wallet_service_daily, day_column: api_requests}",
     "its KPI declaration says 'activity_date'"),
    ("extract: token_usage.hyper", "extract: wallet_analytics.hyper", "named twice"),
])
def test_a_wrong_declaration_is_named(tmp_path, old, new, message):
    project = _project_with(tmp_path, old, new)
    with pytest.raises(ExposureDeclarationError) as err:
        exposures.extracts(project)
    assert message in str(err.value), str(err.value)


# -- the .hyper round trip --------------------------------------------------------------


def test_each_table_holds_the_marts_rows_for_the_published_days(gated, built_duckdb, hyper):
    relation = relation_of(built_duckdb)
    for extract in exposures.extracts():
        written = gated["written"][extract.file]
        with opened(hyper, written.path) as con:
            assert sorted(str(n.name.unescaped) for n in con.catalog.get_table_names(SCHEMA)) \
                == sorted(t.model for t in extract.tables)
            for t, done in zip(extract.tables, written.tables, strict=True):
                where = (f" where {t.day_column} in ({day_list(gated['published'])})"
                         if t.day_column else "")
                expected = mart(gated["path"], f"select count(*) from {relation(t.model)}"
                                               f"{where}")[0][0]
                got = con.execute_scalar_query(f"select count(*) from {table(t.model)}")
                assert got == expected == done.rows, (extract.file, t.model)
                if t.day_column is None:  # a dimension: whole
                    assert got == mart(gated["path"],
                                       f"select count(*) from {relation(t.model)}")[0][0]


def test_aggregates_equal_the_marts_per_published_day(gated, hyper):
    written = gated["written"]
    published = day_list(gated["published"])
    with opened(hyper, written["provision_success.hyper"].path) as con:
        got = hyper_rows(con, "select request_date, sum(requests), sum(provision_successes), "
                              f"sum(green_decisions) from {table('wallet_provisioning_daily')} "
                              "group by request_date order by request_date")
        attempts = con.execute_scalar_query(
            f"select count(distinct token_ref) from {table('fct_provisioning_attempts')} "
            "where is_provision_success")
    assert got == mart(gated["path"], f"""
        select request_date, sum(requests), sum(provision_successes), sum(green_decisions)
        from analytics_wallet.wallet_provisioning_daily where request_date in ({published})
        group by request_date order by request_date""")
    assert [d for d, *_ in got] == gated["published"]
    assert attempts == mart(gated["path"], f"""
        select count(distinct token_ref) from analytics_wallet.fct_provisioning_attempts
        where is_provision_success and request_date in ({published})""")[0][0] > 0
    with opened(hyper, written["token_usage.hyper"].path) as con:
        usage = hyper_rows(con, f"select sum(authorisations), sum(authorised_amount_usd) "
                                f"from {table('wallet_token_usage_hourly')}")[0]
    expected = mart(gated["path"], f"""
        select sum(authorisations), sum(authorised_amount_usd)
        from analytics_wallet.wallet_token_usage_hourly where usage_date in ({published})""")[0]
    assert usage[0] == expected[0] > 0
    assert usage[1] == pytest.approx(expected[1])


def test_columns_are_typed_as_mapped_from_the_warehouse(gated, hyper):
    seen = set()
    for written in gated["written"].values():
        with opened(hyper, written.path) as con:
            for t in written.tables:
                definition = con.catalog.get_table_definition(TableName(SCHEMA, t.model))
                names = [str(c.name.unescaped) for c in definition.columns]
                assert names == [c for (c,) in mart(gated["path"], f"""
                    select column_name from information_schema.columns
                    where table_name = '{t.model}' and table_schema like 'analytics_%'
                    order by ordinal_position""")]
                for column in definition.columns:
                    assert str(column.type) in ALLOWED, (t.model, column.name, column.type)
                    key = (t.model, str(column.name.unescaped))
                    if key in EXPECTED_TYPES:
                        assert column.type == EXPECTED_TYPES[key], key
                        seen.add(key)
    assert seen == set(EXPECTED_TYPES)


# -- only what the gate passed ----------------------------------------------------------


def test_a_withheld_day_is_absent_and_the_published_days_are_present(gated, hyper):
    withheld = gated["withheld"]
    assert mart(gated["path"], "select count(*) from analytics_wallet.wallet_provisioning_daily "
                               f"where request_date = date '{withheld}'")[0][0] > 0
    for extract in exposures.extracts():
        written = gated["written"][extract.file]
        assert withheld in written.days_left_out and withheld not in written.days_held
        with opened(hyper, written.path) as con:
            for t in extract.tables:
                if t.day_column is None:
                    continue
                held = {d for (d,) in hyper_rows(
                    con, f"select distinct {t.day_column} from {table(t.model)}")}
                assert withheld not in held, (extract.file, t.model)
                assert held <= set(gated["published"]), (extract.file, t.model)
        if extract.file != "compliance.hyper":  # the KPI marts have rows every day
            assert list(written.days_held) == gated["published"]


def test_a_day_never_evaluated_is_not_published(built_duckdb, tmp_path, hyper):
    """The shared warehouse has no verdict at all: the daily tables are empty, the dimensions
    whole. (Read through a read-only connection: the shared file stays as it is.)"""
    from reporting.tableau.extract import _DuckDBReader

    with duckdb.connect(str(built_duckdb.path), read_only=True) as con:
        written = write_extracts(_DuckDBReader(con), relation_of(built_duckdb), tmp_path,
                                 [e for e in exposures.extracts()
                                  if e.file == "wallet_analytics.hyper"])
    assert not written[0].days_held and written[0].days_left_out
    rows = {t.model: t.rows for t in written[0].tables}
    assert rows["wallet_provisioning_daily"] == rows["wallet_service_daily"] == 0
    assert rows["dim_wallet"] == 4
    with opened(hyper, written[0].path) as con:
        assert con.execute_scalar_query(
            f"select count(*) from {table('wallet_provisioning_daily')}") == 0


def test_postgres_extract_equals_its_marts(built_postgres, tmp_path, hyper):
    """The same extract from PostgreSQL (rows through the warehouse's query, numerics as
    Decimal): verdicts recorded inside a transaction that is rolled back, so the shared
    database keeps none."""
    from ingestion.warehouse.postgres import PostgresWarehouse

    class RolledBack(Exception):
        pass

    wh = PostgresWarehouse(built_postgres.dsn)
    selected = [e for e in exposures.extracts() if e.file == "provision_success.hyper"]
    try:
        with pytest.raises(RolledBack), wh.transaction():
            days = sorted(d for (d,) in wh.query(
                "select distinct request_date from analytics_wallet.wallet_provisioning_daily"))
            verdicts.record(wh, {d: [("suite", d != days[0])] for d in days}, "run-pg")
            published = sorted(verdicts.published_days(wh))
            written = write_extracts(wh, relation_of(built_postgres), tmp_path, selected)[0]
            expected = wh.query(f"""
                select count(*), sum(requests), sum(provision_successes)
                from analytics_wallet.wallet_provisioning_daily
                where request_date in ({day_list(published)})""")[0]
            raise RolledBack
    finally:
        wh.close()
    assert days[0] not in published and days[0] in written.days_left_out
    with opened(hyper, written.path) as con:
        got = con.execute_list_query(f"select count(*), sum(requests), sum(provision_successes) "
                                     f"from {table('wallet_provisioning_daily')}")[0]
        definition = con.catalog.get_table_definition(
            TableName(SCHEMA, "fct_provisioning_attempts"))
    assert tuple(got) == tuple(int(v) for v in expected)
    types = {str(c.name.unescaped): c.type for c in definition.columns}
    assert types["requested_at"] in (SqlType.timestamp(), SqlType.timestamp_tz())
    assert types["is_provision_success"] == SqlType.bool()
    assert types["seconds_to_activate"] == SqlType.double()


# -- publishing to the stand-in -----------------------------------------------------------


@pytest.fixture()
def tableau(tmp_path) -> Iterator[TableauServerThread]:
    with TableauServerThread(tmp_path / "tableau", TOKEN_NAME, TOKEN_SECRET, SITE) as server:
        for i in range(130):  # more than TSC's page of 100: finding the project pages
            server.state.add_project(f"team-{i:03d}")
        yield server


def target(server: TableauServerThread, secret: str = TOKEN_SECRET) -> Target:
    return Target(server.url, SITE, TOKEN_NAME, secret, "tokenwatch")


def files_of(gated) -> list[Path]:
    return [w.path for w in gated["written"].values()]


def test_publish_creates_the_project_and_the_datasources(gated, tableau, hyper):
    published = publish(files_of(gated), target(tableau))
    state = tableau.state
    calls = [c["call"] for c in state.calls]
    assert set(calls[:2]) == {"server_info", "signin"} and calls[-1] == "signout"
    assert {c["page"] for c in state.calls if c["call"] == "list_projects"} == {1, 2}
    assert calls.count("create_project") == 1
    assert sorted(p.name for p in published) == sorted(
        e.name for e in exposures.extracts())
    for written in gated["written"].values():
        source = state.datasource("tokenwatch", written.extract.name)
        assert source is not None and source.type == "hyper"
        assert source.path.read_bytes() == written.path.read_bytes()
    stored = state.datasource("tokenwatch", "provision_success").path
    with opened(hyper, stored) as con:  # the uploaded file reopens with the Hyper API
        assert con.execute_scalar_query(
            f"select count(*) from {table('fct_provisioning_attempts')}") == \
            gated["written"]["provision_success.hyper"].tables[0].rows


def test_publishing_again_overwrites(gated, tableau):
    publish(files_of(gated), target(tableau))
    publish(files_of(gated), target(tableau))
    state = tableau.state
    ours = [d for d in state.datasources.values()
            if d.project_id == state.project_named("tokenwatch")["id"]]
    assert len(ours) == 4 and all(d.publishes == 2 for d in ours)
    assert [c["call"] for c in state.calls].count("create_project") == 1
    assert all(c["overwrite"] for c in state.calls if c["call"] == "publish")


def test_a_large_file_goes_in_chunks(gated, tableau, monkeypatch):
    """TSC's multipart upload (initiate, append, publish with the session), forced for small
    files by TSC's own size limit."""
    monkeypatch.setenv("TSC_FILESIZE_LIMIT_MB", "0")
    monkeypatch.setenv("TSC_CHUNK_SIZE_MB", "1")
    publish(files_of(gated), target(tableau))
    calls = tableau.state.calls
    assert sum(c["call"] == "initiate_upload" for c in calls) == 4
    assert all(c["chunked"] for c in calls if c["call"] == "publish")
    for written in gated["written"].values():
        source = tableau.state.datasource("tokenwatch", written.extract.name)
        assert source.path.read_bytes() == written.path.read_bytes()


def test_a_wrong_token_is_refused_clearly(gated, tableau):
    with pytest.raises(TableauPublishError) as err:
        publish(files_of(gated), target(tableau, secret="not-the-secret"))
    message = str(err.value)
    assert "refused the personal access token 'tokenwatch-ci'" in message
    assert "401001" in message and "TOKENWATCH_TABLEAU_TOKEN_SECRET" in message
    assert not tableau.state.datasources


def test_the_stand_in_checks_what_tableau_checks(tableau, tmp_path):
    fake = tmp_path / "fake.hyper"
    fake.write_bytes(b"PK\x03\x04 not an extract")
    with pytest.raises(TableauPublishError, match="400011"):
        publish([fake], target(tableau))
    r = httpx.get(f"{tableau.url}/api/3.23/sites/{tableau.state.site_id}/projects")
    assert r.status_code == 401 and 'code="401002"' in r.text
    r = httpx.get(f"{tableau.url}/api/3.23/sites/{tableau.state.site_id}/projects",
                  headers={"X-Tableau-Auth": "forged"})
    assert r.status_code == 401
    assert httpx.get(f"{tableau.url}/api/9.0/serverInfo").status_code == 404


# -- the command line ---------------------------------------------------------------------


def test_the_cli_extracts_and_publishes(gated, tableau, tmp_path, hyper):
    env = os.environ | {"TOKENWATCH_HOME": str(tmp_path / "home"),
                        "TOKENWATCH_WAREHOUSE": "duckdb",
                        "TOKENWATCH_DUCKDB_PATH": str(gated["path"]),
                        "TOKENWATCH_DUCKDB_REPLICA_PATH": str(tmp_path / "replica.duckdb"),
                        "TOKENWATCH_TABLEAU_SERVER_URL": tableau.url,
                        "TOKENWATCH_TABLEAU_SITE": SITE,
                        "TOKENWATCH_TABLEAU_TOKEN_NAME": TOKEN_NAME,
                        "TOKENWATCH_TABLEAU_TOKEN_SECRET": TOKEN_SECRET,
                        "TOKENWATCH_TABLEAU_PROJECT": "from-the-cli", "COLUMNS": "200"}
    cli = [sys.executable, "-m", "tokenwatch.cli", "tableau"]
    run = subprocess.run([*cli, "extract"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    out_dir = tmp_path / "home" / "tableau"
    assert sorted(p.name for p in out_dir.glob("*.hyper")) == sorted(gated["written"])
    assert f"left out (not passed by the gate) {gated['withheld']}" in run.stdout
    assert "fct_provisioning_attempts" in run.stdout and "whole (a dimension)" in run.stdout
    run = subprocess.run([*cli, "publish"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "in project 'from-the-cli'" in run.stdout
    assert TOKEN_SECRET not in run.stdout + run.stderr
    assert tableau.state.datasource("from-the-cli", "wallet_analytics") is not None


# -- the Dagster asset ------------------------------------------------------------------------


def test_the_dagster_asset_writes_the_extracts_with_their_metadata(gated, tmp_path,
                                                                 monkeypatch):
    import dagster as dg

    from orchestration.defs.tableau.assets import tableau_extracts
    from orchestration.resources import WarehouseResource

    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(gated["path"]))
    monkeypatch.setenv("TOKENWATCH_DUCKDB_REPLICA_PATH", str(tmp_path / "replica.duckdb"))
    result = dg.materialize([tableau_extracts], resources={"warehouse": WarehouseResource()},
                            partition_key=gated["published"][0].isoformat())
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    files = {Path(f["file"]).name: f for f in metadata["files"].value}
    assert set(files) == set(gated["written"])
    for name, written in gated["written"].items():
        assert files[name]["rows"] == written.rows
        assert (tmp_path / "tableau" / name).exists()
    assert metadata["rows"].value == sum(w.rows for w in gated["written"].values())
    assert metadata["days_held"].value == [d.isoformat() for d in gated["published"]]
    assert gated["withheld"].isoformat() in metadata["days_left_out"].value


def test_the_publish_asset_publishes_what_the_extracts_asset_wrote(gated, tableau, tmp_path,
                                                                  monkeypatch):
    """``tableau/published`` (defined when TOKENWATCH_TABLEAU_SERVER_URL is set at load)."""
    import dagster as dg

    from orchestration.defs.tableau.assets import _published_asset

    shutil.copytree(gated["out"], tmp_path / "home" / "tableau")
    for name, value in {"TOKENWATCH_HOME": str(tmp_path / "home"),
                        "TOKENWATCH_TABLEAU_SERVER_URL": tableau.url,
                        "TOKENWATCH_TABLEAU_SITE": SITE,
                        "TOKENWATCH_TABLEAU_TOKEN_NAME": TOKEN_NAME,
                        "TOKENWATCH_TABLEAU_TOKEN_SECRET": TOKEN_SECRET}.items():
        monkeypatch.setenv(name, value)
    result = dg.materialize([_published_asset()],
                            partition_key=gated["published"][0].isoformat())
    assert result.success
    (event,) = result.get_asset_materialization_events()
    names = {d["name"] for d in event.materialization.metadata["datasources"].value}
    assert names == {w.extract.name for w in gated["written"].values()}
    assert all(tableau.state.datasource("tokenwatch", n) for n in names)
