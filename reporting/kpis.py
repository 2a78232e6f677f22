"""The KPIs of one day, read from the marts: what the publish asset sends to Datadog.

One query per KPI mart, restricted to the partition's day; each non-null value becomes one
``KpiPoint`` stamped with the day's start (UTC) and tagged with bounded values only. A null
(for example a yellow-completion rate on a day without yellow decisions) is not a zero and is
not sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from reporting.datadog.series import KpiPoint

Relation = Callable[[str], str]  # model name -> the relation to query in this warehouse

#: (mart, date column, tag columns, {metric: column or (column, extra tag)})
KPI_SOURCES: tuple[tuple[str, str, tuple[str, ...], dict[str, str | tuple[str, str]]], ...] = (
    ("wallet_provisioning_daily", "request_date", ("wallet_id", "network"), {
        "tokenwatch.provisioning.requests": "requests",
        "tokenwatch.provisioning.success_rate": "provision_success_rate",
        "tokenwatch.provisioning.yellow_completion_rate": "yellow_completion_rate",
        "tokenwatch.provisioning.time_to_activate_p95_s": "time_to_activate_p95_seconds",
        "tokenwatch.provisioning.decision_share#green": ("green_share", "decision:green"),
        "tokenwatch.provisioning.decision_share#yellow": ("yellow_share", "decision:yellow"),
        "tokenwatch.provisioning.decision_share#red": ("red_share", "decision:red"),
    }),
    ("wallet_service_daily", "activity_date", ("wallet_id",), {
        "tokenwatch.service.requests": "api_requests",
        "tokenwatch.service.error_rate_4xx": "client_error_rate",
        "tokenwatch.service.error_rate_5xx": "server_error_rate",
        "tokenwatch.service.latency_p50_ms": "gateway_latency_p50_ms",
        "tokenwatch.service.latency_p95_ms": "gateway_latency_p95_ms",
        "tokenwatch.service.latency_p99_ms": "gateway_latency_p99_ms",
    }),
    ("wallet_token_usage_daily", "usage_date", ("wallet_id",), {
        "tokenwatch.tokens.active": "active_tokens",
        "tokenwatch.tokens.transacting": "transacting_tokens",
        "tokenwatch.tokens.authorisations_per_active": "authorisations_per_active_token",
    }),
    ("audit_daily_summary", "calendar_date", ("exception_type",), {
        "tokenwatch.audit.exceptions": "findings",
    }),
)
TAG_NAMES = {"wallet_id": "wallet", "network": "network", "exception_type": "exception_type"}
KPI_MARTS = tuple(source[0] for source in KPI_SOURCES)


def day_timestamp(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def kpi_points(query: Callable[[str, list], list[tuple]], relation: Relation, day: date,
               env: str) -> list[KpiPoint]:
    """Every KPI point of ``day``, in a stable order (so re-publishing sends the same)."""
    ts = day_timestamp(day)
    points: list[KpiPoint] = []
    for mart, date_col, tag_cols, metrics in KPI_SOURCES:
        columns = {name: spec if isinstance(spec, str) else spec[0]
                   for name, spec in metrics.items()}
        select = ", ".join([*tag_cols, *columns.values()])
        rows = query(f"select {select} from {relation(mart)} where {date_col} = %s "
                     f"order by {', '.join(tag_cols)}", [day])
        for row in rows:
            tags = [f"env:{env}"] + [f"{TAG_NAMES[c]}:{str(v).lower()}"
                                     for c, v in zip(tag_cols, row, strict=False)]
            values = row[len(tag_cols):]
            for (name, spec), value in zip(metrics.items(), values, strict=True):
                if value is None:
                    continue
                extra = [] if isinstance(spec, str) else [spec[1]]
                points.append(KpiPoint(name.split("#")[0], float(value), ts,
                                       tuple(tags + extra)))
    return points
