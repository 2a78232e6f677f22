"""The KPIs of one day, read from the marts: what the publish asset sends to Datadog.

What is published is declared once, in the dbt marts' yml (``tokenwatch/kpis.py`` reads it):
one query per KPI mart, restricted to the partition's day; each non-null value becomes one
``KpiPoint`` stamped with the day's start (UTC) and tagged with bounded values only (the mart's
dimension columns, and a KPI's extra tag such as ``decision:green``). A null (for example a
yellow-completion rate on a day without yellow decisions) is not a zero and is not sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from reporting.datadog.series import KpiPoint
from tokenwatch import kpis

Relation = Callable[[str], str]  # model name -> the relation to query in this warehouse

#: The marts that publish KPIs (the publish asset depends on each).
KPI_MARTS = tuple(mart.model for mart in kpis.contract().marts)


def day_timestamp(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def kpi_points(query: Callable[[str, list], list[tuple]], relation: Relation, day: date,
               env: str) -> list[KpiPoint]:
    """Every KPI point of ``day``, in a stable order (so re-publishing sends the same)."""
    ts = day_timestamp(day)
    points: list[KpiPoint] = []
    for mart in kpis.contract().marts:
        tag_cols = mart.tag_columns
        select = ", ".join([*tag_cols, *(k.column for k in mart.kpis)])
        rows = query(f"select {select} from {relation(mart.model)} where {mart.day_column} = %s "
                     f"order by {', '.join(tag_cols)}", [day])
        for row in rows:
            tags = [f"env:{env}"] + [f"{key}:{str(v).lower()}"
                                     for (_, key), v in zip(mart.tags, row, strict=False)]
            values = row[len(tag_cols):]
            for kpi, value in zip(mart.kpis, values, strict=True):
                if value is None:
                    continue
                extra = [kpi.tag] if kpi.tag else []
                points.append(KpiPoint(kpi.metric, float(value), ts, tuple(tags + extra)))
    return points
