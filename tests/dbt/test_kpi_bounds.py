"""The dbt project holds every declared rate (a KPI or gated column bounded [0, 1] in the marts'
yml, ``tokenwatch/kpis.py``) to its bounds too: the singular test
``tests/assert_rates_within_unit_interval.sql`` lists each one (and some rates that are not
published, of marts that are not KPI marts)."""

from __future__ import annotations

import ast
import re

from tests.tokenwatch.test_kpis import WALLET_YML, copy_project, edit, kpi_of
from tokenwatch import kpis

RATES_TEST = kpis.dbt_project_dir() / "tests" / "assert_rates_within_unit_interval.sql"


def listed_rates() -> set[tuple[str, str]]:
    """(model, column) of every rate the singular test checks: its ``rates`` dict."""
    match = re.search(r"set rates = (\{.*?\}) -%\}", RATES_TEST.read_text(), re.S)
    assert match, f"{RATES_TEST} has no '{{%- set rates = {{...}} -%}}'"
    return {(model, column) for model, columns in ast.literal_eval(match.group(1)).items()
            for column in columns}


def unlisted_rates(contract: kpis.Contract) -> set[tuple[str, str]]:
    declared = {(mart.model, column) for mart in contract.marts
                for column, bounds in mart.bounds if bounds == (0, 1)}
    return declared - listed_rates()


def test_the_rates_test_covers_every_declared_rate():
    assert ("wallet_provisioning_daily", "red_share") in listed_rates()
    assert unlisted_rates(kpis.contract()) == set()


def test_a_declared_rate_the_rates_test_misses_is_found(tmp_path):
    project = copy_project(tmp_path)
    edit(project, WALLET_YML, "wallet_service_daily", None,
         lambda node: kpi_of(node)["bounds"].update(lambda_error_rate=[0, 1]))
    edit(project, WALLET_YML, "wallet_service_daily", None,
         lambda node: node["columns"].append({"name": "lambda_error_rate",
                                              "description": "lambda_errors / invocations."}))
    assert unlisted_rates(kpis.load(project)) == {("wallet_service_daily", "lambda_error_rate")}
