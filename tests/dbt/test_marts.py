"""dbt build on DuckDB (local) and PostgreSQL, on the simulated world with faults on: the key
marts must agree with the simulator's summary."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.warehouses import PAN, Built, rows
from tokenwatch import wallets

TARGETS = ["built_duckdb", "built_postgres"]


@pytest.fixture(params=TARGETS)
def built(request) -> Built:
    return request.getfixturevalue(request.param)


def test_build_passes(built: Built):
    statuses = built.build.statuses()
    assert statuses, "dbt build ran nothing"
    bad = {node: s for node, s in statuses.items() if s not in ("success", "pass", "no-op")}
    assert not bad, bad


def test_tokens_per_wallet(built: Built, world):
    got = dict(rows(built, "select wallet_id, count(*) from analytics_lifecycle.dim_token "
                           "group by wallet_id"))
    assert got == world.summary["tokens_per_wallet"]
    got = dict(rows(built, "select wallet_id, tokens_requested from analytics_wallet.dim_wallet "
                           "where has_activity"))
    assert got == world.summary["tokens_per_wallet"]


def test_the_marts_folders_read_each_other_one_way(built: Built):
    """Between the marts' folders (wallet, lifecycle, compliance) every arrow runs one way:
    no folder reads a folder that reads it, directly or not."""
    manifest = json.loads((built.build.target_path / "manifest.json").read_text())
    nodes = manifest["nodes"]

    def folder(node: dict) -> str | None:
        fqn = node.get("fqn", [])
        return fqn[2] if node["resource_type"] == "model" and fqn[1:2] == ["marts"] else None

    edges = {(folder(nodes[p]), folder(n)) for n in nodes.values() if folder(n)
             for p in n["depends_on"]["nodes"] if p in nodes and folder(nodes[p])}
    edges = {(a, b) for a, b in edges if a != b}
    assert ("lifecycle", "wallet") in edges  # dim_wallet reads dim_token
    reach = {a: {b for x, b in edges if x == a} for a, _ in edges}
    for _ in range(3):
        reach = {a: bs | {c for b in bs for c in reach.get(b, ())} for a, bs in reach.items()}
    assert not [a for a, bs in reach.items() if a in bs], sorted(edges)


def test_dim_wallet_agrees_with_dim_token_and_the_registry(built: Built):
    by_token = rows(built, """
        select wallet_id, count(*), sum(case when has_token_requested then 1 else 0 end),
            min(first_seen_at), max(last_seen_at)
        from analytics_lifecycle.dim_token group by wallet_id order by wallet_id""")
    assert by_token and rows(built, """
        select wallet_id, tokens_seen, tokens_requested, first_seen_at, last_seen_at
        from analytics_wallet.dim_wallet where has_activity order by wallet_id""") == by_token
    listed = rows(built, "select wallet_id, display_name, wallet_kind, visa_token_requestor_id, "
                         "mastercard_token_requestor_id from analytics_wallet.dim_wallet "
                         "where is_in_wallet_seed")
    assert sorted(listed) == sorted((w.wallet_id, w.display_name, w.kind, w.visa, w.mastercard)
                                    for w in wallets.WALLETS)
    unlisted = rows(built, "select wallet_kind from analytics_wallet.dim_wallet "
                           "where not is_in_wallet_seed")
    assert set(unlisted) <= {("custom",)}


def test_tokens_per_wallet_and_network(built: Built, world):
    got: dict[str, dict[str, int]] = defaultdict(dict)
    for wallet, network, n in rows(built, "select wallet_id, network, sum(requests) from "
                                          "analytics_wallet.wallet_provisioning_daily "
                                          "group by wallet_id, network"):
        got[wallet][network] = n
    assert got == world.summary["tokens_per_wallet_network"]


def test_final_state_per_wallet(built: Built, world):
    got: dict[str, dict[str, int]] = defaultdict(dict)
    for wallet, state, n in rows(built, "select wallet_id, current_state, count(*) from "
                                        "analytics_lifecycle.dim_token group by 1, 2"):
        got[wallet][state] = n
    assert got == world.summary["final_state_per_wallet"]


def test_transitions_per_state(built: Built, world):
    expected = world.summary["transitions"]
    got = dict(rows(built, "select to_state, count(*) from "
                           "analytics_lifecycle.fct_token_state_transitions group by to_state"))
    assert got == expected["per_to_state"]
    assert sum(got.values()) == expected["total"] == world.summary["service"]["recorded"]


def test_provisioning_successes_and_failures(built: Built, world):
    per_state = world.summary["transitions"]["per_to_state"]
    (successes, failures, requests), = rows(built, """
        select sum(provision_successes), sum(provision_failures), sum(requests)
        from analytics_wallet.wallet_provisioning_daily""")
    # every token of a 3-day world that reached WalletActive did so within 30 days
    assert successes == per_state["WalletActive"]
    assert failures == per_state["ProvisionFailed"]
    assert requests == world.summary["tokens"]
    # the funnel counts the same tokens
    funnel = {(w, s): n for w, s, n in rows(built, "select wallet_id, state, tokens_reached "
                                                   "from analytics_lifecycle.provisioning_funnel")}
    for state in ("TokenRequested", "ProvisionPending", "WalletActive"):
        assert sum(n for (_, s), n in funnel.items() if s == state) == per_state[state]
    final = world.summary["final_state_per_wallet"]
    for wallet, states in final.items():
        reached_active = funnel[(wallet, "WalletActive")]
        assert reached_active == sum(n for s, n in states.items() if s != "ProvisionFailed")


def test_quarantine_counts(built: Built, world):
    expected = world.summary["quarantine_expected"]
    got = dict(rows(built, "select source_table, sum(quarantined_records) from "
                           "analytics_compliance.audit_quarantine_summary group by 1"))
    assert {k: got.get(k, 0) for k in expected if k != "total"} == \
        {k: v for k, v in expected.items() if k != "total"}
    assert sum(got.values()) == expected["total"]
    # per kind of problem, as the simulator injected them
    kinds = {(s, k): n for s, k, n in rows(built, "select source_table, problem_kind, "
                                                  "sum(quarantined_records) from "
                                                  "analytics_compliance.audit_quarantine_summary "
                                                  "group by 1, 2")}
    for kind, n in world.summary["kinesis"]["malformed_per_kind"].items():
        assert kinds.get(("wallet_events", kind), 0) == n, kind


def test_wallet_events_and_api_requests(built: Built, world):
    kinesis = world.summary["kinesis"]
    per_type = dict(rows(built, "select event_type, count(*) from "
                                "analytics_staging.stg_wallet_stream__wallet_events group by 1"))
    assert per_type == kinesis["events_per_type"]
    (auths,), = rows(built, "select sum(authorisations) from "
                            "analytics_wallet.wallet_token_usage_daily")
    assert auths == kinesis["events_per_type"]["token_used"]
    (hourly,), = rows(built, "select sum(authorisations) from "
                             "analytics_wallet.wallet_token_usage_hourly")
    assert hourly == auths
    (api,), = rows(built, "select sum(api_requests) from analytics_wallet.wallet_service_daily")
    assert api == world.summary["s3"]["apigw_logs"]["records"]


def test_audit_finds_exactly_the_planted_problems(built: Built, world):
    recorded = world.summary["service"]["recorded"]
    statuses = dict(rows(built, "select chain_status, count(*) from "
                                "analytics_compliance.audit_token_transitions group by 1"))
    # the one row edited after it was written (conftest._tamper) fails the SQL recomputation
    assert statuses == {"verified": recorded - 1, "row_hash_mismatch": 1}
    found = rows(built, "select exception_type, source_table, column_name, evidence from "
                        "analytics_compliance.audit_exceptions order by 1")
    kinds = [f[0] for f in found]
    # illegal moves were refused by the service (409), so none reached the log
    assert world.summary["service"]["refused_illegal"] > 0
    assert kinds.count("illegal_transition") == 0
    assert kinds.count("missing_token_requested") == 0
    assert kinds.count("token_active_past_expiry") == 0
    assert kinds.count("hash_chain_break") == 1
    # and its token's chain is named, as audit verify would: edited in place (the world has
    # no checkpoints, so the plain chain tells), at the edited row's version
    chains = rows(built, "select chain_verdict, count(*) from "
                         "analytics_compliance.audit_token_chains group by 1")
    assert dict(chains) == {"intact": world.summary["tokens"] - 1, "edited_row": 1}
    (edited,), = rows(built, "select token_version from analytics_compliance.audit_exceptions "
                             "where exception_type = 'edited_row'")
    (broken,), = rows(built, "select token_version from analytics_compliance."
                             "audit_token_transitions where chain_status <> 'verified'")
    assert kinds.count("edited_row") == 1 and edited == broken
    assert not {"deleted_row", "inserted_row", "reordered_rows", "forked_version",
                "whole_chain_rewrite", "token_erased", "checkpoint_mismatch",
                "checkpoint_missing"} & set(kinds)
    pans = [f for f in found if f[0] == "pan_like_value"]
    assert [(p[1], p[2]) for p in pans] == [("wallet_events", "extra_json")]
    assert "1 Luhn-valid" in pans[0][3] and "411111******1111" in pans[0][3]
    assert PAN not in pans[0][3]  # the card number itself never lands in a mart
    (days, types), = rows(built, "select count(distinct calendar_date), "
                                 "count(distinct exception_type) from "
                                 "analytics_compliance.audit_daily_summary")
    (seeded,), = rows(built, "select count(*) from analytics_reference.audit_exception_types")
    assert days >= world.summary["days"] and types == seeded == 17
    (total,), = rows(built, "select sum(findings) from analytics_compliance.audit_daily_summary")
    assert total == len(found)


def test_sources_are_fresh(built_duckdb: Built):
    # the world was just ingested: every source with a freshness rule passes
    from tests.dbt.dbt_runner import run_dbt

    res = run_dbt(["source", "freshness"], "local", built_duckdb.env,
                  built_duckdb.workdir / "freshness")
    assert res.success, res.explain()
    checked = {r.node.name: str(r.status) for r in res.result.results
               if r.node.resource_type == "source"}
    assert {"token_state_transitions", "wallet_events", "apigw_logs", "lambda_logs"} <= \
        set(checked), checked
    assert set(checked.values()) == {"pass"}, checked
