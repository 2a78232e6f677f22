"""Documentation: dbt docs generate works, and every model, seed, snapshot and source column in
the warehouse is described; every model has a primary-key test (unique and not_null)."""

from __future__ import annotations

import json

import pytest

from tests.dbt.dbt_runner import run_dbt
from tests.warehouses import Built


@pytest.fixture(scope="module")
def docs(built_duckdb: Built, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    workdir = tmp_path_factory.mktemp("dbt-docs")
    res = run_dbt(["docs", "generate"], "local", built_duckdb.env, workdir)
    assert res.success, res.explain()
    target = res.target_path
    assert (target / "index.html").is_file()
    return (json.loads((target / "manifest.json").read_text()),
            json.loads((target / "catalog.json").read_text()))


def _ephemeral(node: dict) -> bool:
    return node.get("config", {}).get("materialized") == "ephemeral"


def test_every_node_and_column_is_described(docs):
    manifest, catalog = docs
    missing = []
    documented = {**manifest["nodes"], **manifest["sources"]}
    for unique_id, node in documented.items():
        if node["resource_type"] not in ("model", "seed", "snapshot", "source"):
            continue
        if not node.get("description", "").strip():
            missing.append(unique_id)
        if _ephemeral(node):
            continue  # a CTE inside the models that read it: no relation, no catalog entry
        described = {name.lower() for name, col in node["columns"].items()
                     if col.get("description", "").strip()}
        entry = catalog["nodes"].get(unique_id) or catalog["sources"].get(unique_id)
        assert entry, f"{unique_id} is not in the warehouse's catalog"
        for column in entry["columns"]:
            if column.lower() not in described:
                missing.append(f"{unique_id}.{column}")
    assert not missing, f"undocumented: {missing}"


def test_every_model_has_a_primary_key_test(docs):
    manifest, _ = docs
    tested: dict[str, dict[str, set[str]]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("column_name"):
            continue
        kind = node["test_metadata"]["name"] if node.get("test_metadata") else None
        for parent in node["depends_on"]["nodes"]:
            tested.setdefault(parent, {}).setdefault(node["column_name"], set()).add(kind)
    lacking = []
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] not in ("model", "seed") or _ephemeral(node):
            continue  # an ephemeral model has no rows of its own to test: its readers do
        columns = tested.get(unique_id, {})
        if not any({"unique", "not_null"} <= kinds for kinds in columns.values()):
            lacking.append(unique_id)
    assert not lacking, f"no unique + not_null column: {lacking}"


def test_exposures_cover_the_dashboards(docs):
    manifest, _ = docs
    labels = {e["label"] for e in manifest["exposures"].values()}
    for name in ("Wallet Analytics", "Token Usage", "Provision Success", "Wallet Performance",
                 "Token States", "Provision States", "Compliance"):
        assert any(label.startswith(name) for label in labels), name
    for exposure in manifest["exposures"].values():
        assert exposure["depends_on"]["nodes"], exposure["name"]


def test_the_docs_open_on_the_project_overview(docs):
    """dbt's docs site shows the ``__overview__`` doc block of this project, not dbt's stock
    welcome page: what tokenwatch is, the layers, and where each report lives."""
    manifest, _ = docs
    overview = manifest["docs"].get("doc.tokenwatch.__overview__")
    assert overview, "no {% docs __overview__ %} in dbt_project/models"
    text = overview["block_contents"]
    assert "reporting warehouse for a payment-token platform" in text
    for layer in ("staging", "intermediate", "marts", "sources", "seeds"):
        assert f"| {layer} |" in text, layer
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"
              and n["fqn"][1] == "marts"}
    named = {m for m in models if f"`{m}`" in text}
    assert named == models, f"marts the overview does not place: {sorted(models - named)}"
    for section in ("The KPI declarations", "The quality gate", "Compliance and audit"):
        assert section in text, section
