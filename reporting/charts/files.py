"""The KPI charts as files: ``<name>.png`` and ``<name>.svg`` per chart in one folder (the
Dagster asset and ``tokenwatch demo`` write ``$TOKENWATCH_HOME/charts``), each replaced whole
(written beside, then renamed), so a reader never opens half a picture."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reporting.charts.kpi import KpiChart, kpi_charts
from reporting.charts.marts import Relation


@dataclass(frozen=True)
class ChartFiles:
    chart: KpiChart
    png: Path
    svg: Path


def _replace(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_charts(charts: list[KpiChart], out_dir: Path) -> list[ChartFiles]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        png, svg = out_dir / f"{chart.name}.png", out_dir / f"{chart.name}.svg"
        _replace(png, chart.png())
        _replace(svg, chart.svg().encode())
        written.append(ChartFiles(chart, png, svg))
    return written


def render_kpi_charts(wh, relation: Relation, out_dir: Path) -> list[ChartFiles]:
    """Every KPI chart of the warehouse ``wh`` (its marts named by ``relation``), written
    under ``out_dir``."""
    return write_charts(kpi_charts(wh, relation), out_dir)
