"""The KPI marts' suites on real DuckDB partitions: a good partition passes, and each broken
rule fails alone, naming the expectation, the offending rows (by key) and their values."""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pyarrow as pa
import pytest

from quality import suites
from quality.expectations import SuiteSpec, expect, run_suite
from quality.suites import RowCountTolerance, row_count_bounds
from tokenwatch import wallets

WALLETS = "(values ('apple_pay'), ('google_pay'), ('samsung_pay'), ('acme_wallet')) w(wallet_id)"
MARTS = {
    "provisioning": f"""
        select w.wallet_id, n.network, date '2024-03-01' as request_date, 100 as requests,
            0.9::double as provision_success_rate, 0.7::double as yellow_completion_rate,
            0.8::double as green_share, 0.15::double as yellow_share, 0.05::double as red_share,
            420.5::double as time_to_activate_p95_seconds
        from {WALLETS} cross join (values ('visa'), ('mastercard')) n(network)""",
    "service": f"""
        select w.wallet_id, date '2024-03-01' as activity_date, 1000 as api_requests,
            0.01::double as client_error_rate, 0.002::double as server_error_rate,
            0.012::double as error_rate,
            120.0 as gateway_latency_p50_ms, 300.0 as gateway_latency_p95_ms,
            300.0 as gateway_latency_p99_ms, 320.0 as provisioning_latency_p50_ms,
            900.0 as provisioning_latency_p95_ms, 2500.0 as provisioning_latency_p99_ms,
            cast(null as double) as lambda_duration_p50_ms, 80.0 as lambda_duration_p95_ms,
            95.0 as lambda_duration_p99_ms
        from {WALLETS}""",
    "usage": f"""
        select w.wallet_id, date '2024-03-01' as usage_date, 50 as active_tokens,
            20 as transacting_tokens, 90 as authorisations, 0 as authorisations_other_currency,
            1.8::double as authorisations_per_active_token
        from {WALLETS}""",
}
SUITES = {"provisioning": suites.wallet_provisioning_daily,
          "service": suites.wallet_service_daily, "usage": suites.wallet_token_usage_daily}


def partition(mart: str, *mutations: str) -> pa.Table:
    """The mart's good partition, changed by ``mutations`` (SQL on table ``p``)."""
    con = duckdb.connect()
    con.execute(f"create table p as {MARTS[mart]}")
    for sql in mutations:
        con.execute(sql)
    return con.sql("select * from p order by all").to_arrow_table()


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_a_good_partition_passes(mart):
    result = run_suite(partition(mart), SUITES[mart](previous_count=5))
    assert result.passed, result.summary
    assert "all" in result.summary and result.metadata["failed_expectations"] == 0
    assert result.metadata["row_count"] == partition(mart).num_rows
    json.dumps(result.metadata)


BROKEN = [  # mart, mutation, expectation, columns, unexpected values, key of an offending row
    ("provisioning", "update p set provision_success_rate = 1.25 "
     "where wallet_id = 'apple_pay' and network = 'visa'",
     "expect_column_values_to_be_between", ["provision_success_rate"], [1.25],
     {"wallet_id": "apple_pay", "network": "visa", "request_date": "2024-03-01"}),
    ("provisioning", "update p set red_share = -0.5 where wallet_id = 'acme_wallet' "
     "and network = 'mastercard'", "expect_column_values_to_be_between", ["red_share"],
     [-0.5], {"wallet_id": "acme_wallet", "network": "mastercard"}),
    ("provisioning", "update p set wallet_id = null where wallet_id = 'samsung_pay' "
     "and network = 'visa'", "expect_column_values_to_not_be_null", ["wallet_id"], [None],
     {"wallet_id": None, "network": "visa", "request_date": "2024-03-01"}),
    ("provisioning", "update p set request_date = null where wallet_id = 'google_pay' "
     "and network = 'visa'", "expect_column_values_to_not_be_null", ["request_date"], [None],
     {"wallet_id": "google_pay", "network": "visa", "request_date": None}),
    ("provisioning", "update p set wallet_id = 'shady_pay' where wallet_id = 'acme_wallet' "
     "and network = 'visa'", "expect_column_values_to_be_in_set", ["wallet_id"],
     ["shady_pay"], {"wallet_id": "shady_pay", "network": "visa"}),
    ("provisioning", "insert into p select * from p where wallet_id = 'apple_pay' "
     "and network = 'visa'", "expect_compound_columns_to_be_unique",
     ["wallet_id", "network", "request_date"],
     [{"wallet_id": "apple_pay", "network": "visa", "request_date": "2024-03-01"}] * 2,
     {"wallet_id": "apple_pay", "network": "visa"}),
    ("provisioning", "update p set time_to_activate_p95_seconds = -1 "
     "where wallet_id = 'google_pay' and network = 'visa'",
     "expect_column_values_to_be_between", ["time_to_activate_p95_seconds"], [-1.0],
     {"wallet_id": "google_pay", "network": "visa"}),
    ("usage", "update p set authorisations_per_active_token = -0.5 "
     "where wallet_id = 'samsung_pay'", "expect_column_values_to_be_between",
     ["authorisations_per_active_token"], [-0.5], {"wallet_id": "samsung_pay"}),
    ("service", "update p set error_rate = 1.5 where wallet_id = 'google_pay'",
     "expect_column_values_to_be_between", ["error_rate"], [1.5],
     {"wallet_id": "google_pay", "activity_date": "2024-03-01"}),
    ("service", "update p set gateway_latency_p95_ms = 100 where wallet_id = 'samsung_pay'",
     "expect_column_pair_values_a_to_be_greater_than_b",
     ["gateway_latency_p95_ms", "gateway_latency_p50_ms"], [[100.0, 120.0]],
     {"wallet_id": "samsung_pay", "gateway_latency_p50_ms": 120.0,
      "gateway_latency_p95_ms": 100.0}),
    ("service", "update p set provisioning_latency_p99_ms = 899.5 where wallet_id = 'apple_pay'",
     "expect_column_pair_values_a_to_be_greater_than_b",
     ["provisioning_latency_p99_ms", "provisioning_latency_p95_ms"], [[899.5, 900.0]],
     {"wallet_id": "apple_pay", "provisioning_latency_p99_ms": 899.5}),
    ("service", "insert into p select * from p where wallet_id = 'acme_wallet'",
     "expect_compound_columns_to_be_unique", ["wallet_id", "activity_date"],
     [{"wallet_id": "acme_wallet", "activity_date": "2024-03-01"}] * 2,
     {"wallet_id": "acme_wallet"}),
    ("usage", "update p set transacting_tokens = 51 where wallet_id = 'google_pay'",
     "expect_column_pair_values_a_to_be_greater_than_b",
     ["active_tokens", "transacting_tokens"], [[50, 51]],
     {"wallet_id": "google_pay", "usage_date": "2024-03-01", "transacting_tokens": 51}),
    ("usage", "update p set authorisations = -3 where wallet_id = 'acme_wallet'",
     "expect_column_values_to_be_between", ["authorisations"], [-3],
     {"wallet_id": "acme_wallet", "authorisations": -3}),
    ("usage", "update p set usage_date = null where wallet_id = 'apple_pay'",
     "expect_column_values_to_not_be_null", ["usage_date"], [None],
     {"wallet_id": "apple_pay", "usage_date": None}),
]


@pytest.mark.parametrize(("mart", "mutation", "expectation", "columns", "values", "row"),
                         BROKEN, ids=[f"{b[0]}-{b[2]}-{'-'.join(b[3])}" for b in BROKEN])
def test_each_broken_rule_fails_alone_with_its_rows_and_values(mart, mutation, expectation,
                                                               columns, values, row):
    result = run_suite(partition(mart, mutation), SUITES[mart]())
    assert not result.passed
    assert [(f.expectation, list(f.columns)) for f in result.failed] == [(expectation, columns)]
    failure = result.metadata["failures"][0]
    assert failure["expectation"] == expectation and failure["columns"] == columns
    assert failure["unexpected_count"] == len(values)
    assert failure["partial_unexpected_list"] == values
    assert any(row.items() <= offending.items() for offending in failure["unexpected_rows"]), (
        failure["unexpected_rows"])
    assert expectation in result.summary and f"{len(values)} rows" in result.summary
    assert result.metadata["failed_expectations"] == 1
    json.dumps(result.metadata)  # straight into Dagster metadata


def test_a_rate_out_of_range_reports_the_observed_min_and_max():
    result = run_suite(partition("provisioning", "update p set green_share = 1.7 "
                                 "where network = 'visa' and wallet_id = 'apple_pay'",
                                 "update p set green_share = -0.2 where network = 'mastercard' "
                                 "and wallet_id = 'apple_pay'"),
                       suites.wallet_provisioning_daily())
    (failure,) = result.failed
    assert failure.observed_value == {"min": -0.2, "max": 1.7}
    assert sorted(failure.partial_unexpected_list) == [-0.2, 1.7]
    assert failure.kwargs["min_value"] == 0 and failure.kwargs["max_value"] == 1


def test_decimal_columns_as_postgres_returns_them_are_checked_too():
    result = run_suite(partition("provisioning", "alter table p alter red_share type decimal(9, 4)",
                                 "update p set red_share = 1.0001 where wallet_id = 'apple_pay' "
                                 "and network = 'mastercard'"),
                       suites.wallet_provisioning_daily())
    (failure,) = result.failed
    assert failure.columns == ("red_share",) and failure.partial_unexpected_list == [1.0001]
    assert failure.observed_value == {"min": 0.05, "max": 1.0001}
    json.dumps(result.metadata)


def test_the_accepted_wallets_are_a_parameter():
    suite = suites.wallet_service_daily(accepted_wallets=["apple_pay", "google_pay"])
    result = run_suite(partition("service"), suite)
    (failure,) = result.failed
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert sorted(failure.partial_unexpected_list) == ["acme_wallet", "samsung_pay"]
    assert failure.kwargs["value_set"] == ["apple_pay", "google_pay"]


NEW_WALLET = "insert into p select * replace ('zeta_pay' as wallet_id) from p " \
             "where wallet_id = 'acme_wallet'"


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_the_gate_accepts_exactly_the_registry(mart, monkeypatch):
    assert run_suite(partition(mart), SUITES[mart]()).passed
    for mutation, wallet in ((NEW_WALLET, "zeta_pay"),
                             (NEW_WALLET.replace("zeta_pay", "shady_pay"), "shady_pay")):
        (failure,) = run_suite(partition(mart, mutation), SUITES[mart]()).failed
        assert failure.expectation == "expect_column_values_to_be_in_set"
        assert set(failure.partial_unexpected_list) == {wallet}
        assert failure.kwargs["value_set"] == sorted(wallets.wallet_ids())
    # onboarding zeta_pay is one more registry entry: its partitions pass, shady_pay's still fail
    monkeypatch.setattr(wallets, "WALLETS",
                        wallets.WALLETS + (wallets.Wallet("zeta_pay", "Zeta Pay", "custom"),))
    result = run_suite(partition(mart, NEW_WALLET), SUITES[mart]())
    assert result.passed, result.summary
    (failure,) = run_suite(partition(mart, NEW_WALLET.replace("zeta_pay", "shady_pay")),
                           SUITES[mart]()).failed
    assert failure.partial_unexpected_list[0] == "shady_pay"
    assert "zeta_pay" in failure.kwargs["value_set"]


def test_a_partition_far_from_the_previous_ones_row_count_fails():
    shrunk = run_suite(partition("usage", "delete from p where wallet_id <> 'apple_pay'"),
                       suites.wallet_token_usage_daily(previous_count=4))
    (failure,) = shrunk.failed
    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.observed_value == 1
    assert (failure.kwargs["min_value"], failure.kwargs["max_value"]) == (2, 8)
    assert "observed 1" in shrunk.summary
    grown = run_suite(partition("provisioning"),
                      suites.wallet_provisioning_daily(previous_count=3))
    assert [f.observed_value for f in grown.failed] == [8]
    first = run_suite(partition("provisioning"), suites.wallet_provisioning_daily())
    assert first.passed, first.summary


@pytest.mark.parametrize(("previous", "tolerance", "bounds"), [
    (None, RowCountTolerance(), (0, None)),  # the first partition: anything goes
    (100, RowCountTolerance(), (50, 200)),
    (7, RowCountTolerance(), (3, 14)),
    (0, RowCountTolerance(), (1, None)),  # no baseline: only the floor
    (4, RowCountTolerance(min_rows=5), (5, None)),
    (10, RowCountTolerance(lower=0.9, upper=1.1, min_rows=2), (9, 11)),
    (100, RowCountTolerance(min_rows=60), (60, 200)),
])
def test_row_count_bounds(previous, tolerance, bounds):
    assert row_count_bounds(previous, tolerance) == bounds


def test_an_empty_partition_after_a_full_one_fails():
    result = run_suite(partition("service", "delete from p"),
                       suites.wallet_service_daily(previous_count=4))
    assert [f.expectation for f in result.failed] == ["expect_table_row_count_to_be_between"]


def test_a_missing_column_fails_naming_it():
    result = run_suite(partition("provisioning", "alter table p drop column red_share"),
                       suites.wallet_provisioning_daily())
    assert not result.passed and "red_share" in result.summary
    assert result.metadata["missing_columns"] == ["red_share"]


def test_column_names_are_bound_in_one_place():
    cols = dataclasses.replace(suites.MartColumns.of("wallet_provisioning_daily"), day="date_day")
    suite = suites.wallet_provisioning_daily(cols=cols)
    assert "date_day" in suite.columns and "request_date" not in suite.columns
    renamed = partition("provisioning", "alter table p rename request_date to date_day")
    assert run_suite(renamed, suite).passed


def test_an_unknown_expectation_type_is_refused_by_name():
    suite = SuiteSpec("bad", (expect("ExpectColumnValuesToBeLovely", column="wallet_id"),))
    with pytest.raises(ValueError, match="ExpectColumnValuesToBeLovely"):
        run_suite(partition("usage"), suite)
