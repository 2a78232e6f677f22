"""The KPI marts' suites: what a partition must satisfy before any of its KPIs is published.

What a mart's suite checks comes from its KPI declaration in the dbt marts' yml
(``tokenwatch/kpis.py``): the grain (tag columns and day column), every declared bound (the
published KPIs' and the others the gate checks) and every ordered column list (p50 <= p95 <= p99,
transacting <= active). ``MartColumns`` is that declaration's view by column name (bind other
names with ``dataclasses.replace``). Each suite function returns a ``SuiteSpec`` for
``quality.expectations.run_suite``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from quality.expectations import ExpectationSpec, SuiteSpec, expect
from tokenwatch import kpis
from tokenwatch import wallets as wallet_registry


@dataclass(frozen=True)
class MartColumns:
    """The columns a KPI mart's suite checks: a view of its declaration (``of``)."""
    tags: tuple[str, ...]  # the dimension columns: with the day, the grain
    day: str
    bounds: tuple[tuple[str, float | None, float | None], ...]  # (column, low, high)
    ordered: tuple[tuple[str, ...], ...] = ()  # each list non-decreasing, row by row
    wallet_id: str | None = "wallet_id"  # checked against the wallet registry, when any

    @classmethod
    def of(cls, mart: str) -> MartColumns:
        declared = kpis.contract().mart(mart)
        wallet = next((c for c, key in declared.tags if key == "wallet"), None)
        return cls(declared.tag_columns, declared.day_column,
                   tuple((c, low, high) for c, (low, high) in declared.bounds),
                   declared.ordered, wallet)

    @property
    def keys(self) -> tuple[str, ...]:
        return (*self.tags, self.day)


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


def _bounded(bounds: Iterable[tuple[str, float | None, float | None]]) -> list[ExpectationSpec]:
    return [expect("ExpectColumnValuesToBeBetween", column=c, min_value=low, max_value=high)
            for c, low, high in bounds]


def _ordered(lists: Iterable[tuple[str, ...]]) -> list[ExpectationSpec]:
    return [expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A=high, column_B=low,
                   or_equal=True, ignore_row_if="either_value_is_missing")
            for columns in lists for low, high in zip(columns, columns[1:], strict=False)]


def kpi_suite(mart: str, accepted_wallets: Iterable[str] | None = None,
              previous_count: int | None = None, cols: MartColumns | None = None,
              tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """The suite of a declared KPI mart: keys (tag columns and day) not null and unique, the
    wallet registered; every declared bound; every ordered list non-decreasing; the row count
    near the previous partition's."""
    cols = cols or MartColumns.of(mart)
    keys = cols.keys
    if cols.wallet_id is not None:
        key_specs = _keys(keys, cols.wallet_id, accepted_wallets)
    else:
        key_specs = [expect("ExpectColumnValuesToNotBeNull", column=c) for c in keys] + [
            expect("ExpectCompoundColumnsToBeUnique", column_list=list(keys))]
    return SuiteSpec(mart, tuple(
        key_specs + _bounded(cols.bounds) + _ordered(cols.ordered)
        + [row_count_expectation(previous_count, tolerance)]), keys)


def wallet_provisioning_daily(accepted_wallets: Iterable[str] | None = None,
                              previous_count: int | None = None, cols: MartColumns | None = None,
                              tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """Grain (wallet, network, day); rates in [0, 1]; counts and times >= 0."""
    return kpi_suite("wallet_provisioning_daily", accepted_wallets, previous_count, cols,
                     tolerance)


def wallet_service_daily(accepted_wallets: Iterable[str] | None = None,
                         previous_count: int | None = None, cols: MartColumns | None = None,
                         tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """Grain (wallet, day); error rates in [0, 1]; latency percentiles p50 <= p95 <= p99."""
    return kpi_suite("wallet_service_daily", accepted_wallets, previous_count, cols, tolerance)


def wallet_token_usage_daily(accepted_wallets: Iterable[str] | None = None,
                             previous_count: int | None = None, cols: MartColumns | None = None,
                             tolerance: RowCountTolerance = RowCountTolerance()) -> SuiteSpec:
    """Grain (wallet, day); counts >= 0; transacting tokens <= active tokens."""
    return kpi_suite("wallet_token_usage_daily", accepted_wallets, previous_count, cols,
                     tolerance)
