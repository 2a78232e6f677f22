"""``tokenwatch doctor`` against the local stack, checked as production: every check passes on a
setup that works, each fails once the way an operator gets it wrong, and nothing changes.

"Production" here is the real code path of ``TOKENWATCH_ENV=prod`` pointed at local parts:
boto3's default chain with ``AWS_ENDPOINT_URL`` at moto's server, the state database as the
admin's DSN (the roles derived from it), the Datadog-compatible intake, the Tableau stand-in,
a DuckDB warehouse (and Snowflake on fakesnow), Dagster's production ``dagster.yaml``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from sandbox.tableau_server import TableauServerThread
from state_service import roles
from state_service.checkpoints import ensure_bucket
from state_service.migrate import migrate
from tokenwatch.cli import doctor_checks
from tokenwatch.postgres import drop_database, ensure_database
from tokenwatch.stack_file import LOCAL_DD_API_KEY, MOTO_ACCESS_KEY

ROOT = Path(__file__).resolve().parents[2]
PROD_DAGSTER_YAML = ROOT / "deploy" / "dagster" / "dagster.yaml"
TOKEN_NAME, TOKEN_SECRET = "doctor", "doctor-secret-" + uuid.uuid4().hex


def statuses(findings) -> dict[str, str]:
    return {f.check: f.status for f in findings}


def finding(findings, check: str):
    (found,) = [f for f in findings if f.check == check]
    return found


@pytest.fixture(scope="module")
def tableau(tmp_path_factory):
    with TableauServerThread(tmp_path_factory.mktemp("doctor-tableau"), TOKEN_NAME,
                             TOKEN_SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def prod_setup(local_stack, pg_dsn, tableau, tmp_path_factory) -> dict[str, str]:
    """The variables of a production setup that works, on the local parts."""
    from ingestion.warehouse import replica_beside
    from ingestion.warehouse.duckdb import DuckDBWarehouse, publish_replica

    home = tmp_path_factory.mktemp("doctor-prod")
    s3 = local_stack.s3_client()
    audit_bucket = f"doctor-audit-{uuid.uuid4().hex[:8]}"
    ensure_bucket(s3, audit_bucket)  # provisioned with Object Lock, as in production
    warehouse = home / "warehouse.duckdb"
    wh = DuckDBWarehouse(warehouse)
    wh.ensure_schema()
    wh.execute("create schema if not exists analytics_published")
    wh.close()
    assert publish_replica(warehouse, replica_beside(warehouse))
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    shutil.copy(PROD_DAGSTER_YAML, dagster_home / "dagster.yaml")
    return {
        "TOKENWATCH_ENV": "prod",
        "TOKENWATCH_HOME": str(home),
        "TOKENWATCH_PG_DSN": pg_dsn,
        "TOKENWATCH_CHAIN_KEYS": "k2026:" + uuid.uuid4().hex,
        "TOKENWATCH_CHAIN_KEY_ID": "k2026",
        "TOKENWATCH_API_KEYS": "writer-" + uuid.uuid4().hex,
        "TOKENWATCH_REPORT_KEYS": "analyst:" + uuid.uuid4().hex,
        "AWS_ENDPOINT_URL": local_stack.aws_endpoint,
        "AWS_ACCESS_KEY_ID": MOTO_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_ACCESS_KEY,
        "AWS_DEFAULT_REGION": local_stack.region,
        "TOKENWATCH_BUCKET": local_stack.bucket,
        "TOKENWATCH_STREAM": local_stack.stream,
        "TOKENWATCH_AUDIT_BUCKET": audit_bucket,
        "TOKENWATCH_WAREHOUSE": "duckdb",
        "TOKENWATCH_DUCKDB_PATH": str(warehouse),
        "DD_API_KEY": LOCAL_DD_API_KEY,
        "DD_APP_KEY": "doctor-app-key",
        "TOKENWATCH_DD_API_HOST": local_stack.intake_url,
        "TOKENWATCH_TABLEAU_SERVER_URL": tableau.url,
        "TOKENWATCH_TABLEAU_TOKEN_NAME": TOKEN_NAME,
        "TOKENWATCH_TABLEAU_TOKEN_SECRET": TOKEN_SECRET,
        "DAGSTER_HOME": str(dagster_home),
        "TOKENWATCH_PARTITIONS_START": os.environ["TOKENWATCH_PARTITIONS_START"],  # conftest
    }


@pytest.fixture()
def prod(prod_setup, monkeypatch) -> dict[str, str]:
    for key in [k for k in os.environ if k.startswith(("TOKENWATCH_", "DD_", "AWS_"))]:
        if key != "TOKENWATCH_PARTITIONS_START":
            monkeypatch.delenv(key)
    for key, value in prod_setup.items():
        monkeypatch.setenv(key, value)
    return prod_setup


def test_a_working_production_setup_passes_every_check(prod):
    findings = doctor_checks.run("prod")
    assert {f.status for f in findings} == {"pass"}, [f for f in findings if f.status != "pass"]
    assert set(statuses(findings)) == {
        "environment", "settings", "partitions", "postgres: service role", "postgres: reader role",
        "postgres: migrations", "chain keys", "state service keys", "reports API keys",
        "warehouse: duckdb", "warehouse: read replica", "s3: lake", "kinesis: stream",
        "s3: checkpoint bucket", "datadog", "tableau", "dagster instance"}
    assert "COMPLIANCE" in finding(findings, "s3: checkpoint bucket").detail


def test_the_doctor_changes_nothing(prod, local_stack, pg_dsn, monkeypatch):
    s3 = local_stack.s3_client()
    home = Path(prod["TOKENWATCH_HOME"])

    def state():
        with psycopg.connect(pg_dsn) as conn:
            migrations = conn.execute("select count(*) from schema_migrations").fetchone()
            log = conn.execute(f"select count(*) from {roles.LOG_TABLE}").fetchone()
        files = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in home.rglob("*") if p.is_file())
        return (migrations, log, sorted(b["Name"] for b in s3.list_buckets()["Buckets"]), files)

    before = state()
    doctor_checks.run("prod")
    # and checked with the checkpoint bucket missing: it is reported, never created
    monkeypatch.setenv("TOKENWATCH_AUDIT_BUCKET", "doctor-never-made-" + uuid.uuid4().hex[:6])
    assert finding(doctor_checks.run("prod"), "s3: checkpoint bucket").status == "fail"
    assert state() == before


# -- each check, made to fail once --------------------------------------------------------

BROKEN = {
    "a setting that does not parse": (
        {"TOKENWATCH_MAX_BODY_BYTES": "half a megabyte"}, "settings",
        "TOKENWATCH_MAX_BODY_BYTES must be an integer"),
    "the service connecting as the superuser": (
        {"TOKENWATCH_SERVICE_PG_DSN": "{pg_dsn}"}, "postgres: service role", "a superuser"),
    "the service's server unreachable": (
        {"TOKENWATCH_SERVICE_PG_DSN": "host=127.0.0.1 port=1 dbname=x user=tokenwatch_service"},
        "postgres: service role", "does not answer"),
    "the reader connecting as the service": (
        {"TOKENWATCH_READER_PG_DSN": "{service_dsn}"}, "postgres: reader role",
        "not tokenwatch_reader"),
    "no chain key in prod": (
        {"TOKENWATCH_CHAIN_KEYS": None, "TOKENWATCH_CHAIN_KEY_ID": None}, "chain keys",
        "TOKENWATCH_CHAIN_KEYS"),
    "no write keys for the state service": (
        {"TOKENWATCH_API_KEYS": None}, "state service keys", "refuses every write"),
    "malformed reports API keys": (
        {"TOKENWATCH_REPORT_KEYS": "analyst=short"}, "reports API keys", "name:key pairs"),
    "a DuckDB file nobody can create": (
        {"TOKENWATCH_DUCKDB_PATH": "{readme}/warehouse.duckdb"}, "warehouse: duckdb",
        "is not a directory"),
    "a DuckDB path that is not a database": (
        {"TOKENWATCH_DUCKDB_PATH": "{readme}"}, "warehouse: duckdb", "cannot be opened"),
    "the PostgreSQL warehouse unreachable": (
        {"TOKENWATCH_WAREHOUSE": "postgres",
         "TOKENWATCH_WAREHOUSE_DSN": "host=127.0.0.1 port=1 dbname=wh"},
        "warehouse: postgres", "does not answer"),
    "Snowflake without an account": (
        {"TOKENWATCH_WAREHOUSE": "snowflake"}, "warehouse: snowflake",
        "TOKENWATCH_SNOWFLAKE_ACCOUNT"),
    "a lake bucket that does not exist": (
        {"TOKENWATCH_BUCKET": "no-such-lake"}, "s3: lake", "NoSuchBucket"),
    "a stream that does not exist": (
        {"TOKENWATCH_STREAM": "no-such-stream"}, "kinesis: stream", "ResourceNotFound"),
    "a checkpoint bucket without Object Lock": (
        {"TOKENWATCH_AUDIT_BUCKET": "{plain_bucket}"}, "s3: checkpoint bucket",
        "ObjectLockConfigurationNotFound"),
    "a wrong Datadog API key": (
        {"DD_API_KEY": "not-the-key"}, "datadog", "refused the API key (403)"),
    "Datadog unreachable": (
        {"TOKENWATCH_DD_API_HOST": "http://127.0.0.1:1"}, "datadog", "does not answer"),
    "a revoked Tableau token": (
        {"TOKENWATCH_TABLEAU_TOKEN_SECRET": "revoked"}, "tableau", "sign-in failed"),
    "Tableau half configured": (
        {"TOKENWATCH_TABLEAU_TOKEN_NAME": None}, "tableau", "TOKENWATCH_TABLEAU_TOKEN_NAME"),
    "the local SQLite instance in prod": (
        {"DAGSTER_HOME": "{local_dagster_home}"}, "dagster instance", "sqlite"),
    "a dagster.yaml Dagster rejects": (
        {"DAGSTER_HOME": "{bad_dagster_home}"}, "dagster instance", "dagster.yaml"),
}


@pytest.fixture(scope="module")
def placeholders(prod_setup, local_stack, pg_dsn, tmp_path_factory) -> dict[str, str]:
    s3 = local_stack.s3_client()
    plain = f"doctor-plain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=plain)
    local_home = tmp_path_factory.mktemp("doctor-local-dagster")
    shutil.copy(ROOT / "orchestration" / "dagster.yaml", local_home / "dagster.yaml")
    bad_home = tmp_path_factory.mktemp("doctor-bad-dagster")
    (bad_home / "dagster.yaml").write_text("run_launcher:\n  module: 7\n  no_such_key: {}\n")
    return {"pg_dsn": pg_dsn, "service_dsn": roles.role_dsn(pg_dsn, roles.SERVICE),
            "readme": str(ROOT / "README.md"), "plain_bucket": plain,
            "local_dagster_home": str(local_home), "bad_dagster_home": str(bad_home)}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_check_fails_with_its_fix(case, prod, placeholders, monkeypatch):
    changes, check, words = BROKEN[case]
    for key, value in changes.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value.format(**placeholders))
    findings = doctor_checks.run("prod")
    broken = finding(findings, check)
    assert broken.status == "fail", broken
    assert words in broken.detail, broken
    assert broken.fix, broken
    # the other checks still ran, and only what was broken failed
    failed = {f.check for f in findings if f.status == "fail"}
    assert failed == {check}, [f for f in findings if f.status == "fail"]


@pytest.fixture()
def lax_database(pg_server):
    """A migrated database where an operator has granted the roles more than they need."""
    name = f"tokenwatch_doctor_{uuid.uuid4().hex[:8]}"
    dsn = ensure_database(pg_server, name)
    migrate(dsn)
    yield dsn
    drop_database(pg_server, name)


def test_partitions_that_move_every_day_are_a_warning(prod, monkeypatch):
    monkeypatch.delenv("TOKENWATCH_PARTITIONS_START")
    findings = doctor_checks.run("prod")
    moving = finding(findings, "partitions")
    assert moving.status == "warn" and "move every day" in moving.detail, moving
    assert {f.status for f in findings} == {"pass", "warn"}  # a warning does not fail


def test_roles_granted_too_much_fail(prod, lax_database, monkeypatch):
    monkeypatch.setenv("TOKENWATCH_PG_DSN", lax_database)
    assert statuses(doctor_checks.run("prod"))["postgres: service role"] == "pass"
    with psycopg.connect(lax_database, autocommit=True) as conn:
        conn.execute(f"grant update, delete on {roles.LOG_TABLE} to {roles.SERVICE}")
        conn.execute(f"grant insert on {roles.TOKENS_TABLE} to {roles.READER}")
    findings = doctor_checks.run("prod")
    service = finding(findings, "postgres: service role")
    assert service.status == "fail" and "append-only" in service.detail
    assert "UPDATE, DELETE" in service.detail and "tokenwatch db migrate" in service.fix
    reader = finding(findings, "postgres: reader role")
    assert reader.status == "fail" and "INSERT on tokens" in reader.detail


def test_a_database_behind_on_migrations_fails(prod, lax_database, monkeypatch):
    monkeypatch.setenv("TOKENWATCH_PG_DSN", lax_database)
    with psycopg.connect(lax_database, autocommit=True) as conn:
        (latest,), = conn.execute("select max(version) from schema_migrations").fetchall()
        conn.execute("delete from schema_migrations where version = %s", [latest])
    behind = finding(doctor_checks.run("prod"), "postgres: migrations")
    assert behind.status == "fail" and f"{latest:04d}_" in behind.detail
    assert "tokenwatch db migrate" in behind.fix


def test_a_database_never_migrated_fails(prod, pg_server, monkeypatch):
    name = f"tokenwatch_doctor_{uuid.uuid4().hex[:8]}"
    dsn = ensure_database(pg_server, name)
    try:
        monkeypatch.setenv("TOKENWATCH_PG_DSN", dsn)
        findings = doctor_checks.run("prod")
        for check in ("postgres: service role", "postgres: reader role"):
            assert finding(findings, check).status == "fail", findings
        assert "tokenwatch db migrate" in finding(findings, "postgres: service role").fix
    finally:
        drop_database(pg_server, name)


def test_snowflake_passes_on_fakesnow_once_its_schemas_exist(prod, fakesnow_server,
                                                              monkeypatch):
    import snowflake.connector

    database = f"doctor_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "snowflake")
    monkeypatch.setenv("TOKENWATCH_SNOWFLAKE_DATABASE", database)
    for key, value in fakesnow_server.items():
        monkeypatch.setenv(f"TOKENWATCH_SNOWFLAKE_{key.upper()}", str(value))
    for key in ("ACCOUNT", "USER", "PASSWORD"):
        monkeypatch.setenv(f"TOKENWATCH_SNOWFLAKE_{key}", os.environ.get(
            f"TOKENWATCH_SNOWFLAKE_{key}", "doctor"))
    missing = finding(doctor_checks.run("prod"), "warehouse: snowflake")
    assert missing.status in ("fail", "warn") and database.lower() in missing.detail.lower()
    conn = snowflake.connector.connect(**fakesnow_server)
    try:
        # (fakesnow makes the database the connector names; Snowflake would not)
        conn.cursor().execute(f"create database if not exists {database}")
        conn.cursor().execute(f"create schema {database}.raw")
        conn.cursor().execute(f"create schema {database}.analytics_published")
    finally:
        conn.close()
    found = finding(doctor_checks.run("prod"), "warehouse: snowflake")
    assert found.status == "pass", found


def test_locally_without_a_stack_the_fix_is_stack_up(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENWATCH_ENV", "local")
    findings = doctor_checks.run("local")
    for check in ("s3: lake", "kinesis: stream", "s3: checkpoint bucket", "datadog"):
        broken = finding(findings, check)
        assert broken.status == "fail" and "tokenwatch stack up" in broken.fix, broken


def test_the_local_stack_passes_as_local(local_stack, monkeypatch):
    monkeypatch.setenv("TOKENWATCH_ENV", "local")
    for key in ("TOKENWATCH_DD_API_HOST", "DD_API_KEY", "TOKENWATCH_WAREHOUSE"):
        monkeypatch.delenv(key, raising=False)
    found = statuses(doctor_checks.run("local"))
    for check in ("postgres: service role", "postgres: reader role", "postgres: migrations",
                  "chain keys", "s3: lake", "kinesis: stream", "s3: checkpoint bucket",
                  "datadog"):
        assert found[check] == "pass", (check, found)


HELM_CHART_INSTANCE = """\
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_db: {hostname: {env: DAGSTER_PG_HOST}, username: {env: DAGSTER_PG_USER},
                  password: {env: DAGSTER_PG_PASSWORD}, db_name: {env: DAGSTER_PG_DB},
                  port: 5432}
event_log_storage:
  module: dagster_postgres.event_log
  class: PostgresEventLogStorage
  config:
    postgres_db: {hostname: {env: DAGSTER_PG_HOST}, username: {env: DAGSTER_PG_USER},
                  password: {env: DAGSTER_PG_PASSWORD}, db_name: {env: DAGSTER_PG_DB},
                  port: 5432}
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_db: {hostname: {env: DAGSTER_PG_HOST}, username: {env: DAGSTER_PG_USER},
                  password: {env: DAGSTER_PG_PASSWORD}, db_name: {env: DAGSTER_PG_DB},
                  port: 5432}
"""


def test_the_helm_charts_instance_and_dagster_plus_pass(prod, tmp_path, monkeypatch):
    # the chart writes three storages by class, not one `storage: postgres:` block
    (tmp_path / "dagster.yaml").write_text(HELM_CHART_INSTANCE)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    helm = finding(doctor_checks.run("prod"), "dagster instance")
    assert helm.status == "pass" and "postgres" in helm.detail, helm
    # one of the three left on SQLite is not a deployment's instance
    (tmp_path / "dagster.yaml").write_text(HELM_CHART_INSTANCE.split("schedule_storage")[0])
    mixed = finding(doctor_checks.run("prod"), "dagster instance")
    assert mixed.status == "fail" and "mixed" in mixed.detail, mixed
    # Dagster+ keeps the instance itself: no DAGSTER_HOME there
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT_NAME", "prod")
    plus = finding(doctor_checks.run("prod"), "dagster instance")
    assert plus.status == "pass" and "Dagster+" in plus.detail, plus


# -- the command --------------------------------------------------------------------------

def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TOKENWATCH_", "DD_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "tokenwatch.cli", "doctor", *args],
                          env={**clean, **env, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=300)


def test_the_command_exits_zero_when_ready_and_one_with_the_fix_when_not(prod_setup):
    ready = _doctor(prod_setup, "--env", "prod", "--json")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    report = json.loads(ready.stdout)
    assert report["ok"] is True and {f["status"] for f in report["findings"]} == {"pass"}
    broken = _doctor({**prod_setup, "TOKENWATCH_STREAM": "no-such-stream"}, "--env", "prod")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "kinesis: stream" in broken.stdout and "TOKENWATCH_STREAM" in broken.stdout
    assert "not ready" in broken.stdout
    # no secret is printed, whatever passed or failed
    for key in ("TOKENWATCH_CHAIN_KEYS", "TOKENWATCH_API_KEYS", "TOKENWATCH_REPORT_KEYS",
                "TOKENWATCH_TABLEAU_TOKEN_SECRET"):
        secret = prod_setup[key].split(":")[-1]
        assert secret not in ready.stdout + broken.stdout + broken.stderr, key


def test_a_wrong_env_is_a_usage_error(prod_setup):
    wrong = _doctor(prod_setup, "--env", "staging")
    assert wrong.returncode == 2 and "local, prod" in wrong.stderr
    part = _doctor(prod_setup, "--for", "webserver")
    assert part.returncode == 2 and "service, pipeline" in part.stderr


def test_each_part_is_checked_with_only_its_own_secrets(prod, monkeypatch):
    # the state service's pod holds its keys and role, not the warehouse's or Datadog's
    for key in ("TOKENWATCH_REPORT_KEYS", "DD_API_KEY", "TOKENWATCH_DUCKDB_PATH",
                "TOKENWATCH_BUCKET", "TOKENWATCH_STREAM", "DAGSTER_HOME"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "snowflake")  # no credentials here
    service = doctor_checks.run("prod", "service")
    assert {f.status for f in service} == {"pass"}, service
    assert set(statuses(service)) == {"environment", "settings", "partitions",
                                      "postgres: service role",
                                      "chain keys", "state service keys"}
    # the same pod checked as the pipeline is not ready, and says why
    pipeline = statuses(doctor_checks.run("prod", "pipeline"))
    assert "state service keys" not in pipeline and "postgres: service role" not in pipeline
    assert pipeline["warehouse: snowflake"] == "fail" and pipeline["datadog"] == "fail"
    assert pipeline["dagster instance"] == "fail"
    reports = statuses(doctor_checks.run("prod", "reports"))
    assert reports["reports API keys"] == "fail" and "s3: lake" not in reports
