"""Where a dbt model is in the warehouse: ``schema.table`` from dbt's manifest.

The schema depends on dbt's base schema (``TOKENWATCH_DBT_SCHEMA``: ``analytics_wallet``, ...);
the database is the connection's own, as everywhere a mart is read.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from tokenwatch import kpis


@cache
def _nodes(project_dir: str) -> dict:
    path = Path(project_dir) / "target" / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (or `dbt parse` in "
                                "dbt_project/)")
    return {key: node for key, node in json.loads(path.read_text())["nodes"].items()
            if node.get("resource_type") == "model"}


def nodes() -> dict:
    return _nodes(str(kpis.dbt_project_dir()))


def relation(model: str) -> str:
    node = nodes().get(f"model.tokenwatch.{model}")
    if node is None:
        raise KeyError(f"no dbt model named {model!r} in the manifest")
    return f"{node['schema']}.{node['alias']}"


def built_marts() -> list[str]:
    """The marts whose rows carry ``transformed_at`` (when dbt last wrote them)."""
    return sorted(relation(node["name"]) for node in nodes().values()
                  if node["original_file_path"].startswith("models/marts/")
                  and "transformed_at" in node.get("columns", {}))
