"""The main KPIs as charts (altair, rendered to PNG and SVG by vl-convert, no browser).

``kpi``: success rate by wallet over days, the provisioning funnel, latency percentiles, error
rates and token states over time, read from the marts (``marts``), the days the quality gate
did not publish marked on every day axis. ``rows``: a chart for any query's answer
(``chart_for_rows``, the reports API's ``Accept: image/png``). ``style``: the wallets' colours
and everything else all charts share. ``files``: the charts written as PNG and SVG.
"""

from reporting.charts.files import ChartFiles, render_kpi_charts, write_charts
from reporting.charts.kpi import KpiChart, kpi_charts
from reporting.charts.marts import CHART_MARTS
from reporting.charts.rows import chart_for_rows

__all__ = ["CHART_MARTS", "ChartFiles", "KpiChart", "chart_for_rows", "kpi_charts",
           "render_kpi_charts", "write_charts"]
