"""DuckDB (local) and PostgreSQL give identical marts for the same input, row for row."""

from __future__ import annotations

import pytest

from tests.warehouses import Built, rows

#: mart -> its primary key; every column but load times is compared
MARTS = {
    "analytics_wallet.fct_provisioning_attempts": "token_ref",
    "analytics_wallet.wallet_provisioning_daily": "wallet_network_day_id",
    "analytics_wallet.wallet_service_daily": "wallet_day_id",
    "analytics_wallet.wallet_token_usage_daily": "wallet_day_id",
    "analytics_wallet.wallet_token_usage_hourly": "wallet_day_hour_id",
    "analytics_wallet.wallet_comparison": "wallet_id",
    "analytics_wallet.dim_wallet": "wallet_id",
    "analytics_lifecycle.dim_token": "token_ref",
    "analytics_lifecycle.fct_token_state_transitions": "transition_id",
    "analytics_lifecycle.token_state_daily": "day_wallet_state_id",
    "analytics_lifecycle.token_state_durations": "wallet_state_id",
    "analytics_lifecycle.provisioning_funnel": "wallet_step_id",
    "analytics_compliance.audit_token_transitions": "transition_id",
    "analytics_compliance.audit_token_chains": "token_ref",
    "analytics_compliance.audit_exceptions": "exception_id",
    "analytics_compliance.audit_daily_summary": "day_exception_type_id",
}
#: when each warehouse accepted the rows, and when dbt computed them: different every time
LOAD_TIME_COLUMNS = {"loaded_at", "last_loaded_at", "transformed_at"}


def _columns(built: Built, relation: str) -> list[str]:
    schema, table = relation.split(".")
    return [c for (c,) in rows(built, f"""
        select column_name from information_schema.columns
        where table_schema = '{schema}' and table_name = '{table}'
        order by ordinal_position""")]


@pytest.mark.parametrize("relation", sorted(MARTS))
def test_duckdb_and_postgres_marts_are_identical(built_duckdb: Built, built_postgres: Built,
                                                  relation: str):
    columns = _columns(built_duckdb, relation)
    assert columns, f"{relation} has no columns on DuckDB"
    assert columns == _columns(built_postgres, relation)
    compared = ", ".join(c for c in columns if c not in LOAD_TIME_COLUMNS)
    query = f"select {compared} from {relation} order by {MARTS[relation]}"
    left, right = rows(built_duckdb, query), rows(built_postgres, query)
    assert len(left) == len(right)
    assert left, f"{relation} is empty: nothing was compared"
    names = [c for c in columns if c not in LOAD_TIME_COLUMNS]
    for a, b in zip(left, right, strict=True):
        if a != b:
            diff = {n: (x, y) for n, x, y in zip(names, a, b, strict=True) if x != y}
            pytest.fail(f"{relation} row {a[0]!r} differs (duckdb, postgres): {diff}")
