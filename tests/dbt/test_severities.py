"""One bad raw row is flagged, never a reason for a model not to build.

The world's built warehouse gets raw rows of the kinds ingestion's contract lets through (it
checks shape and types, not vocabularies): a wallet event of a type no one told dbt about, one
from a wallet outside the registry, one dated 1970 by a device clock, and a transition log row
in a state, with a reason code and from a wallet outside the reference seeds. A ``dbt build``
then builds every model, the compliance marts included; the tests that saw the rows warn and
name them; the audit marts show what they found. Before the severities were chosen, the first
row alone failed an error-level staging test and skipped 17 models, audit_exceptions and
audit_daily_summary among them.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from tests.dbt.dbt_runner import duckdb_env, run_dbt
from tests.warehouses import Built, register_loads

COMPLIANCE = ("audit_exceptions", "audit_daily_summary", "audit_token_transitions",
              "audit_token_chains", "audit_quarantine_summary")


def _plant(path) -> str:
    """The bad rows, loaded now (so the incremental models read them); returns the token the
    bogus transition belongs to."""
    with duckdb.connect(str(path)) as con:
        con.execute("set timezone = 'UTC'")
        con.execute("""
            insert into raw.wallet_events
            select * exclude (kind) replace (
                'bad-' || kind as event_id,
                case when kind = 'type' then 'mystery_event' else event_type end as event_type,
                case when kind = 'wallet' then 'unregistered_wallet' else wallet_id end
                    as wallet_id,
                case when kind = 'epoch' then timestamptz '1970-01-01 00:00:00+00'
                     else event_time end as event_time,
                _source_location || '-bad-' || kind as _source_location,
                now() as _loaded_at)
            from (select * from raw.wallet_events where event_type = 'token_used' limit 1),
                 (values ('type'), ('wallet'), ('epoch')) as kinds(kind)""")
        (ref,), = con.execute("select token_ref from raw.token_state_transitions "
                              "order by transition_id desc limit 1").fetchall()
        con.execute("""
            insert into raw.token_state_transitions
            select * replace (
                transition_id + 1000000 as transition_id,
                'bad-transition' as event_id,
                version + 1 as version,
                to_state as from_state,
                'TokenZombie' as to_state,
                'made_up_reason' as reason_code,
                'unregistered_wallet' as wallet_id,
                now() as _loaded_at)
            from raw.token_state_transitions
            where token_ref = ? order by version desc limit 1""", [ref])
        register_loads(con, ["wallet_events", "token_state_transitions"])
    return ref


@pytest.fixture(scope="module")
def bad_build(built_duckdb: Built, tmp_path_factory):
    work = tmp_path_factory.mktemp("dbt-severities")
    path = work / "warehouse.duckdb"
    shutil.copy2(built_duckdb.path, path)
    ref = _plant(path)
    res = run_dbt(["build"], "local", duckdb_env(path), work / "build")
    return res, path, ref


def test_every_model_builds_with_bad_raw_rows(bad_build):
    res, _, _ = bad_build
    assert res.success, res.explain()
    statuses = res.statuses()
    models = {k: v for k, v in statuses.items() if k.startswith("model.")}
    assert models and set(models.values()) == {"success"}, {
        k: v for k, v in models.items() if v != "success"}
    for model in COMPLIANCE:
        assert statuses[f"model.tokenwatch.{model}"] == "success", model


def test_the_tests_that_saw_them_warn(bad_build):
    res, _, _ = bad_build
    warned = {k for k, v in res.statuses().items() if v == "warn"}
    assert any("accepted_values_stg_wallet_stream__wallet_events_event_type" in k
               for k in warned), warned
    assert any("to_state" in k or "_state__state" in k for k in warned), warned
    assert not {k for k, v in res.statuses().items() if v in ("error", "fail", "skipped")}


def test_the_audit_marts_show_what_they_found(bad_build):
    _, path, ref = bad_build
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "select exception_type, source_table, token_ref from "
            "analytics_compliance.audit_exceptions where source_location like '%bad%' "
            "or (token_ref = ? and exception_type = 'illegal_transition')", [ref]).fetchall()
        wallets = {w for (w,) in con.execute(
            "select wallet_id from analytics_wallet.dim_wallet").fetchall()}
        days = con.execute("select min(calendar_date), max(calendar_date) from "
                           "analytics_intermediate.int_calendar_days").fetchone()
    kinds = {(k, t) for k, t, _ in found}
    assert ("implausible_event_time", "wallet_events") in kinds, found
    assert ("illegal_transition", "token_state_transitions") in kinds, found
    assert days[0].year == 2026  # the 1970 event did not stretch the calendar
    assert "unregistered_wallet" in wallets  # dim_wallet shows it, under its id
