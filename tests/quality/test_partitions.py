"""Reading a mart partition from DuckDB and PostgreSQL warehouses and gating it end to end:
the previous partition's row count bounds the next one."""

from __future__ import annotations

from datetime import date

import pytest

from quality import suites
from quality.expectations import run_suite
from quality.partitions import previous_partition_count, read_partition
from tokenwatch import wallets

TARGETS = ["duckdb", "postgres"]
MART = "marts.wallet_token_usage_daily"
DAYS = [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 4)]


def _mart(wh) -> None:
    wh.execute("create schema if not exists marts")
    wh.execute(f"create table {MART} (wallet_day_id text, wallet_id text, usage_date date, "
               "active_tokens bigint, transacting_tokens bigint, authorisations bigint, "
               "authorisations_other_currency bigint, authorisations_per_active_token "
               "numeric(18, 6))")
    for n, day in enumerate(DAYS):
        for wallet in wallets.wallet_ids()[: 2 + n]:
            wh.execute(f"insert into {MART} values (%s, %s, %s, %s, %s, %s, %s, %s)",
                       [f"{wallet}-{day}", wallet, day, 10, 4, 9, 0, 0.9])


@pytest.mark.parametrize("target", TARGETS)
def test_a_partition_is_read_with_its_columns_and_gated(warehouse_factory, target):
    wh = warehouse_factory(target)
    _mart(wh)
    df = read_partition(wh, MART, "usage_date", DAYS[1])
    assert list(df["wallet_id"]) == list(wallets.wallet_ids()[:3])
    assert "authorisations_per_active_token" in df.columns and set(df["usage_date"]) == {DAYS[1]}
    assert previous_partition_count(wh, MART, "usage_date", DAYS[0]) is None
    assert previous_partition_count(wh, MART, "usage_date", DAYS[1]) == 2
    assert previous_partition_count(wh, MART, "usage_date", DAYS[2]) == 3  # across a gap
    previous = previous_partition_count(wh, MART, "usage_date", DAYS[1])
    result = run_suite(df, suites.wallet_token_usage_daily(previous_count=previous))
    assert result.passed, result.summary
    wh.execute(f"update {MART} set transacting_tokens = 12 where wallet_id = %s "
               "and usage_date = %s", ["google_pay", DAYS[1]])
    broken = run_suite(read_partition(wh, MART, "usage_date", DAYS[1]),
                       suites.wallet_token_usage_daily(previous_count=previous))
    (failure,) = broken.failed
    assert failure.unexpected_rows == [{"wallet_id": "google_pay", "usage_date": "2024-03-02",
                                        "active_tokens": 10, "transacting_tokens": 12}]


def test_an_unknown_day_column_is_named(warehouse_factory):
    wh = warehouse_factory("duckdb")
    _mart(wh)
    with pytest.raises(ValueError, match="date_day"):
        read_partition(wh, MART, "date_day", DAYS[0])
