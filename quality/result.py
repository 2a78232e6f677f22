"""What every quality check returns: passed or not, one readable line, and what was observed.

``metadata`` holds only JSON-safe values (str, int, float, bool, None, lists and dicts of them),
so it can go straight into a Dagster ``AssetCheckResult(metadata=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

#: How many offending rows or values a result carries at most.
MAX_EXAMPLES = 20


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result on one partition."""

    expectation: str  # GX's snake_case type, e.g. expect_column_values_to_be_between
    columns: tuple[str, ...]
    success: bool
    kwargs: dict[str, Any]  # the expectation's arguments (bounds, value sets), JSON-safe
    observed_value: Any = None  # GX's observed value, or {"min": .., "max": ..} of a column
    unexpected_count: int | None = None
    partial_unexpected_list: list[Any] = field(default_factory=list)
    unexpected_rows: list[dict[str, Any]] = field(default_factory=list)  # keys + values
    error: str | None = None  # GX raised while evaluating it

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class CheckResult:
    """A gate's verdict: ``passed``, a one-line ``summary`` and the observed ``metadata``."""

    name: str
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)
    expectations: tuple[ExpectationOutcome, ...] = ()  # GX suites only

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]


def jsonable(value: Any) -> Any:
    """``value`` with numpy/pandas scalars, dates, decimals, tuples and NaN made JSON-safe."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, datetime | date | time):
        return None if _is_missing(value) else value.isoformat()  # NaT is a datetime
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return None if _is_missing(value) else value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    if _is_missing(value):  # pd.NA, pd.NaT
        return None
    return str(value)


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return type(value).__name__ in {"NAType", "NaTType"}
