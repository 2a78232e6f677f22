"""The ``reports/charts`` asset: it reads the marts it depends on, writes the charts under
``$TOKENWATCH_HOME/charts`` and shows each on its page in the UI (Markdown metadata with the
PNG inline)."""

from __future__ import annotations

import base64
import re
import shutil

import dagster as dg

from orchestration.definitions import defs
from orchestration.defs.charts.assets import kpi_charts
from orchestration.resources import WarehouseResource
from reporting.charts import png
from tests.warehouses import Built

IMAGE = re.compile(r"!\[(?P<alt>[^\]]+)\]\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)")


def test_the_charts_asset_follows_the_marts_it_reads():
    node = defs.resolve_asset_graph().get(dg.AssetKey(["reports", "charts"]))
    assert {k.to_user_string() for k in node.parent_keys} == {
        "wallet/wallet_provisioning_daily", "wallet/wallet_service_daily",
        "lifecycle/provisioning_funnel", "lifecycle/token_state_daily"}
    assert node.partitions_def is None


def test_the_charts_asset_writes_the_files_and_shows_the_images(built_duckdb: Built, tmp_path,
                                                                monkeypatch):
    home = tmp_path / "home"
    warehouse = tmp_path / "warehouse.duckdb"  # a copy: never the fixture's file
    shutil.copy(built_duckdb.path, warehouse)
    monkeypatch.setenv("TOKENWATCH_HOME", str(home))
    monkeypatch.setenv("TOKENWATCH_WAREHOUSE", "duckdb")
    monkeypatch.setenv("TOKENWATCH_DUCKDB_PATH", str(warehouse))
    monkeypatch.setenv("TOKENWATCH_DUCKDB_REPLICA_PATH", str(tmp_path / "replica.duckdb"))

    result = dg.materialize([kpi_charts], resources={"warehouse": WarehouseResource()},
                            instance=dg.DagsterInstance.ephemeral())

    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["charts_dir"].value == str(home / "charts")
    names = ["success_rate", "funnel", "latency", "error_rate", "token_states"]
    total = 0
    for name in names:
        markdown = metadata[name].value
        total += len(markdown)
        match = IMAGE.search(markdown)
        assert match, f"{name}: no inline PNG in {markdown[:200]!r}"
        image = base64.b64decode(match["data"])
        width, _ = png.size(image)
        file_width, _ = png.size((home / "charts" / f"{name}.png").read_bytes())
        assert width * 2 == file_width  # the preview is the file at half the scale
        assert (home / "charts" / f"{name}.svg").read_text().lstrip().startswith("<svg")
    assert total < 600_000, f"{total:,} characters of Markdown: too heavy for the UI"
    assert set(metadata["days_not_published"].value.values()) == {"unchecked"}
