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
