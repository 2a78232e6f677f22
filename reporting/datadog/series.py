"""KPI points to Datadog as gauges, through the ``datadog`` package (v1 series API); a point
may be a count instead (the pipeline's run count: ``type="count"``, over ``COUNT_INTERVAL_S``).

A point is one KPI value of one partition: the partition's start as its timestamp, bounded
tags. Every rule (reporting/datadog/rules.py) is checked for every point before the
first request, so a bad point means nothing was sent. Re-publishing a partition sends the same
payloads in the same order: Datadog keeps the last value for a metric, tag set and timestamp.

Note for prod: Datadog drops points more than an hour old unless Historical Metrics Ingestion
is enabled for the metrics (Metrics Summary, prefix ``tokenwatch.``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from numbers import Real
from typing import Any

from reporting.datadog.catalog import TAG_KEYS
from reporting.datadog.client import connected
from reporting.datadog.rules import metric_problem, tags_problem

BATCH_SIZE = 500  # series per request: far below Datadog's 3.2 MB payload limit
EARLIEST = 946_684_800  # 2000-01-01: anything earlier is not a partition of ours
LATEST = 10_000_000_000  # beyond this, the timestamp is in milliseconds, not seconds
TYPES = ("gauge", "count")
COUNT_INTERVAL_S = 60  # a count's interval (what .as_rate() divides by); .as_count() sums


@dataclass(frozen=True)
class KpiPoint:
    """One KPI value. ``tags`` are "key:value" strings, kept sorted."""

    metric: str
    value: float
    timestamp: int  # the partition's start, epoch seconds
    tags: tuple[str, ...] = ()
    type: str = "gauge"  # gauge | count

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(sorted(self.tags, key=str)))


@dataclass(frozen=True)
class PublishResult:
    points: int
    batches: int
    metrics: tuple[str, ...]  # distinct metric names, sorted
    responses: tuple[Any, ...]  # Datadog's answer to each batch


def _problem(point: Any) -> str | None:
    if not isinstance(point, KpiPoint):
        return f"expected a KpiPoint, got {type(point).__name__}"
    problem = metric_problem(point.metric) or tags_problem(point.tags, TAG_KEYS)
    if problem:
        return problem
    value = point.value
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        return f"value must be a number, got {type(value).__name__}"
    if not math.isfinite(float(value)):
        return f"value must be finite, got {value}"
    if point.type not in TYPES:
        return f"type must be one of {', '.join(TYPES)}, got {point.type!r}"
    ts = point.timestamp
    if isinstance(ts, bool) or not isinstance(ts, int):
        return f"timestamp must be an int (epoch seconds), got {type(ts).__name__}"
    if not EARLIEST <= ts < LATEST:
        return f"timestamp {ts} is not epoch seconds of a partition (milliseconds?)"
    return None


def _where(index: int, point: Any) -> str:
    if isinstance(point, KpiPoint) and not metric_problem(point.metric):
        return f"KPI point #{index} ({point.metric} at {point.timestamp})"
    return f"KPI point #{index}"


def series_payload(points: Iterable[KpiPoint]) -> list[dict[str, Any]]:
    """The v1 series items for ``points``, checked and in a deterministic order.

    Raises ValueError naming the first offending point (a PAN-like value is never echoed)."""
    points = list(points)
    seen: dict[tuple[str, tuple[str, ...], int], int] = {}
    for index, point in enumerate(points):
        problem = _problem(point)
        if problem:
            raise ValueError(f"{_where(index, point)}: {problem}; nothing was sent")
        key = (point.metric, point.tags, point.timestamp)
        if key in seen:
            raise ValueError(f"{_where(index, point)}: same metric, tags and timestamp as point "
                             f"#{seen[key]}; nothing was sent")
        seen[key] = index
    ordered = sorted(points, key=lambda p: (p.metric, p.tags, p.timestamp))
    return [{"metric": p.metric, "type": p.type, "points": [[p.timestamp, float(p.value)]],
             "tags": list(p.tags)} | ({"interval": COUNT_INTERVAL_S} if p.type == "count" else {})
            for p in ordered]


def publish(points: Iterable[KpiPoint], client_options: Mapping[str, Any],
            batch_size: int = BATCH_SIZE) -> PublishResult:
    """Send ``points`` (gauges, or counts); return what was sent and Datadog's answers."""
    series = series_payload(points)
    batches = [series[i:i + batch_size] for i in range(0, len(series), batch_size)]
    responses = []
    with connected(client_options) as dd:
        for number, batch in enumerate(batches, 1):
            try:
                # no host: a re-run from another machine must hit the same time series
                responses.append(dd.Metric.send(metrics=batch, attach_host_name=False,
                                                compress_payload=True))
            except Exception as exc:  # noqa: BLE001 - say how far it got, then re-raise
                done = sum(len(b) for b in batches[:number - 1])
                raise RuntimeError(f"batch {number}/{len(batches)} was refused after {done} "
                                   f"points were accepted ({exc}); publishing again is safe"
                                   ) from exc
    return PublishResult(points=len(series), batches=len(batches),
                         metrics=tuple(sorted({s["metric"] for s in series})),
                         responses=tuple(responses))
