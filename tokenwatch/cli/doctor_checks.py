"""What ``tokenwatch doctor`` checks: every connection and permission a run needs, read-only.

Each check is a function returning one or more :class:`Finding`: ``pass``, ``fail`` (a run
needs it: the doctor exits non-zero), ``warn`` (something works less than it should, or is
not there yet and will be made by the first run) or ``skip`` (not configured, and optional).
A failing finding says how to fix it. Nothing here writes: no database, schema, bucket or
object is created, no migration runs, no server is started (the private PostgreSQL included).

The checks resolve every endpoint the way the product does (``tokenwatch.config``,
``state_service.roles``, ``ingestion.world``, ``ingestion.warehouse``,
``reporting.datadog.client``, ``reporting.tableau.publish``), so a pass means the product
will find the same thing, not that some other path works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from state_service import roles
from tokenwatch import config

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # pass, fail, warn, skip
    detail: str
    fix: str = ""


class Failed(Exception):
    """A check's failure: its detail and fix."""

    def __init__(self, detail: str, fix: str):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or error.__class__.__name__
    return text.splitlines()[0][:300]


def _dsn_shown(dsn: str) -> str:
    """host:port/dbname as user, never a password."""
    p = conninfo_to_dict(dsn)
    return (f"{p.get('user') or '(default user)'}@{p.get('host') or '(default host)'}:"
            f"{p.get('port') or 5432}/{p.get('dbname') or '(default db)'}")


# -- settings ------------------------------------------------------------------------------

def check_settings(env: str) -> Iterator[Finding]:
    s = config.settings()
    bad = []
    for name in config.Settings.model_fields:
        try:
            getattr(s, name)
        except ValueError as error:
            bad.append(_first_line(error))
    if bad:
        yield Finding("settings", FAIL, "; ".join(bad), "correct the variables named")
        return
    yield Finding("settings", PASS, f"every TOKENWATCH_* / DD_* setting parses ({env})")
    if env == "prod":
        if s.partitions_start is None:
            yield Finding("partitions", WARN, "TOKENWATCH_PARTITIONS_START is unset: the daily "
                                              "partitions start 30 days before the code "
                                              "location loaded, and move every day",
                          "set TOKENWATCH_PARTITIONS_START to the first day of data")
        else:
            yield Finding("partitions", PASS, f"daily partitions from {s.partitions_start}")


def check_environment(env: str, configured: str | None = None) -> Iterator[Finding]:
    """``configured``: TOKENWATCH_ENV as the shell had it before ``--env`` (the doctor checks
    ``env`` whatever the shell says, and warns when a run here would use the other)."""
    actual = configured or config.env_name()
    if actual != env:
        yield Finding("environment", WARN, f"checked as {env}, but TOKENWATCH_ENV is {actual!r} "
                                           f"here: a run here uses {actual}",
                      f"export TOKENWATCH_ENV={env} where the runs are")
    else:
        yield Finding("environment", PASS, f"TOKENWATCH_ENV={env}")


# -- the state service's PostgreSQL --------------------------------------------------------

def admin_dsn(env: str) -> str:
    """The state database as the product finds it, without starting or creating anything."""
    s = config.settings()
    explicit = config.secret(s.pg_dsn)
    if explicit:
        return explicit
    if env == "prod":
        raise Failed("TOKENWATCH_PG_DSN is unset, and the roles' DSNs are derived from it",
                     "set TOKENWATCH_SERVICE_PG_DSN and TOKENWATCH_READER_PG_DSN (or "
                     "TOKENWATCH_PG_DSN, the admin's)")
    from tokenwatch.stack_file import Stack, StackError

    try:
        return Stack.load().pg_dsn
    except (StackError, OSError):
        pass
    from tokenwatch.postgres import LOCAL_DSN

    return make_conninfo(LOCAL_DSN, user=s.pguser, dbname=s.pg_database)


def _role_dsn(role: str, env: str) -> str:
    return roles.dsn_for(role, lambda: admin_dsn(env))


def _connect(dsn: str, what: str, fix: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.Error as error:
        if "does not exist" in str(error):  # the server answers; the database is not made
            fix = ("create and migrate it: `tokenwatch db migrate` as the admin (locally "
                   "`make demo` does it)")
        raise Failed(f"{what} at {_dsn_shown(dsn)} does not answer: {_first_line(error)}",
                     fix) from None


def _privilege(conn, table: str, privilege: str) -> bool:
    (ok,), = conn.execute("select has_table_privilege(current_user, %s, %s)",
                          [f"{roles.SCHEMA}.{table}", privilege]).fetchall()
    return bool(ok)


def _not_superuser(conn, role_name: str, env_name: str) -> None:
    (user, superuser), = conn.execute(
        "select current_user, rolsuper from pg_roles where rolname = current_user").fetchall()
    if superuser:
        raise Failed(f"connects as {user}, a superuser: it could rewrite the log and disable "
                     "its trigger", f"connect as {role_name} ({env_name}), created by "
                                    "`tokenwatch db migrate`")
    if user != role_name:
        raise Failed(f"connects as {user}, not {role_name}",
                     f"set {env_name} to a DSN with user={role_name}")


def _log_table_present(conn) -> None:
    (present,), = conn.execute("select to_regclass(%s) is not null",
                               [f"{roles.SCHEMA}.{roles.LOG_TABLE}"]).fetchall()
    if not present:
        raise Failed(f"{roles.LOG_TABLE} is missing: the database is not migrated",
                     "run `tokenwatch db migrate` as the admin (TOKENWATCH_PG_DSN)")


@contextmanager
def _as_role(role: str, env: str) -> Iterator[tuple[str, psycopg.Connection]]:
    """The state database as ``role`` connects to it (its DSN, the connection), once checked
    that the role is who it says, not a superuser, and that the log exists."""
    dsn_env = roles.DSN_ENV[role]
    dsn = _role_dsn(role, env)
    with _connect(dsn, "the state database", f"check {dsn_env} (or TOKENWATCH_PG_DSN) and "
                  "that the server is reachable") as conn:
        _not_superuser(conn, role, dsn_env)
        _log_table_present(conn)
        yield dsn, conn


def check_service_role(env: str) -> Iterator[Finding]:
    name = "postgres: service role"
    try:
        with _as_role(roles.SERVICE, env) as (dsn, conn):
            can = {p: _privilege(conn, roles.LOG_TABLE, p)
                   for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")}
        too_much = [p for p in ("UPDATE", "DELETE", "TRUNCATE") if can[p]]
        if too_much:
            raise Failed(f"{roles.SERVICE} may {', '.join(too_much)} {roles.LOG_TABLE}: the log "
                         "is no longer append-only", "run `tokenwatch db migrate` (it re-applies "
                                                     "the grants of state_service/roles.py)")
        if not (can["SELECT"] and can["INSERT"]):
            raise Failed(f"{roles.SERVICE} may not read and insert {roles.LOG_TABLE}",
                         "run `tokenwatch db migrate`")
        yield Finding(name, PASS, f"{_dsn_shown(dsn)}: not a superuser; insert and select "
                                  f"only on {roles.LOG_TABLE}")
    except Failed as f:
        yield Finding(name, FAIL, f.detail, f.fix)


def check_reader_role(env: str) -> Iterator[Finding]:
    name = "postgres: reader role"
    try:
        with _as_role(roles.READER, env) as (dsn, conn):
            writes = [f"{p} on {t}" for t in (roles.LOG_TABLE, roles.TOKENS_TABLE)
                      for p in ("INSERT", "UPDATE", "DELETE") if _privilege(conn, t, p)]
            if writes:
                raise Failed(f"{roles.READER} may {', '.join(writes)}: readers must only read",
                             "run `tokenwatch db migrate` (it re-applies the grants)")
            if not _privilege(conn, roles.LOG_TABLE, "SELECT"):
                raise Failed(f"{roles.READER} may not read {roles.LOG_TABLE}",
                             "run `tokenwatch db migrate`")
            yield from _migrations(conn)
        yield Finding(name, PASS, f"{_dsn_shown(dsn)}: select only")
    except Failed as f:
        yield Finding(name, FAIL, f.detail, f.fix)


def _migrations(conn) -> Iterator[Finding]:
    from state_service.migrate import available

    wanted = {m.version: m.name for m in available()}
    try:
        done = {v for (v,) in conn.execute("select version from schema_migrations")}
    except psycopg.Error as error:
        raise Failed(f"schema_migrations cannot be read: {_first_line(error)}",
                     "run `tokenwatch db migrate`") from None
    pending = [f"{v:04d}_{n}" for v, n in sorted(wanted.items()) if v not in done]
    if pending:
        yield Finding("postgres: migrations", FAIL, f"pending: {', '.join(pending)}",
                      "run `tokenwatch db migrate` as the admin before the new version serves")
    else:
        yield Finding("postgres: migrations", PASS, f"all {len(wanted)} applied")


# -- keys ------------------------------------------------------------------------------------

def check_chain_keys(env: str) -> Iterator[Finding]:
    try:
        key_id, keys = config.chain_keys()
        if env == "prod" and key_id == "local-dev":
            raise ValueError("the public development key seals rows")
        yield Finding("chain keys", PASS, f"new rows sealed with {key_id!r}; "
                                          f"{len(keys)} key(s) verify")
    except ValueError as error:
        yield Finding("chain keys", FAIL, _first_line(error),
                      "set TOKENWATCH_CHAIN_KEYS (id:secret,...) and TOKENWATCH_CHAIN_KEY_ID "
                      "from the secret store")


def check_service_keys(env: str) -> Iterator[Finding]:
    s = config.settings()
    if s.api_keys:
        yield Finding("state service keys", PASS, f"{len(s.api_keys)} write key(s), "
                                                  f"{len(s.read_keys)} read key(s)")
    else:
        yield Finding("state service keys", FAIL if env == "prod" else WARN,
                      "TOKENWATCH_API_KEYS is empty: the state service refuses every write",
                      "set TOKENWATCH_API_KEYS from the secret store")


def check_report_keys(env: str) -> Iterator[Finding]:
    s = config.settings()
    try:
        from reporting.api.auth import parse_keys

        report_keys = parse_keys(config.secret(s.report_keys))
    except ValueError as error:
        yield Finding("reports API keys", FAIL, _first_line(error),
                      "correct TOKENWATCH_REPORT_KEYS")
        return
    if report_keys:
        yield Finding("reports API keys", PASS, f"{len(report_keys)} key(s): "
                                                f"{', '.join(sorted(report_keys))}")
    else:
        yield Finding("reports API keys", FAIL if env == "prod" else WARN,
                      "TOKENWATCH_REPORT_KEYS is empty: the reports API answers nobody",
                      "set TOKENWATCH_REPORT_KEYS (name:key,...) from the secret store")


# -- the warehouse ---------------------------------------------------------------------------

#: The schemas a run reads or writes, besides the raw layer: the analyst-facing one is made by
#: the first publication, so its absence is a warning, not a failure.
PUBLISHED_SCHEMA = "analytics_published"


def check_warehouse(env: str) -> Iterator[Finding]:
    from ingestion.warehouse import target_name

    target = target_name()
    name = f"warehouse: {target}"
    try:
        if target == "duckdb":
            yield from _duckdb(name)
        elif target == "postgres":
            yield from _postgres_warehouse(name)
        else:
            yield from _snowflake(name)
    except Failed as f:
        yield Finding(name, FAIL, f.detail, f.fix)


def _schemas_found(found: set[str], where: str, name: str) -> Iterator[Finding]:
    raw = config.settings().raw_schema.lower()
    if raw not in found:
        yield Finding(name, WARN, f"{where}: no schema {raw} yet (the first load makes it)",
                      "run the pipeline once (`tokenwatch ingest`)")
    elif PUBLISHED_SCHEMA not in found:
        yield Finding(name, WARN, f"{where}: {raw} present, no {PUBLISHED_SCHEMA} yet (the "
                                  "first gated publication makes it)", "materialize the marts")
    else:
        yield Finding(name, PASS, f"{where}: schemas {raw} and {PUBLISHED_SCHEMA} present")


def _duckdb(name: str) -> Iterator[Finding]:
    import duckdb

    from ingestion.warehouse import duckdb_path, read_replica_path

    path = duckdb_path()
    if not path.exists():
        import os

        parent = next(p for p in path.parents if p.exists())
        if not parent.is_dir():
            raise Failed(f"{path} cannot be created: {parent} is not a directory",
                         "set TOKENWATCH_DUCKDB_PATH to a file in a writable directory")
        if not os.access(parent, os.W_OK):
            raise Failed(f"{path} cannot be created: {parent} is not writable",
                         "set TOKENWATCH_DUCKDB_PATH to a file in a writable directory")
        yield Finding(name, WARN, f"{path} does not exist yet (the first load creates it)")
        return
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():  # a writer has it: the file is there and in use
            yield Finding(name, PASS, f"{path}: in use by a writer now")
            return
        raise Failed(f"{path} cannot be opened: {_first_line(error)}",
                     "check the file (a DuckDB database) and its permissions") from None
    except duckdb.Error as error:
        raise Failed(f"{path} cannot be opened: {_first_line(error)}",
                     "check the file (a DuckDB database) and its permissions") from None
    try:
        found = {r[0].lower() for r in con.execute(
            "select schema_name from information_schema.schemata").fetchall()}
    finally:
        con.close()
    yield from _schemas_found(found, str(path), name)
    replica = read_replica_path()
    yield Finding("warehouse: read replica", PASS if replica.exists() else WARN,
                  f"{replica}" + ("" if replica.exists() else
                                  " not published yet (a writer's close publishes it)"))


def _postgres_warehouse(name: str) -> Iterator[Finding]:
    dsn = config.secret(config.settings().warehouse_dsn)
    if not dsn:
        raise Failed("TOKENWATCH_WAREHOUSE_DSN is unset", "set TOKENWATCH_WAREHOUSE_DSN")
    with _connect(dsn, "the PostgreSQL warehouse", "check TOKENWATCH_WAREHOUSE_DSN") as conn:
        found = {r[0].lower() for r in conn.execute(
            "select nspname from pg_namespace").fetchall()}
        raw = config.settings().raw_schema
        if raw in found:
            (can,), = conn.execute("select has_schema_privilege(current_user, %s, 'CREATE')",
                                   [raw]).fetchall()
            if not can:
                raise Failed(f"{_dsn_shown(dsn)} may not create tables in {raw}",
                             f"grant create on schema {raw} to the loading role")
    yield from _schemas_found(found, _dsn_shown(dsn), name)


def _snowflake(name: str) -> Iterator[Finding]:
    import snowflake.connector

    from ingestion.warehouse.snowflake import connect_kwargs_from_env

    try:
        kwargs = connect_kwargs_from_env()
    except ValueError as error:
        raise Failed(_first_line(error), "set the TOKENWATCH_SNOWFLAKE_* variables") from None
    database = kwargs["database"]
    try:
        conn = snowflake.connector.connect(login_timeout=CONNECT_TIMEOUT_S * 3, **kwargs)
    except snowflake.connector.Error as error:
        raise Failed(f"Snowflake account {kwargs['account']!r} refused "
                     f"{kwargs['user']!r}: {_first_line(error)}",
                     "check TOKENWATCH_SNOWFLAKE_ACCOUNT, _USER and the password or key") from None
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(f"select lower(schema_name) from {database}.information_schema"
                            ".schemata")
                found = {r[0] for r in cur.fetchall()}
            except snowflake.connector.Error as error:
                raise Failed(f"database {database} cannot be read: {_first_line(error)}",
                             "run deploy/snowflake/bootstrap.sql, or check "
                             "TOKENWATCH_SNOWFLAKE_DATABASE and _ROLE") from None
    finally:
        conn.close()
    yield from _schemas_found(found, f"Snowflake {database}", name)


# -- AWS: the lake, the stream, the checkpoint bucket ----------------------------------------

def _world(env: str):
    from ingestion.world import world_from_env

    try:
        return world_from_env()
    except Exception as error:  # noqa: BLE001 - the stack file missing, or prod unset
        fix = ("start the local stack: `tokenwatch stack up` (or `make demo`)" if env == "local"
               else "set the variables named")
        raise Failed(_first_line(error), fix) from None


def check_lake(env: str) -> Iterator[Finding]:
    from botocore.exceptions import BotoCoreError, ClientError

    from ingestion.contract import S3_PREFIXES

    try:
        world = _world(env)
        listed = []
        for prefix in S3_PREFIXES.values():
            world.s3.list_objects_v2(Bucket=world.bucket, Prefix=prefix + "/", MaxKeys=1)
            listed.append(prefix)
        yield Finding("s3: lake", PASS, f"s3://{world.bucket}: can list "
                                         f"{', '.join(p + '/' for p in listed)}")
    except Failed as f:
        yield Finding("s3: lake", FAIL, f.detail, f.fix)
    except (ClientError, BotoCoreError) as error:
        yield Finding("s3: lake", FAIL, f"s3://{world.bucket}: {_first_line(error)}",
                      "check TOKENWATCH_BUCKET and deploy/aws/ingestion-policy.json on the role")


def check_stream(env: str) -> Iterator[Finding]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        world = _world(env)
        summary = world.kinesis.describe_stream_summary(
            StreamName=world.stream)["StreamDescriptionSummary"]
        status = summary.get("StreamStatus")
        shards = summary.get("OpenShardCount")
        if status not in ("ACTIVE", "UPDATING"):
            raise Failed(f"stream {world.stream} is {status}", "wait for it to be ACTIVE")
        yield Finding("kinesis: stream", PASS, f"{world.stream}: {status}, {shards} open shard(s)")
    except Failed as f:
        yield Finding("kinesis: stream", FAIL, f.detail, f.fix)
    except (ClientError, BotoCoreError) as error:
        yield Finding("kinesis: stream", FAIL, f"{world.stream}: {_first_line(error)}",
                      "check TOKENWATCH_STREAM and deploy/aws/ingestion-policy.json on the role")


def check_checkpoint_bucket(env: str) -> Iterator[Finding]:
    from botocore.exceptions import BotoCoreError, ClientError

    from state_service.checkpoints import audit_bucket, retention_days

    name = "s3: checkpoint bucket"
    bucket = audit_bucket()
    try:
        s3 = _world(env).s3
        try:
            conf = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket" and env == "local":
                yield Finding(name, PASS, f"s3://{bucket}: the local stand-in is created with "
                                          "Object Lock by the first checkpoint")
                return
            if code in ("ObjectLockConfigurationNotFoundError", "NoSuchBucket"):
                raise Failed(f"s3://{bucket}: {code}", "provision the bucket with Object Lock "
                             "enabled (it cannot be turned on for an existing bucket without "
                             "AWS support), or set TOKENWATCH_AUDIT_BUCKET") from None
            raise
        if conf.get("ObjectLockEnabled") != "Enabled":
            raise Failed(f"s3://{bucket}: Object Lock is not enabled",
                         "provision the checkpoint bucket with Object Lock")
        yield Finding(name, PASS, f"s3://{bucket}: Object Lock on; checkpoints locked in "
                                  f"COMPLIANCE mode for {retention_days()} days")
    except Failed as f:
        yield Finding(name, FAIL, f.detail, f.fix)
    except (ClientError, BotoCoreError) as error:
        yield Finding(name, FAIL, f"s3://{bucket}: {_first_line(error)}",
                      "check TOKENWATCH_AUDIT_BUCKET and deploy/aws/checkpoint-policy.json")


# -- what leaves: Datadog, Tableau -----------------------------------------------------------

def check_datadog(env: str) -> Iterator[Finding]:
    import httpx

    from reporting.datadog.client import resolve

    try:
        target = resolve()
    except Exception as error:  # noqa: BLE001 - a missing key, or no local stack
        fix = ("start the local stack: `tokenwatch stack up`" if env == "local"
               else "set DD_API_KEY (and DD_SITE) from the secret store")
        yield Finding("datadog", FAIL, _first_line(error), fix)
        return
    host = target.options["api_host"]
    try:
        r = httpx.get(f"{host}/api/v1/validate", timeout=CONNECT_TIMEOUT_S * 2,
                      headers={"DD-API-KEY": target.options["api_key"]})
    except httpx.HTTPError as error:
        yield Finding("datadog", FAIL, f"{host} does not answer: {_first_line(error)}",
                      "check DD_SITE (or TOKENWATCH_DD_API_HOST) and the egress to it")
        return
    if r.status_code != 200 or not r.json().get("valid"):
        yield Finding("datadog", FAIL, f"{host} refused the API key ({r.status_code})",
                      "set DD_API_KEY to a valid key of this site (DD_SITE)")
        return
    yield Finding("datadog", PASS, f"{target.source}: API key valid")
    if env == "prod" and not target.options.get("app_key"):
        yield Finding("datadog: app key", WARN, "DD_APP_KEY is unset: dashboards and monitors "
                                                "cannot be pushed", "set DD_APP_KEY")


def check_tableau(env: str) -> Iterator[Finding]:
    from reporting.tableau.publish import TableauPublishError, configured, target

    if not configured():
        yield Finding("tableau", SKIP, "TOKENWATCH_TABLEAU_SERVER_URL unset: extracts are "
                                       "written, not published")
        return
    import tableauserverclient as TSC  # noqa: N812

    try:
        to = target()
        server = TSC.Server(to.server_url, use_server_version=True,
                            http_options={"timeout": CONNECT_TIMEOUT_S * 3})
        server.auth.sign_in(TSC.PersonalAccessTokenAuth(to.token_name, to.token_secret,
                                                        site_id=to.site))
        server.auth.sign_out()
        yield Finding("tableau", PASS, f"{to.server_url} (site {to.site or 'default'!r}): the "
                                       f"token {to.token_name!r} signs in")
    except TableauPublishError as error:
        yield Finding("tableau", FAIL, _first_line(error), "set the variables named")
    except Exception as error:  # noqa: BLE001 - refused sign-in, unreachable server
        yield Finding("tableau", FAIL, f"sign-in failed: {_first_line(error)}",
                      "check TOKENWATCH_TABLEAU_SERVER_URL, _SITE, _TOKEN_NAME and "
                      "_TOKEN_SECRET")


# -- Dagster -------------------------------------------------------------------------------

def _storage_kind(cfg) -> str:
    """``postgres``, ``sqlite (default)`` or what the file names: ``storage: postgres:`` (one
    block), or ``run_storage``/``event_log_storage``/``schedule_storage`` each naming its class
    (as Dagster's Helm chart writes it): postgres only when all three are."""
    storage = cfg.get("storage")
    if isinstance(storage, dict) and storage:
        return next(iter(storage))
    parts = [cfg.get(k) for k in ("run_storage", "event_log_storage", "schedule_storage")]
    modules = {str(p.get("module", "")) for p in parts if isinstance(p, dict)}
    if not modules:
        return "sqlite (default)"
    if all(isinstance(p, dict) for p in parts) \
            and all(m.startswith("dagster_postgres") for m in modules):
        return "postgres"
    return "mixed: " + ", ".join(sorted(str(p.get("module")) if isinstance(p, dict) else
                                        "sqlite (default)" for p in parts))


def check_dagster(env: str) -> Iterator[Finding]:
    import os

    deployment = os.environ.get("DAGSTER_CLOUD_DEPLOYMENT_NAME")
    if deployment:  # Dagster+ (serverless or hybrid agent) keeps the instance itself
        yield Finding("dagster instance", PASS, f"Dagster+ deployment {deployment!r}: storage "
                                                "and run launching are Dagster+'s")
        return
    home = config.settings().dagster_home
    if home is None:
        yield Finding("dagster instance", FAIL if env == "prod" else SKIP,
                      "DAGSTER_HOME is unset" + ("" if env == "prod" else
                                                 " (`make dagster` and `make demo` set it)"),
                      "set DAGSTER_HOME to the directory of the deployment's dagster.yaml "
                      "(deploy/dagster/dagster.yaml)")
        return
    try:
        from dagster._core.instance.config import dagster_instance_config

        if not Path(home, "dagster.yaml").is_file():
            raise Failed(f"{home}/dagster.yaml is missing",
                         "copy deploy/dagster/dagster.yaml there (prod) or run `make dagster`")
        cfg, _ = dagster_instance_config(str(home))
    except Failed as f:
        yield Finding("dagster instance", FAIL, f.detail, f.fix)
        return
    except Exception as error:  # noqa: BLE001 - dagster's own validation errors
        yield Finding("dagster instance", FAIL, f"{home}/dagster.yaml: {_first_line(error)}",
                      "fix the file (deploy/dagster/dagster.yaml is the production one)")
        return
    kind = _storage_kind(cfg)
    if env == "prod" and kind != "postgres":
        yield Finding("dagster instance", FAIL, f"{home}/dagster.yaml: {kind} storage; a "
                                                "deployment keeps runs in PostgreSQL",
                      "use deploy/dagster/dagster.yaml (storage: postgres)")
        return
    yield Finding("dagster instance", PASS, f"{home}/dagster.yaml parses: {kind} storage")


#: Every check, in the order the table shows them (after the environment's).
CHECKS: tuple[Callable[[str], Iterator[Finding]], ...] = (
    check_settings, check_service_role, check_reader_role, check_chain_keys,
    check_service_keys, check_report_keys, check_warehouse, check_lake, check_stream,
    check_checkpoint_bucket, check_datadog, check_tableau, check_dagster)

#: What each part of a deployment needs (``--for``): each runs with its own secrets (the
#: service's pod has no warehouse credentials, the pipeline's no write keys of the service).
COMPONENTS: dict[str, tuple[Callable[[str], Iterator[Finding]], ...]] = {
    "all": CHECKS,
    # the state service: its role, the chain key it seals with, its bearer keys
    "service": (check_settings, check_service_role, check_chain_keys, check_service_keys),
    # the code location and its runs: the reader role, the sources, the warehouse, what leaves
    "pipeline": (check_settings, check_reader_role, check_chain_keys, check_warehouse,
                 check_lake, check_stream, check_checkpoint_bucket, check_datadog,
                 check_tableau, check_dagster),
    # the reports API: the warehouse it reads, its keys, the state database's timeline
    "reports": (check_settings, check_reader_role, check_report_keys, check_warehouse),
}


def run(env: str | None = None, component: str = "all") -> list[Finding]:
    """Every finding for ``env`` (default: ``TOKENWATCH_ENV``) of the checks ``component``
    needs (:data:`COMPONENTS`), resolved as a run in ``env`` would resolve it; a check that
    raises unexpectedly is a failure of its own."""
    checks = COMPONENTS[component]
    try:
        configured = config.env_name()
    except ValueError as error:
        configured = None
        findings = [Finding("environment", FAIL, _first_line(error),
                            "export TOKENWATCH_ENV=local or prod")]
    env = env or configured or "local"
    if configured is not None:
        findings = list(check_environment(env, configured))
    with config.setting_as("env", env):
        for check in checks:
            try:
                findings.extend(check(env))
            except Exception as error:  # noqa: BLE001 - one broken check never hides the rest
                label = check.__name__.removeprefix("check_").replace("_", " ")
                findings.append(Finding(label, FAIL, f"the check itself failed: "
                                                     f"{error.__class__.__name__}: "
                                                     f"{_first_line(error)}",
                                        "report this; the other checks ran"))
    return findings
