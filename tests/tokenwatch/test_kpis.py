"""The KPI contract's reader (``tokenwatch/kpis.py``): what the checkout's dbt project declares,
and a clear error, naming the file, the model and the column, for every kind of bad declaration
(on a copy of the marts' yml)."""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tokenwatch import config, kpis
from tokenwatch.kpis import KpiDeclarationError

WALLET_YML = Path("models/marts/wallet/_wallet__models.yml")
COMPLIANCE_YML = Path("models/marts/compliance/_compliance__models.yml")
SHOWN_WALLET_YML = "dbt_project/models/marts/wallet/_wallet__models.yml"


def copy_project(tmp_path: Path) -> Path:
    """The marts' yml of the checkout's dbt project, under ``tmp_path/dbt_project``."""
    project = tmp_path / "dbt_project"
    source = kpis.dbt_project_dir()
    for path in (source / kpis.MARTS_DIR).rglob("*.yml"):
        target = project / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return project


def edit(project: Path, yml: Path, model: str, column: str | None,
         change: Callable[[dict], None]) -> None:
    """Apply ``change`` to the node of ``model`` (or of its ``column``) in ``yml``."""
    path = project / yml
    document = yaml.safe_load(path.read_text())
    (node,) = [m for m in document["models"] if m["name"] == model]
    if column is not None:
        (node,) = [c for c in node["columns"] if c["name"] == column]
    change(node)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def kpi_of(node: dict) -> dict:
    return node.setdefault("config", {}).setdefault("meta", {}).setdefault("kpi", {})


def test_the_checkout_declares_every_published_kpi():
    contract = kpis.contract()
    assert [m.model for m in contract.marts] == [
        "audit_daily_summary", "wallet_provisioning_daily", "wallet_service_daily",
        "wallet_token_usage_daily"]
    assert [m.model for m in contract.gated] == [
        "wallet_provisioning_daily", "wallet_service_daily", "wallet_token_usage_daily"]
    assert len(contract.metrics) == 15 and len(contract.kpis) == 17
    provisioning = contract.mart("wallet_provisioning_daily")
    assert provisioning.day_column == "request_date"
    assert provisioning.tags == (("wallet_id", "wallet"), ("network", "network"))
    shares = [k for k in provisioning.kpis if k.metric.endswith("decision_share")]
    assert [(k.column, k.tag, k.unit, k.bounds) for k in shares] == [
        (f"{d}_share", f"decision:{d}", "fraction", (0, 1)) for d in ("green", "yellow", "red")]
    assert contract.mart("audit_daily_summary").tags == (("exception_type", "exception_type"),)
    service = contract.mart("wallet_service_daily")
    assert ("error_rate", (0, 1)) in service.bounds  # gated, not published
    assert ("gateway_latency_p50_ms", "gateway_latency_p95_ms",
            "gateway_latency_p99_ms") in service.ordered
    assert contract.mart("wallet_token_usage_daily").ordered == (
        ("transacting_tokens", "active_tokens"),)
    assert provisioning.path == SHOWN_WALLET_YML
    with pytest.raises(KeyError, match="dim_wallet"):
        contract.mart("dim_wallet")


def test_the_declarations_are_read_once(tmp_path):
    assert kpis.contract() is kpis.contract()
    project = copy_project(tmp_path)
    assert kpis.load(project) == kpis.contract()  # equal, and a copy is read on its own


def test_the_reader_imports_nothing_of_ours_but_config_and_not_dbt():
    tree = ast.parse(Path(kpis.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported == {"__future__", "re", "dataclasses", "functools", "pathlib", "yaml",
                        "tokenwatch"}
    from_tokenwatch = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                       and n.module == "tokenwatch" for a in n.names}
    assert from_tokenwatch == {"config"}
    assert kpis.dbt_project_dir() == config.project_root() / "dbt_project"


def _set(key, value):
    return lambda node: kpi_of(node).__setitem__(key, value)


def _drop(key):
    return lambda node: kpi_of(node).pop(key)


BAD = [  # yml, model, column changed, change, the column the error names, the problem
    (WALLET_YML, "wallet_service_daily", "gateway_latency_p50_ms", _set("unit", "ms"),
     "gateway_latency_p50_ms", "unknown unit 'ms'"),
    (WALLET_YML, "wallet_provisioning_daily", "provision_success_rate", _drop("bounds"),
     "provision_success_rate", "has no bounds"),
    (WALLET_YML, "wallet_provisioning_daily", "red_share", _set("bounds", [1, 0]),
     "red_share", "low is above high"),
    (WALLET_YML, "wallet_token_usage_daily", "active_tokens", _set("bounds", [0]),
     "active_tokens", "bounds must be [low, high]"),
    (WALLET_YML, "wallet_token_usage_daily", "active_tokens", _set("bounds", ["zero", None]),
     "active_tokens", "bounds must be numbers or null"),
    (WALLET_YML, "wallet_token_usage_daily", "active_tokens", _set("bounds", [None, None]),
     "active_tokens", "bound nothing"),
    (COMPLIANCE_YML, "audit_daily_summary", "findings", _drop("description"),
     "findings", "no description"),
    (WALLET_YML, "wallet_service_daily", "api_requests",
     _set("metric", "Tokenwatch.Service.Requests"), "api_requests", "tokenwatch.<area>.<kpi>"),
    (WALLET_YML, "wallet_service_daily", "api_requests", _set("units", "requests"),
     "api_requests", "unknown key(s) ['units']"),
    (WALLET_YML, "wallet_service_daily", "api_requests", _set("tag", "wallet:apple_pay"),
     "api_requests", "repeats a tag key"),
    (WALLET_YML, "wallet_service_daily", "api_requests",
     _set("metric", "tokenwatch.provisioning.requests"), "api_requests", "duplicate metric"),
    (WALLET_YML, "wallet_provisioning_daily", "red_share", _drop("tag"),
     "red_share", "duplicate metric 'tokenwatch.provisioning.decision_share'"),
    (WALLET_YML, "wallet_provisioning_daily", "red_share", _set("tag", "decision:green"),
     "red_share", "duplicate metric"),
    (WALLET_YML, "wallet_provisioning_daily", "red_share", _set("unit", "tokens"),
     "red_share", "another unit or description"),
    (WALLET_YML, "wallet_service_daily", None, _set("tags", {"wallet": "wallet"}),
     None, "tag column 'wallet' is not a column of the model's yml"),
    (WALLET_YML, "wallet_service_daily", None, _set("ordered", [["gateway_latency_p50_ms",
                                                                  "gateway_latency_p42_ms"]]),
     None, "ordered column 'gateway_latency_p42_ms' is not a column"),
    (WALLET_YML, "wallet_service_daily", None, _set("bounds", {"error_rate": [2, 1]}),
     "error_rate", "low is above high"),
    (WALLET_YML, "wallet_service_daily", None, _drop("day_column"), None, "no day_column"),
    (WALLET_YML, "wallet_service_daily", None, _set("gated", "yes"), None, "gated must be"),
    (WALLET_YML, "wallet_service_daily", None, lambda n: n["config"].pop("meta"),
     "api_requests", "a KPI column in a model without config: meta: kpi:"),
    (WALLET_YML, "wallet_service_daily", "api_requests",
     lambda n: n.__setitem__("meta", {"kpi": n["config"].pop("meta")["kpi"]}),
     "api_requests", "kpi under meta: dbt 1.11 reads meta under config"),
]


@pytest.mark.parametrize(("yml", "model", "column", "change", "named", "problem"), BAD,
                         ids=[f"{b[2] or b[1]}-{b[5]}" for b in BAD])
def test_a_bad_declaration_names_its_file_and_column(tmp_path, yml, model, column, change,
                                                     named, problem):
    project = copy_project(tmp_path)  # (a copy as is loads: test_the_declarations_are_read_once)
    edit(project, yml, model, column, change)
    with pytest.raises(KpiDeclarationError) as raised:
        kpis.load(project)
    where = f"dbt_project/{yml}: {model}" + (f".{named}" if named else "")
    message = str(raised.value)
    assert message.startswith(where + ":"), message
    assert problem in message, message
    if "duplicate" in problem:  # and where the other declaration is
        assert re.search(r"also dbt_project/models/marts/\w+/_\w+\.yml: \w+\.\w+", message)
