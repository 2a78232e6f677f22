"""The reports API's bodies, as its OpenAPI document describes them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["passed", "withheld", "unchecked"]


class ErrorBody(BaseModel):
    error: str = Field(examples=["unknown_metric"])
    message: str
    kind: str | None = Field(default=None, description="what was unknown: metric, dimension, "
                                                       "grain, operator, order_by, ...")
    name: str | None = Field(default=None, description="the name that was asked")
    allowed: list[str] | None = Field(default=None, description="the names that would do")
    max: int | None = Field(default=None, description="the limit that was exceeded")
    fields: list[dict[str, str]] | None = None


class Metric(BaseModel):
    name: str
    label: str
    description: str
    unit: str
    type: str = Field(description="simple, ratio or derived")
    dimensions: list[str] = Field(description="what it may be grouped and filtered by")
    qualified_dimensions: list[str]
    grains: list[str] = Field(description="the grains of metric_time")
    kpi: str | None = Field(description="the Datadog metric it is published as, if any")
    kpi_tag: str | None


class MetricList(BaseModel):
    metrics: list[Metric]


class Freshness(BaseModel):
    last_load_at: str | None = Field(description="when rows last arrived in the raw layer")
    last_build_at: str | None = Field(description="when dbt last wrote the marts")


class DayVerdict(BaseModel):
    day: str
    status: Status
    failed_checks: list[str]
    evaluated_at: str | None


class Gate(BaseModel):
    status: Status | None = Field(description="the worst verdict of the days covered "
                                              "(unchecked > passed: withheld days are left "
                                              "out)")
    days: list[DayVerdict] = Field(description="every day the answer covers")
    withheld_days: list[str] = Field(description="days the quality gate withheld, in the "
                                     "query's range: left out of the answer (no row, no total "
                                     "counts them) until fixed and re-gated")
    unchecked_days: list[str]
    published: bool = Field(description="true only when every day covered passed the gate")


class Condition(BaseModel):
    dimension: str
    op: str
    value: Any


class AskedQuery(BaseModel):
    metrics: list[str]
    group_by: list[str]
    grain: str
    where: list[Condition]
    order_by: list[str]
    start: str | None
    end: str | None


class QueryAnswer(BaseModel):
    query: AskedQuery
    columns: list[str] = Field(description="group-bys as asked, the metrics, then gate_status "
                                           "when grouped by metric_time")
    rows: list[dict[str, Any]]
    row_count: int
    limit: int
    offset: int
    next_cursor: str | None = Field(description="pass it as cursor for the next page; null "
                                                "on the last")
    units: dict[str, str]
    freshness: Freshness
    gate: Gate


class Timeline(BaseModel):
    token_ref: str
    live: dict[str, Any] | None = Field(description="the state service's current row")
    history: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    events: list[dict[str, Any]]
    events_truncated: bool
    timeline: list[dict[str, Any]]
    warehouse: dict[str, Any]
    freshness: Freshness


class Health(BaseModel):
    status: str
    engine: str
