"""The KPI marts' suites: what a partition must satisfy before any of its KPIs is published.

Every column name lives in the ``*Columns`` dataclasses below (defaults follow the dbt marts in
``dbt_project/models/marts/wallet``); bind other names with ``dataclasses.replace``. Each suite
function returns a ``SuiteSpec`` for ``quality.expectations.run_suite``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from quality.expectations import ExpectationSpec, SuiteSpec, expect
from tokenwatch import wallets as wallet_registry


@dataclass(frozen=True)
class ProvisioningDailyColumns:
    wallet_id: str = "wallet_id"
    network: str = "network"
    day: str = "request_date"
    rates: tuple[str, ...] = ("provision_success_rate", "yellow_completion_rate",
                              "green_share", "yellow_share", "red_share")


@dataclass(frozen=True)
class ServiceDailyColumns:
    wallet_id: str = "wallet_id"
    day: str = "activity_date"
    rates: tuple[str, ...] = ("client_error_rate", "server_error_rate", "error_rate")
    #: (p50, p95, p99) column triples that must be ordered p50 <= p95 <= p99
    percentiles: tuple[tuple[str, str, str], ...] = (
        ("gateway_latency_p50_ms", "gateway_latency_p95_ms", "gateway_latency_p99_ms"),
        ("provisioning_latency_p50_ms", "provisioning_latency_p95_ms",
         "provisioning_latency_p99_ms"),
        ("lambda_duration_p50_ms", "lambda_duration_p95_ms", "lambda_duration_p99_ms"))


@dataclass(frozen=True)
class TokenUsageDailyColumns:
    wallet_id: str = "wallet_id"
    day: str = "usage_date"
    active: str = "active_tokens"
    transacting: str = "transacting_tokens"
    counts: tuple[str, ...] = ("active_tokens", "transacting_tokens", "authorisations",
                               "authorisations_other_currency")


@dataclass(frozen=True)
class RowCountTolerance:
    lower: float = 0.5  # at least lower x the previous partition's rows
    upper: float = 2.0  # at most upper x
    min_rows: int = 1  # the floor


def row_count_bounds(previous_count: int | None,
                     tolerance: RowCountTolerance = RowCountTolerance()) -> tuple[int, int | None]:
    """Rows a partition may have, given the previous partition's count.

    No previous partition: anything passes. A previous partition smaller than ``min_rows`` is
    no baseline: only the floor applies. Otherwise ``[lower x previous, upper x previous]``,
    never below ``min_rows`` (so an empty partition after a non-empty one fails)."""
    t = tolerance
    if previous_count is None:
        return 0, None
    if previous_count < t.min_rows:
        return t.min_rows, None
    return (max(t.min_rows, math.floor(previous_count * t.lower)),
            max(t.min_rows, math.ceil(previous_count * t.upper)))


def row_count_expectation(previous_count: int | None,
                          tolerance: RowCountTolerance = RowCountTolerance()) -> ExpectationSpec:
    low, high = row_count_bounds(previous_count, tolerance)
    return expect("ExpectTableRowCountToBeBetween", min_value=low, max_value=high)


def _keys(suite_keys: tuple[str, ...], wallet_id: str, wallets: Iterable[str] | None,
          ) -> list[ExpectationSpec]:
    """Keys not null and unique; ``wallet_id`` in ``wallets``, by default the registry's
    (``tokenwatch/wallets.py``, read when the suite is built): an unregistered wallet fails."""
    specs = [expect("ExpectColumnValuesToNotBeNull", column=c) for c in suite_keys]
    specs.append(expect("ExpectColumnValuesToBeInSet", column=wallet_id,
                        value_set=sorted(set(wallet_registry.wallet_ids() if wallets is None
                                             else wallets))))
    specs.append(expect("ExpectCompoundColumnsToBeUnique", column_list=list(suite_keys)))
    return specs


def _between(columns: Iterable[str], low: float, high: float | None) -> list[ExpectationSpec]:
    return [expect("ExpectColumnValuesToBeBetween", column=c, min_value=low, max_value=high)
            for c in columns]


def wallet_provisioning_daily(accepted_wallets: Iterable[str] | None = None,
                              previous_count: int | None = None,
                              cols: ProvisioningDailyColumns = ProvisioningDailyColumns(),
                              tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """Grain (wallet, network, day); rates in [0, 1]."""
    keys = (cols.wallet_id, cols.network, cols.day)
    return SuiteSpec("wallet_provisioning_daily", tuple(
        _keys(keys, cols.wallet_id, accepted_wallets) + _between(cols.rates, 0, 1)
        + [row_count_expectation(previous_count, tolerance)]), keys)


def wallet_service_daily(accepted_wallets: Iterable[str] | None = None,
                         previous_count: int | None = None,
                         cols: ServiceDailyColumns = ServiceDailyColumns(),
                         tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """Grain (wallet, day); error rates in [0, 1]; latency percentiles p50 <= p95 <= p99."""
    keys = (cols.wallet_id, cols.day)
    ordered = [expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A=high, column_B=low,
                      or_equal=True, ignore_row_if="either_value_is_missing")
               for p50, p95, p99 in cols.percentiles for low, high in ((p50, p95), (p95, p99))]
    return SuiteSpec("wallet_service_daily", tuple(
        _keys(keys, cols.wallet_id, accepted_wallets) + _between(cols.rates, 0, 1) + ordered
        + [row_count_expectation(previous_count, tolerance)]), keys)


def wallet_token_usage_daily(accepted_wallets: Iterable[str] | None = None,
                             previous_count: int | None = None,
                             cols: TokenUsageDailyColumns = TokenUsageDailyColumns(),
                             tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """Grain (wallet, day); counts >= 0; transacting tokens <= active tokens."""
    keys = (cols.wallet_id, cols.day)
    transacting = expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A=cols.active,
                         column_B=cols.transacting, or_equal=True,
                         ignore_row_if="either_value_is_missing")
    return SuiteSpec("wallet_token_usage_daily", tuple(
        _keys(keys, cols.wallet_id, accepted_wallets) + _between(cols.counts, 0, None)
        + [transacting, row_count_expectation(previous_count, tolerance)]), keys)
