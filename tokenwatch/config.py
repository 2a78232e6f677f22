"""Every setting tokenwatch reads from the environment, in one place: :class:`Settings`.

One field per variable: its name in the environment (``validation_alias``), its type, its
default and what it means (``description``: the README's configuration table says exactly
that, and ``tests/tokenwatch/test_settings.py`` checks the table against this class). No other
module reads ``os.environ`` for a ``TOKENWATCH_*`` or ``DD_*`` name: they call
:func:`settings` (the environment as it is at the call) or one of the thin helpers below.
Secrets (keys, passwords, DSNs that may hold one) are ``SecretStr``: they print as
``**********`` and are never written to files by tokenwatch.

A bad value does not stop the whole object: it raises ``ValueError`` (worded as ever, e.g.
``TOKENWATCH_MAX_BODY_BYTES must be an integer, got 'x'``) when that setting is read, so a
typo in one stage's setting fails that stage, not every command. An empty value is what each
setting always took it for: unset (``Empty``: ``''``; ``Blank``: also all spaces, and values
are stripped) or, where unmarked, a value (an empty ``TOKENWATCH_ENV`` is an error, not
``local``).

Families:

* the per-role PostgreSQL settings (``state_service.roles``) are explicit fields:
  ``service_pg_dsn`` / ``reader_pg_dsn`` and ``service_pg_password`` / ``reader_pg_password``;
* the Snowflake connector's ``TOKENWATCH_SNOWFLAKE_`` + ``ACCOUNT``, ``USER``, ... are the
  fields ``snowflake_account``, ``snowflake_user``, ... (``SNOWFLAKE_SETTINGS`` lists them);
* the variables only dbt reads (``dbt_project/profiles.yml``, ``dbt_project.yml``, the sources)
  are fields too, so they are documented and checked in one place; the pipeline sets some of
  them for dbt (``ingestion.warehouse.dbt_env``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent

ENVIRONMENTS = ("local", "prod")
#: The warehouse targets (``ingestion.warehouse``).
WAREHOUSES = ("duckdb", "postgres", "snowflake")
#: A Datadog site: ``datadoghq.com``, ``datadoghq.eu``, ``us5.datadoghq.com``, ...
DD_SITE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
#: The Snowflake connector's settings: ``TOKENWATCH_SNOWFLAKE_`` + the key upper-cased, field
#: ``snowflake_`` + the key.
SNOWFLAKE_SETTINGS = ("account", "user", "password", "private_key_path",
                      "private_key_passphrase", "role", "warehouse", "database", "host", "port",
                      "protocol")


def _empty_is_unset(value: Any) -> Any:
    """An empty value means the default (``''`` only; a blank one is a value)."""
    if isinstance(value, str) and value == "":
        raise PydanticUseDefault()
    return value


def _blank_is_unset(value: Any) -> Any:
    """An empty or all-blank value means the default; any other is taken stripped."""
    if isinstance(value, str):
        if not value.strip():
            raise PydanticUseDefault()
        return value.strip()
    return value


def _comma_list(value: Any) -> Any:
    """``a, b,,c`` -> ``('a', 'b', 'c')``: comma-separated, each item stripped, empties dropped."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


Empty = BeforeValidator(_empty_is_unset)
Blank = BeforeValidator(_blank_is_unset)
CommaList = BeforeValidator(_comma_list)


def _var(env: str, default: Any, description: str) -> Any:
    return Field(default, validation_alias=env, description=description)


class Settings(BaseSettings):
    """The environment, read once per object (see the module docstring)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True,
                                      populate_by_name=True, env_file=None)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return init_settings, env_settings  # the environment only: no .env or secrets files

    # -- where and what ------------------------------------------------------------------
    env: Literal["local", "prod"] = _var(
        "TOKENWATCH_ENV", "local",
        "`local` (DuckDB, moto, local Datadog intake) or `prod` (Snowflake, AWS, Datadog)")
    home: Annotated[Path | None, Blank] = _var(
        "TOKENWATCH_HOME", None,
        "local state: private PostgreSQL, stack endpoints, DuckDB warehouse")

    # -- the state service's PostgreSQL --------------------------------------------------
    pg_dsn: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_PG_DSN", None,
        "the state service's PostgreSQL as the admin (libpq DSN or URI); its dbname is used "
        "as is")
    pg_database: str = _var(
        "TOKENWATCH_PG_DATABASE", "tokenwatch",
        "database name when the server is found or started (no DSN)")
    service_pg_dsn: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_SERVICE_PG_DSN", None,
        "how the state service connects (see [Roles](#roles))")
    reader_pg_dsn: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_READER_PG_DSN", None,
        "how ingestion, the gate and the audit connect (see [Roles](#roles))")
    service_pg_password: Annotated[SecretStr | None, Empty] = _var(
        "TOKENWATCH_SERVICE_PG_PASSWORD", None,
        "the service role's password: `tokenwatch db migrate` sets it, the derived DSN uses it")
    reader_pg_password: Annotated[SecretStr | None, Empty] = _var(
        "TOKENWATCH_READER_PG_PASSWORD", None,
        "the reader role's password: `tokenwatch db migrate` sets it, the derived DSN uses it")
    pguser: str = _var(
        "PGUSER", "postgres", "the user tried on 127.0.0.1:5432")
    pgpassword: Annotated[SecretStr | None, Empty] = _var(
        "PGPASSWORD", None,
        "the password tried on 127.0.0.1:5432 (libpq reads it; or `~/.pgpass`)")

    # -- the state service ---------------------------------------------------------------
    api_keys: Annotated[frozenset[SecretStr], NoDecode, CommaList] = _var(
        "TOKENWATCH_API_KEYS", frozenset(),
        "comma-separated bearer keys allowed to write (and read)")
    read_keys: Annotated[frozenset[SecretStr], NoDecode, CommaList] = _var(
        "TOKENWATCH_READ_KEYS", frozenset(),
        "comma-separated bearer keys allowed to read only")
    max_body_bytes: int = _var(
        "TOKENWATCH_MAX_BODY_BYTES", 512 * 1024,
        "the state service's request-body limit (413 beyond)")
    service_pool_size: int = _var(
        "TOKENWATCH_SERVICE_POOL_SIZE", 4,
        "PostgreSQL connections per state-service worker (`tokenwatch serve` runs one worker "
        "per core by default); a handful per database core is PostgreSQL's sweet spot")
    service_write_groups: int = _var(
        "TOKENWATCH_SERVICE_WRITE_GROUPS", 2,
        "transactions of writes each state-service worker has in flight at once: writes that "
        "arrive while the worker's writes are in flight wait and go together, as one "
        "transaction (group commit; a second group once 4 wait)")
    dd_agent_host: Annotated[str | None, Empty] = _var(
        "DD_AGENT_HOST", None,
        "DogStatsD host of the service's metrics (and the trace agent's, with "
        "`DD_TRACE_ENABLED`); silent when unset")
    dd_dogstatsd_port: Annotated[int, Empty] = _var(
        "DD_DOGSTATSD_PORT", 8125, "DogStatsD port of the service's metrics")
    trace_enabled: Annotated[bool, Empty] = _var(
        "DD_TRACE_ENABLED", False,
        "Datadog APM traces of the state service and the reports API (`true`), sent to "
        "`DD_TRACE_AGENT_URL` or `DD_AGENT_HOST`:`DD_TRACE_AGENT_PORT`; without either, off")
    trace_agent_url: Annotated[str | None, Empty] = _var(
        "DD_TRACE_AGENT_URL", None,
        "the trace agent's URL (`http://host:8126`)")
    trace_agent_port: Annotated[int, Empty] = _var(
        "DD_TRACE_AGENT_PORT", 8126, "the trace agent's port on `DD_AGENT_HOST`")
    dd_env: Annotated[str | None, Empty] = _var(
        "DD_ENV", None, "the traces' `env` tag")
    dd_version: Annotated[str | None, Empty] = _var(
        "DD_VERSION", None, "the traces' `version` tag")
    trace_logs: Annotated[bool, Empty] = _var(
        "TOKENWATCH_TRACE_LOGS", True,
        "with traces on, one JSON log line per request on stderr carrying its "
        "`dd.trace_id` and `dd.span_id`")

    # -- the audit (tamper evidence) -----------------------------------------------------
    chain_keys: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_CHAIN_KEYS", None,
        "`id:secret,id:secret`, from a secret store: every key that ever sealed rows "
        "(required in prod)")
    chain_key_id: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_CHAIN_KEY_ID", None, "the key new rows are sealed with")
    audit_bucket: str = _var(
        "TOKENWATCH_AUDIT_BUCKET", "tokenwatch-audit",
        "the checkpoints' S3 bucket (Object Lock must be on)")
    checkpoint_retention_days: int = _var(
        "TOKENWATCH_CHECKPOINT_RETENTION_DAYS", 2557,
        "how long a checkpoint is locked (COMPLIANCE mode): seven years")
    audit_pack_dir: Annotated[Path | None, Blank] = _var(
        "TOKENWATCH_AUDIT_PACK_DIR", None,
        "where the compliance job writes the audit packs (one folder per pack)")
    git_commit: Annotated[str | None, Blank] = _var(
        "TOKENWATCH_GIT_COMMIT", None,
        "the commit the software was built from, recorded in each audit pack (the image sets "
        "it from its `GIT_COMMIT` build argument)")
    audit_pack_bucket: Annotated[str | None, Blank] = _var(
        "TOKENWATCH_AUDIT_PACK_BUCKET", None,
        "an S3 bucket the compliance job also uploads each pack to, under the pack folder's "
        "name (in prod: the object store auditors read, ideally with Object Lock)")

    # -- sources and the local world -----------------------------------------------------
    bucket: str = _var(
        "TOKENWATCH_BUCKET", "tokenwatch-lake", "the S3 lake")
    stream: str = _var(
        "TOKENWATCH_STREAM", "wallet-events", "the Kinesis stream of wallet events")
    stream_shards: int = _var(
        "TOKENWATCH_STREAM_SHARDS", 4, "shards of the local stream")
    aws_default_region: str = _var(
        "AWS_DEFAULT_REGION", "us-east-1",
        "region of the local stack's clients; prod uses boto3's usual chain")
    timestamp_min: datetime = _var(
        "TOKENWATCH_TIMESTAMP_MIN", datetime(2000, 1, 1, tzinfo=UTC),
        "the earliest plausible record timestamp at ingestion (ISO-8601; without an offset, "
        "UTC; before it: quarantine)")
    timestamp_max_ahead_s: int = _var(
        "TOKENWATCH_TIMESTAMP_MAX_AHEAD_S", 86400,
        "how many seconds past now a record timestamp is still plausible (beyond: quarantine)")
    service_url: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SERVICE_URL", None,
        "a running state service for `tokenwatch simulate` (`--service-url`)")
    api_key: Annotated[SecretStr | None, Empty] = _var(
        "TOKENWATCH_API_KEY", None,
        "the bearer key `tokenwatch simulate` sends to that service (`--api-key`)")

    # -- the warehouse ---------------------------------------------------------------------
    warehouse: Literal["duckdb", "postgres", "snowflake"] | None = _var(
        "TOKENWATCH_WAREHOUSE", None,
        "the warehouse target: `duckdb`, `postgres` or `snowflake`")
    duckdb_path: Annotated[Path | None, Blank] = _var(
        "TOKENWATCH_DUCKDB_PATH", None, "the DuckDB warehouse file")
    duckdb_replica_path: Annotated[Path | None, Blank] = _var(
        "TOKENWATCH_DUCKDB_REPLICA_PATH", None,
        "the DuckDB warehouse's read replica, the file readers open (analysts, Tableau, the "
        "demo): a copy published whenever a writer closes the warehouse file")
    warehouse_dsn: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_WAREHOUSE_DSN", None, "the PostgreSQL warehouse")
    snowflake_account: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_ACCOUNT", None,
        "the Snowflake account, for ingestion and dbt alike (required by ingestion)")
    snowflake_user: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_USER", None, "the Snowflake user (required by ingestion)")
    snowflake_password: Annotated[SecretStr | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_PASSWORD", None,
        "the Snowflake user's password (or a private key)")
    snowflake_private_key_path: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH", None,
        "key-pair authentication instead of the password: the private key file")
    snowflake_private_key_passphrase: Annotated[SecretStr | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", None, "the private key's passphrase")
    snowflake_role: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_ROLE", None, "the Snowflake role")
    snowflake_warehouse: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_WAREHOUSE", None, "the Snowflake virtual warehouse")
    snowflake_database: Annotated[str, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_DATABASE", "TOKENWATCH", "the Snowflake database")
    snowflake_host: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_HOST", None,
        "point the connector elsewhere (fakesnow in tests), with `_PORT` and `_PROTOCOL`")
    snowflake_port: Annotated[int | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_PORT", None, "the port of that host")
    snowflake_protocol: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_SNOWFLAKE_PROTOCOL", None, "`http` or `https` for that host")

    # -- dbt (read by dbt_project/; the pipeline sets some of them) -----------------------
    dbt_target: str = _var(
        "TOKENWATCH_DBT_TARGET", "local",
        "dbt's target: `local`, `postgres`, `snowflake` (for dbt run by hand)")
    dbt_schema: str = _var(
        "TOKENWATCH_DBT_SCHEMA", "analytics",
        "dbt's base schema (marts land in `analytics_wallet`, ...)")
    dbt_threads: int = _var("TOKENWATCH_DBT_THREADS", 4, "dbt's threads")
    duckdb_memory_limit: str = _var(
        "TOKENWATCH_DUCKDB_MEMORY_LIMIT", "3GB",
        "DuckDB's memory limit for dbt's builds (`local` target); past it, operators spill to "
        "the warehouse file's `.tmp` directory")
    dbt_persist_docs: bool = _var(
        "TOKENWATCH_DBT_PERSIST_DOCS", True,
        "dbt writes the descriptions as table and column comments (`true`, `1` or `yes`)")
    raw_database: Annotated[str | None, Empty] = _var(
        "TOKENWATCH_RAW_DATABASE", None, "the database of the raw layer, as dbt's sources see it")
    raw_schema: str = _var(
        "TOKENWATCH_RAW_SCHEMA", "raw", "the schema of the raw layer, as dbt's sources see it")
    wh_pg_host: str = _var(
        "TOKENWATCH_WH_PG_HOST", "127.0.0.1",
        "the PostgreSQL warehouse's host as dbt sees it (the pipeline derives "
        "`TOKENWATCH_WH_PG_*` from `TOKENWATCH_WAREHOUSE_DSN`)")
    wh_pg_port: int = _var(
        "TOKENWATCH_WH_PG_PORT", 5432, "the PostgreSQL warehouse's port as dbt sees it")
    wh_pg_user: str = _var(
        "TOKENWATCH_WH_PG_USER", "postgres", "the PostgreSQL warehouse's user as dbt sees it")
    wh_pg_password: Annotated[SecretStr | None, Empty] = _var(
        "TOKENWATCH_WH_PG_PASSWORD", None,
        "the PostgreSQL warehouse's password as dbt sees it")
    wh_pg_dbname: str = _var(
        "TOKENWATCH_WH_PG_DBNAME", "tokenwatch_warehouse",
        "the PostgreSQL warehouse's database as dbt sees it")
    analyst_roles: Annotated[tuple[str, ...], NoDecode, CommaList] = _var(
        "TOKENWATCH_ANALYST_ROLES", (),
        "roles granted select on analytics_published, the days the quality gate passed "
        "(PostgreSQL, Snowflake); never on the build schemas")
    compliance_roles: Annotated[tuple[str, ...], NoDecode, CommaList] = _var(
        "TOKENWATCH_COMPLIANCE_ROLES", (),
        "roles granted select on the compliance marts (PostgreSQL, Snowflake)")

    # -- orchestration and publication -----------------------------------------------------
    partitions_start: date | None = _var(
        "TOKENWATCH_PARTITIONS_START", None,
        "first daily partition of the marts and of publication; unset: where the data starts "
        "(locally the first day ever simulated into the stack, `data_start` in "
        "`$TOKENWATCH_HOME/stack.json`), else 30 days before today")
    dagster_home: Annotated[Path | None, Empty] = _var(
        "DAGSTER_HOME", None,
        "the Dagster instance `tokenwatch demo` runs on (`make demo` and `make dagster` set it)")
    dd_api_key: Annotated[SecretStr | None, Blank] = _var(
        "DD_API_KEY", None,
        "Datadog's API key (KPI series, events): required in prod and with "
        "`TOKENWATCH_DD_API_HOST`")
    dd_app_key: Annotated[SecretStr | None, Empty] = _var(
        "DD_APP_KEY", None, "Datadog's application key (dashboards and monitors)")
    dd_site: str = _var("DD_SITE", "datadoghq.com", "the Datadog site in prod")
    dd_api_host: Annotated[str | None, Blank] = _var(
        "TOKENWATCH_DD_API_HOST", None,
        "send to this Datadog-compatible API instead (with `DD_API_KEY`), in any environment")

    # -- the reports API (reporting/api: `tokenwatch reports serve`) -----------------------
    report_keys: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_REPORT_KEYS", None,
        "`name:key,name:key`, from a secret store: the reports API's read keys (the access "
        "log records the name)")
    reports_max_rows: int = _var(
        "TOKENWATCH_REPORTS_MAX_ROWS", 10000,
        "the most rows one page of the reports API returns (a larger `limit` answers 400)")
    reports_query_timeout_s: float = _var(
        "TOKENWATCH_REPORTS_QUERY_TIMEOUT_S", 10.0,
        "how long one reports API query may run, in seconds (beyond: 504)")
    reports_access_log_path: Annotated[Path | None, Blank] = _var(
        "TOKENWATCH_REPORTS_ACCESS_LOG_PATH", None,
        "the reports API's access log on the DuckDB target: a DuckDB file of its own (the "
        "pipeline owns the warehouse file)")

    # -- Tableau (reporting/tableau: `tokenwatch tableau publish`) ---------------------------
    tableau_server_url: Annotated[str | None, Blank] = _var(
        "TOKENWATCH_TABLEAU_SERVER_URL", None,
        "Tableau Server or Cloud to publish the extracts to (`https://...`); unset: no "
        "publishing")
    tableau_site: str = _var(
        "TOKENWATCH_TABLEAU_SITE", "",
        "the Tableau site's content URL (as in `/#/site/<site>/`); empty: the default site")
    tableau_token_name: Annotated[str | None, Blank] = _var(
        "TOKENWATCH_TABLEAU_TOKEN_NAME", None, "the personal access token's name")
    tableau_token_secret: Annotated[SecretStr | None, Blank] = _var(
        "TOKENWATCH_TABLEAU_TOKEN_SECRET", None,
        "the personal access token's secret, from a secret store")
    tableau_project: Annotated[str, Blank] = _var(
        "TOKENWATCH_TABLEAU_PROJECT", "tokenwatch",
        "the Tableau project the extracts are published to (created when missing)")

    _invalid: dict[str, str] = PrivateAttr(default_factory=dict)

    # -- validation: today's messages ------------------------------------------------------
    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if value not in ENVIRONMENTS:
            raise ValueError(f"TOKENWATCH_ENV must be 'local' or 'prod', got {value!r}")
        return value

    @field_validator("warehouse", mode="before")
    @classmethod
    def _warehouse(cls, value: Any) -> Any:
        if value is not None and value not in WAREHOUSES:
            raise ValueError(f"TOKENWATCH_WAREHOUSE must be one of {', '.join(WAREHOUSES)}, "
                             f"got {value!r}")
        return value

    @field_validator("max_body_bytes", mode="before")
    @classmethod
    def _max_body_bytes(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise PydanticUseDefault()
            value = _integer("TOKENWATCH_MAX_BODY_BYTES", value)
        if value < 1:
            raise ValueError(f"TOKENWATCH_MAX_BODY_BYTES must be at least 1, got {value}")
        return value

    @field_validator("timestamp_max_ahead_s", mode="before")
    @classmethod
    def _max_ahead(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise PydanticUseDefault()
            if not value.isdigit():
                raise ValueError("TOKENWATCH_TIMESTAMP_MAX_AHEAD_S must be a whole number of "
                                 f"seconds, got {value!r}")
            return int(value)
        return value

    @field_validator("timestamp_min", mode="before")
    @classmethod
    def _timestamp_min(cls, value: Any) -> Any:
        if isinstance(value, str):
            raw = value.strip()
            if not raw:
                raise PydanticUseDefault()
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                raise ValueError(f"TOKENWATCH_TIMESTAMP_MIN is not an ISO-8601 timestamp: "
                                 f"{raw!r}") from None
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @field_validator("stream_shards", mode="before")
    @classmethod
    def _stream_shards(cls, value: Any) -> Any:
        if isinstance(value, str) and not (value.isdigit() and int(value) >= 1):
            raise ValueError(f"TOKENWATCH_STREAM_SHARDS must be a positive integer, "
                             f"got {value!r}")
        return value

    @field_validator("checkpoint_retention_days", "dd_dogstatsd_port", "snowflake_port",
                     "dbt_threads", "wh_pg_port", "trace_agent_port", mode="before")
    @classmethod
    def _integers(cls, value: Any, info) -> Any:
        if isinstance(value, str):
            if value == "" and info.field_name in ("dd_dogstatsd_port", "snowflake_port",
                                                   "trace_agent_port"):
                raise PydanticUseDefault()  # as ever: an empty port is no port
            return _integer(env_var(info.field_name), value)
        return value

    @field_validator("partitions_start", mode="before")
    @classmethod
    def _partitions_start(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None  # empty: the default, derived from the data
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"TOKENWATCH_PARTITIONS_START must be a day (YYYY-MM-DD), "
                                 f"got {value!r}") from None
        return value

    @field_validator("dbt_persist_docs", mode="before")
    @classmethod
    def _persist_docs(cls, value: Any) -> Any:
        if isinstance(value, str):  # as dbt_project.yml reads it
            return value.lower() in ("true", "1", "yes")
        return value

    @field_validator("dd_site", mode="before")
    @classmethod
    def _dd_site(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not DD_SITE.fullmatch(value):
                raise ValueError(f"DD_SITE must be a Datadog site such as datadoghq.eu, "
                                 f"got {value!r}")
        return value

    @field_validator("dd_api_host", mode="before")
    @classmethod
    def _dd_api_host(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() \
                and not value.strip().startswith(("http://", "https://")):
            raise ValueError(f"TOKENWATCH_DD_API_HOST must be an http(s) URL, "
                             f"got {value.strip()!r}")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _defer_invalid(cls, data: Any, handler):
        """A bad value raises when its setting is read, not when the object is built."""
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            by_key = {f.validation_alias: name for name, f in cls.model_fields.items()}
            invalid: dict[str, str] = {}
            for error in exc.errors():
                key = error["loc"][0] if error["loc"] else None
                name = by_key.get(key, key)
                if name not in cls.model_fields or name in invalid:
                    raise
                cause = (error.get("ctx") or {}).get("error")
                invalid[name] = (str(cause) if isinstance(cause, ValueError)
                                 else f"{env_var(name)}: {error['msg']}, got {error['input']!r}")
            bad_keys = {key for key, name in by_key.items() if name in invalid} | set(invalid)
            obj = handler({k: v for k, v in data.items() if k not in bad_keys})
            obj._invalid = invalid
            return obj

    def __getattribute__(self, name: str) -> Any:
        if name in _FIELDS:
            private = object.__getattribute__(self, "__pydantic_private__") or {}
            if name in private.get("_invalid", ()):
                raise ValueError(private["_invalid"][name])
        return super().__getattribute__(name)

    def is_set(self, name: str) -> bool:
        """Whether the environment gives setting ``name`` a non-empty value."""
        return name in self.model_fields_set and bool(getattr(self, name))


_FIELDS = frozenset(Settings.model_fields)


def _integer(env: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{env} must be an integer, got {raw!r}") from None


def env_var(name: str) -> str:
    """The environment variable of setting ``name`` (a field of :class:`Settings`)."""
    return Settings.model_fields[name].validation_alias


def env_vars() -> dict[str, str]:
    """Every setting's environment variable, by field name."""
    return {name: env_var(name) for name in Settings.model_fields}


def settings() -> Settings:
    """The settings as the environment gives them now: a change to the environment (as tests
    make with monkeypatch) is seen by the next call. The (frozen) object is reused while the
    variables it reads keep their values."""
    return _settings_for(tuple(os.environ.get(name) for name in _ENV_NAMES))


_ENV_NAMES = tuple(env_vars().values())


@contextlib.contextmanager
def setting_as(name: str, value: str) -> Iterator[None]:
    """Setting ``name``'s variable set to ``value`` for the block, then as it was: for a
    command that checks another environment than the shell's (``tokenwatch doctor --env``)."""
    variable = env_var(name)
    before = os.environ.get(variable)
    os.environ[variable] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


@functools.lru_cache(maxsize=16)
def _settings_for(values: tuple[str | None, ...]) -> Settings:
    return Settings()


def secret(value: SecretStr | None) -> str | None:
    """The plain text of a secret setting (None stays None)."""
    return value.get_secret_value() if value is not None else None


# -- derived settings: what the call sites read ------------------------------------------


def project_root() -> Path:
    """The source checkout when running from one, else the current directory."""
    if (_PACKAGE_ROOT / "pyproject.toml").is_file():
        return _PACKAGE_ROOT
    return Path.cwd()


def home() -> Path:
    """``TOKENWATCH_HOME``: local state (private PostgreSQL, stack endpoints, DuckDB warehouse);
    default ``<repo>/.tokenwatch``, created private (0700) when missing."""
    configured = settings().home
    path = configured if configured else project_root() / ".tokenwatch"
    if not path.exists():  # private: the warehouse, its WAL, the stack's files live here
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)  # (as root, pgserver opens it for its own user when it starts)
    return path


def audit_pack_dir() -> Path:
    """``TOKENWATCH_AUDIT_PACK_DIR``, default ``$TOKENWATCH_HOME/audit-packs``."""
    return settings().audit_pack_dir or home() / "audit-packs"


def env_name() -> str:
    """``TOKENWATCH_ENV``: ``local`` (default) or ``prod``."""
    return settings().env


def api_keys() -> frozenset[str]:
    """``TOKENWATCH_API_KEYS``: comma-separated bearer keys allowed to write."""
    return frozenset(k.get_secret_value() for k in settings().api_keys)


def read_keys() -> frozenset[str]:
    """``TOKENWATCH_READ_KEYS``: comma-separated bearer keys allowed to read (write keys may
    read too)."""
    return frozenset(k.get_secret_value() for k in settings().read_keys)


def database_name() -> str:
    """``TOKENWATCH_PG_DATABASE``: the state service's database when no DSN names one."""
    return settings().pg_database


def pg_dsn() -> str | None:
    """``TOKENWATCH_PG_DSN``: the admin's connection string, or None."""
    return secret(settings().pg_dsn)


def service_pool_size() -> int:
    """``TOKENWATCH_SERVICE_POOL_SIZE``: each state-service worker's connection pool."""
    return settings().service_pool_size


def service_write_groups() -> int:
    """``TOKENWATCH_SERVICE_WRITE_GROUPS``: each state-service worker's writes in flight."""
    return settings().service_write_groups


def max_body_bytes() -> int:
    """``TOKENWATCH_MAX_BODY_BYTES``: the largest request body the service reads (default
    512 KiB; a batch of 1000 items of typical size is about 300 KB)."""
    return settings().max_body_bytes


def record_time_window(now=None) -> tuple:
    """``(earliest, latest)``, the plausible range of a record's timestamps at ingestion (a
    wallet event's ``event_time``, a log's ``request_time`` or ``timestamp``): from
    ``TOKENWATCH_TIMESTAMP_MIN`` (ISO-8601, default ``2000-01-01T00:00:00Z``; without an offset,
    UTC) to ``now`` (default: the current time) plus ``TOKENWATCH_TIMESTAMP_MAX_AHEAD_S`` seconds
    (default 86400: a day of clock skew). A record outside it is quarantined."""
    s = settings()
    earliest = s.timestamp_min
    latest = (now or datetime.now(UTC)) + timedelta(seconds=s.timestamp_max_ahead_s)
    if earliest >= latest:
        raise ValueError(f"TOKENWATCH_TIMESTAMP_MIN ({earliest.isoformat()}) is not before now "
                         f"plus TOKENWATCH_TIMESTAMP_MAX_AHEAD_S ({latest.isoformat()})")
    return earliest, latest


#: The chain key used when none is configured in ``TOKENWATCH_ENV=local``: public, so rows
#: sealed with it are tamper evident against edits, not against someone who reads this file.
LOCAL_CHAIN_KEY_ID = "local-dev"
LOCAL_CHAIN_KEY = b"tokenwatch local development chain key (public, not a secret)"


def chain_keys() -> tuple[str, dict[str, bytes]]:
    """``TOKENWATCH_CHAIN_KEYS`` (``id:secret,id:secret``: every key that sealed rows, old ones
    kept for verification) and ``TOKENWATCH_CHAIN_KEY_ID`` (the one new rows are sealed with;
    default: the last listed). Returns (current id, {id: secret}). Locally, with none set,
    the public development key; in prod a missing key is an error."""
    s = settings()
    raw = secret(s.chain_keys)
    if not raw:
        if s.env == "prod":
            raise ValueError("TOKENWATCH_CHAIN_KEYS is not set: the transition log's MACs need "
                             "a secret key in prod (id:secret, from a secret store)")
        return LOCAL_CHAIN_KEY_ID, {LOCAL_CHAIN_KEY_ID: LOCAL_CHAIN_KEY}
    keys: dict[str, bytes] = {}
    for item in raw.split(","):
        key_id, sep, key = item.strip().partition(":")
        if not sep or not key_id or len(key) < 16:
            raise ValueError("TOKENWATCH_CHAIN_KEYS must be id:secret pairs separated by commas,"
                             " each secret at least 16 characters")
        keys[key_id] = key.encode()
    current = s.chain_key_id or list(keys)[-1]
    if current not in keys:
        raise ValueError(f"TOKENWATCH_CHAIN_KEY_ID {current!r} is not in TOKENWATCH_CHAIN_KEYS")
    return current, keys
