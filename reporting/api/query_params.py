"""A query as a request states it: the URL's parameters (GET) or a JSON body (POST), both made
into one ``reporting.semantic.Query``.

URL syntax (documented in the OpenAPI):

* ``metrics=a,b``, ``group_by=wallet,metric_time``, ``order_by=-api_requests,wallet``
  (``-``: descending): comma-separated names;
* ``where=<dimension>:<operator>:<value>``, repeated for several conditions (all must hold).
  Operators: ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``in``, ``not_in`` (or ``not in``);
  ``in`` and ``not_in`` take values separated by ``|``:
  ``where=wallet:in:apple_pay|google_pay&where=network:=:visa``. Only the first two colons
  split, so a value may hold colons. A value is compared as text; ``metric_time`` may be
  filtered too (``where=metric_time:>=:2026-11-03``).
* ``start`` / ``end``: days (``YYYY-MM-DD``), ``metric_time >= start`` and ``< end``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from reporting.semantic import GRAINS, OPERATORS, Filter, Query, SemanticError

Grain = Literal["hour", "day", "week", "month", "quarter", "year"]
Operator = Literal["=", "!=", ">", ">=", "<", "<=", "in", "not in", "not_in"]
Scalar = str | int | float
assert set(Grain.__args__) == set(GRAINS)
URL_OPERATORS = (*OPERATORS, "not_in")


def _iso_day(value):
    """A day as JSON gives it: ``YYYY-MM-DD`` text only (not a number of seconds)."""
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("a day is text, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("a day is YYYY-MM-DD") from None


Day = Annotated[date | None, BeforeValidator(_iso_day)]


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    dimension: str = Field(min_length=1, max_length=200, examples=["wallet"])
    op: Operator = Field(examples=["in"])
    value: Scalar | list[Scalar] = Field(examples=[["apple_pay", "google_pay"]])


class QueryBody(BaseModel):
    """``POST /v1/query``: the same fields as the GET's parameters, as JSON (strict: a number
    is not a day, a string is not a number)."""
    model_config = ConfigDict(extra="forbid", strict=True)
    metrics: list[str] = Field(min_length=1, max_length=20, examples=[["api_requests"]])
    group_by: list[str] = Field(default=[], max_length=20,
                                examples=[["wallet", "metric_time"]])
    grain: Grain = "day"
    where: list[Condition] = Field(default=[], max_length=50)
    order_by: list[str] = Field(default=[], max_length=20)
    limit: int | None = Field(default=None, ge=1)
    cursor: str | None = Field(default=None, max_length=1000)
    start: Day = None
    end: Day = None


def names(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _op(op: str) -> str:
    return "not in" if op == "not_in" else op


def parse_where(items: list[str]) -> tuple[Filter, ...]:
    out = []
    for item in items:
        parts = item.split(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise SemanticError("where", item, [], f"where {item!r} is not "
                                "<dimension>:<operator>:<value> (e.g. wallet:in:apple_pay|"
                                "google_pay)")
        dimension, op, value = parts
        if op not in URL_OPERATORS:
            raise SemanticError("operator", op, URL_OPERATORS)
        op = _op(op)
        out.append(Filter(dimension, op,
                          tuple(value.split("|")) if op in ("in", "not in") else value))
    return tuple(out)


def _check_range(start: date | None, end: date | None) -> None:
    if start and end and start >= end:
        raise SemanticError("range", f"{start}..{end}", [],
                            f"start ({start}) must be before end ({end}): end is exclusive")


def from_url(metrics: str, group_by: str | None, grain: str, where: list[str],
             order_by: str | None, start: date | None, end: date | None) -> Query:
    _check_range(start, end)
    return Query(metrics=names(metrics), group_by=names(group_by), grain=grain,
                 where=parse_where(where), order_by=names(order_by), start=start, end=end)


def from_body(body: QueryBody) -> Query:
    _check_range(body.start, body.end)
    return Query(metrics=tuple(body.metrics), group_by=tuple(body.group_by), grain=body.grain,
                 where=tuple(Filter(c.dimension, _op(c.op),
                                    tuple(c.value) if isinstance(c.value, list) else c.value)
                             for c in body.where),
                 order_by=tuple(body.order_by), start=body.start, end=body.end)
