"""Grants: dbt grants the compliance role the audit marts and the analyst role nothing (it reads
analytics_published, tests/reporting/test_published.py), on PostgreSQL; locally (DuckDB, or no
roles configured) nothing is granted."""

from __future__ import annotations

from tests.warehouses import Built, rows


def _can_select(built: Built, role: str, relation: str) -> bool:
    (ok,), = rows(built, f"select has_table_privilege('{role}', '{relation}', 'select')")
    return bool(ok)


def _schema_usage(built: Built, role: str, schema: str) -> bool:
    (ok,), = rows(built, f"select has_schema_privilege('{role}', '{schema}', 'usage')")
    return bool(ok)


def test_postgres_grants_per_schema(built_postgres: Built):
    analyst, compliance = built_postgres.roles
    for relation in ("analytics_wallet.wallet_provisioning_daily", "analytics_wallet.dim_wallet",
                     "analytics_lifecycle.dim_token"):
        assert not _can_select(built_postgres, analyst, relation), relation  # unaudited
        assert not _can_select(built_postgres, compliance, relation), relation
    for relation in ("analytics_compliance.audit_exceptions",
                     "analytics_compliance.audit_token_transitions"):
        assert _can_select(built_postgres, compliance, relation), relation
        assert not _can_select(built_postgres, analyst, relation), relation
    for relation in ("analytics_intermediate.int_provisioning_attempts",
                     "analytics_staging.stg_state_service__token_state_transitions"):
        assert not _can_select(built_postgres, analyst, relation), relation
    assert not _schema_usage(built_postgres, analyst, "analytics_wallet")
    assert not _schema_usage(built_postgres, analyst, "analytics_lifecycle")
    assert not _schema_usage(built_postgres, analyst, "analytics_compliance")
    assert _schema_usage(built_postgres, compliance, "analytics_compliance")


def test_duckdb_build_grants_nothing(built_duckdb: Built):
    # the build passed with grants configured per schema: on DuckDB they render empty
    text = (built_duckdb.build.target_path / "manifest.json").read_text()
    import json

    nodes = json.loads(text)["nodes"]
    grants = {n["name"]: n["config"].get("grants") for n in nodes.values()
              if n["resource_type"] == "model"}
    assert grants["wallet_provisioning_daily"] == {}


def test_compliance_marts_are_permanent_tables_on_snowflake(built_duckdb: Built):
    # dbt-snowflake makes transient tables by default: no Fail-safe for the audit marts
    import json

    nodes = json.loads((built_duckdb.build.target_path / "manifest.json").read_text())["nodes"]
    compliance = {n["name"]: n["config"].get("transient") for n in nodes.values()
                  if n["resource_type"] == "model" and n["fqn"][1:3] == ["marts", "compliance"]}
    assert compliance and set(compliance.values()) == {False}, compliance
