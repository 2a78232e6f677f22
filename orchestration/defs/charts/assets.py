"""The KPI charts as a Dagster asset: rendered from the marts they read (its deps), written as
PNG and SVG under ``$TOKENWATCH_HOME/charts``, and shown on the asset's page in the UI (each
chart a Markdown metadata entry with the image inline, a PNG at 1x recompressed, so the event
stays small).

Not partitioned: a chart covers every day the marts hold, each day the gate did not publish
marked as such (reporting/charts/kpi.py).
"""

import base64

import dagster as dg

from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from reporting.charts import CHART_MARTS

CHARTS_DIR_NAME = "charts"


def _mart_deps() -> list[dg.AssetKey]:
    from orchestration.defs.dbt.assets import TRANSLATOR, manifest

    nodes = manifest()["nodes"]
    return sorted({TRANSLATOR.get_asset_key(nodes[f"model.tokenwatch.{m}"]) for m in CHART_MARTS},
                  key=lambda k: k.to_user_string())


def markdown_image(title: str, png: bytes, caption: str = "") -> str:
    """An image inline in Markdown (a data URI: the UI renders it; no file server needed)."""
    image = f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
    return image + (f"\n\n{caption}" if caption else "")


@dg.asset(key=["reports", "charts"], group_name="reports", deps=_mart_deps(),
          kinds={"python"}, pool=WAREHOUSE_POOL,
          description="The main KPIs as charts (success rate by wallet over days, the "
                      "provisioning funnel, latency percentiles, error rates, token states over "
                      "time), PNG and SVG under $TOKENWATCH_HOME/charts, days the quality gate "
                      "did not publish marked on each; shown here as metadata.")
def kpi_charts(context: dg.AssetExecutionContext,
               warehouse: WarehouseResource) -> dg.MaterializeResult:
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.charts import kpi_charts as build
    from reporting.charts import write_charts
    from reporting.charts.style import PREVIEW_SCALE
    from tokenwatch import config

    out_dir = config.home() / CHARTS_DIR_NAME
    with warehouse.open() as wh:
        charts = build(wh, mart_relation)
    written = write_charts(charts, out_dir)
    metadata: dict = {"charts_dir": dg.MetadataValue.path(str(out_dir))}
    for files in written:
        chart = files.chart
        metadata[chart.name] = dg.MetadataValue.md(markdown_image(
            chart.title, chart.png(PREVIEW_SCALE), f"`{files.png.name}`, `{files.svg.name}`"))
        context.log.info(f"{chart.title}: {files.png} and {files.svg}")
    gate = {day: status for c in charts for day, status in c.gate.items()}
    metadata["days_not_published"] = dg.MetadataValue.json(
        {day: gate[day] for day in sorted(gate)})
    return dg.MaterializeResult(metadata=metadata)


CHART_ASSETS = [kpi_charts]
