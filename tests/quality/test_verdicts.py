"""The gate's verdicts in the warehouse (quality/verdicts.py) on each target: the latest
evaluation of a day wins, a day never evaluated is ``unchecked`` (not published), and a
withheld day names the checks that failed."""

from __future__ import annotations

from datetime import date

import pytest

from quality import verdicts

D1, D2, D3 = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)


@pytest.mark.parametrize("target", ["duckdb", "postgres", "snowflake"])
def test_latest_verdict_per_day(warehouse_factory, target: str) -> None:
    wh = warehouse_factory(target)
    assert verdicts.latest(wh) == {}  # no table yet: nothing evaluated, nothing published
    assert verdicts.published_days(wh) == set()
    recorded = verdicts.record(wh, {D1: [("a:kpi_suite", True), ("b:pan", True)],
                                    D2: [("a:kpi_suite", False), ("b:pan", True)]}, "run-1")
    assert [v.status for v in recorded] == ["passed", "withheld"]
    # D1 re-evaluated later and failed: the newer verdict wins; D2 fixed and re-run
    verdicts.record(wh, {D1: [("a:kpi_suite", True), ("b:pan", False)],
                         D2: [("a:kpi_suite", True), ("b:pan", True)]}, "run-2")
    found = verdicts.latest(wh, [D1, D2, D3])
    assert found[D1].status == "withheld" and found[D1].failed_checks == ("b:pan",)
    assert found[D1].run_id == "run-2"
    assert found[D2].status == "passed" and found[D2].failed_checks == ()
    assert found[D3].status == "unchecked" and not found[D3].published
    assert verdicts.published_days(wh) == {D2}
    # history is kept: four rows, two per day
    assert wh.query(f"select count(*) from {verdicts.TABLE}")[0][0] == 4


def test_a_day_with_no_check_selected_is_not_recorded(warehouse_factory) -> None:
    wh = warehouse_factory("duckdb")
    assert verdicts.record(wh, {D1: []}, "run-1") == []
    assert verdicts.latest(wh, [D1])[D1].status == "unchecked"
