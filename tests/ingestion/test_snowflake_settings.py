"""``SnowflakeWarehouse.from_env``: the ``TOKENWATCH_SNOWFLAKE_*`` settings, against a local
fakesnow server (Snowflake's connector over HTTP)."""

from __future__ import annotations

import uuid

import pytest

from ingestion.warehouse.snowflake import SnowflakeWarehouse
from tokenwatch import config


@pytest.fixture
def env(monkeypatch):
    for key in config.SNOWFLAKE_SETTINGS:
        monkeypatch.delenv(config.env_var(f"snowflake_{key}"), raising=False)
    return monkeypatch


def test_from_env_connects_with_the_settings(env, fakesnow_server):
    database = f"TW_{uuid.uuid4().hex[:10].upper()}"
    for key, value in {"ACCOUNT": fakesnow_server["account"], "USER": fakesnow_server["user"],
                       "PASSWORD": fakesnow_server["password"],
                       "HOST": fakesnow_server["host"], "PORT": str(fakesnow_server["port"]),
                       "PROTOCOL": fakesnow_server["protocol"], "DATABASE": database,
                       "ROLE": ""}.items():  # empty: unset, as ever
        env.setenv(f"TOKENWATCH_SNOWFLAKE_{key}", value)
    wh = SnowflakeWarehouse.from_env()
    try:
        assert wh.query("select current_database()")[0][0].upper() == database
    finally:
        wh.close()


def test_from_env_names_what_is_missing(env):
    env.setenv("TOKENWATCH_SNOWFLAKE_USER", "loader")
    with pytest.raises(ValueError) as err:
        SnowflakeWarehouse.from_env()
    assert str(err.value) == (
        "the snowflake warehouse needs TOKENWATCH_SNOWFLAKE_ACCOUNT, TOKENWATCH_SNOWFLAKE_PASSWORD"
        " or TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH to be set")
    env.setenv("TOKENWATCH_SNOWFLAKE_ACCOUNT", "acct")
    env.setenv("TOKENWATCH_SNOWFLAKE_PASSWORD", "pw")
    env.setenv("TOKENWATCH_SNOWFLAKE_PORT", "https")
    with pytest.raises(ValueError, match="TOKENWATCH_SNOWFLAKE_PORT must be an integer, "
                                         "got 'https'"):
        SnowflakeWarehouse.from_env()


def test_a_provisioned_database_and_schemas_are_used_not_created(fakesnow_server):
    # Snowflake checks CREATE privileges before `if not exists`: the loader's and the reports
    # API's roles (deploy/snowflake/bootstrap.sql) may use the database and schemas the
    # bootstrap made but not create any, so once they exist no CREATE DATABASE or CREATE
    # SCHEMA may be issued (the first version issued both on every connection).
    from quality import verdicts
    from reporting.api import access_log

    database = f"TW_{uuid.uuid4().hex[:10].upper()}"
    first = SnowflakeWarehouse.open(database, **fakesnow_server)
    try:
        first.ensure_schema()
        verdicts.ensure_table(first)
        access_log.ensure_table(first)
    finally:
        first.close()

    issued: list[str] = []

    class Recording(SnowflakeWarehouse):
        def execute(self, sql, params=None):
            issued.append(" ".join(sql.lower().split()))
            return super().execute(sql, params)

    again = Recording.open(database, **fakesnow_server)
    try:
        again.ensure_schema()
        verdicts.ensure_table(again)
        access_log.ensure_table(again)
    finally:
        again.close()
    creates = [s for s in issued if s.startswith(("create database", "create schema"))]
    assert creates == [] and issued, issued
