"""A small Great Expectations 1.x runner: one partition, one declarative suite, one verdict.

A suite is plain data (``SuiteSpec``): GX expectation class names with their arguments, plus
the partition's key columns, which identify the offending rows in a failure. ``run_suite``
validates it in an ephemeral context against a pandas data source, one ``ValidationDefinition``
run per suite. GX is imported inside the function: its import costs seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from quality.result import MAX_EXAMPLES, CheckResult, ExpectationOutcome, jsonable

_COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")


@dataclass(frozen=True)
class ExpectationSpec:
    type: str  # a class of great_expectations.expectations, e.g. ExpectColumnValuesToNotBeNull
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        cols: list[str] = []
        for key in _COLUMN_KWARGS:
            value = self.kwargs.get(key)
            cols.extend([value] if isinstance(value, str) else value or [])
        return tuple(cols)


def expect(type_: str, **kwargs: Any) -> ExpectationSpec:
    """``expect("ExpectColumnValuesToNotBeNull", column="wallet_id")``."""
    return ExpectationSpec(type_, kwargs)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    expectations: tuple[ExpectationSpec, ...]
    key_columns: tuple[str, ...] = ()  # shown with every offending row

    @property
    def columns(self) -> set[str]:
        return {c for e in self.expectations for c in e.columns} | set(self.key_columns)


def run_suite(data: pd.DataFrame | pa.Table, suite: SuiteSpec,
              max_examples: int = MAX_EXAMPLES) -> CheckResult:
    """Validate one partition (a DataFrame or Arrow table) against ``suite``."""
    df = data.to_pandas() if isinstance(data, pa.Table) else data
    missing = sorted(suite.columns - set(df.columns))
    if missing:
        return CheckResult(suite.name, False, f"{suite.name}: the partition lacks column(s) "
                           f"{', '.join(missing)}", {"missing_columns": missing,
                                                    "columns": [str(c) for c in df.columns]})
    results = _validate(df, suite, max_examples)
    outcomes = tuple(_outcome(r, df, max_examples) for r in results)
    failed = [o for o in outcomes if not o.success]
    metadata: dict[str, Any] = {
        "row_count": len(df), "expectations": len(outcomes), "failed_expectations": len(failed),
        "failures": [o.as_dict() for o in failed],
        "results": [{"expectation": o.expectation, "columns": list(o.columns),
                     "success": o.success, "unexpected_count": o.unexpected_count,
                     "observed_value": jsonable(o.observed_value)} for o in outcomes]}
    return CheckResult(suite.name, not failed, _summary(suite.name, len(df), outcomes, failed),
                       metadata, outcomes)


def _validate(df: pd.DataFrame, suite: SuiteSpec, max_examples: int) -> list[Any]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    # an ephemeral context logs its set-up at INFO on every run: not news to anyone
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    classes = []
    for spec in suite.expectations:
        cls = getattr(gxe, spec.type, None)
        if not isinstance(cls, type):
            raise ValueError(f"suite {suite.name!r}: {spec.type!r} is not a Great Expectations "
                             "expectation class (great_expectations.expectations)")
        classes.append(cls(**spec.kwargs))
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas(f"{suite.name}_source")
             .add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("partition"))
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=classes))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite))
    result = validation.run(batch_parameters={"dataframe": df}, result_format={
        "result_format": "SUMMARY", "partial_unexpected_count": max_examples,
        "unexpected_index_column_names": list(suite.key_columns)})
    order = {e.id: i for i, e in enumerate(gx_suite.expectations)}  # GX groups by metric
    return sorted(result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))


def _outcome(r: Any, df: pd.DataFrame, max_examples: int) -> ExpectationOutcome:
    config = r.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    spec = ExpectationSpec(config.type, kwargs)
    res = r.result or {}
    observed = res.get("observed_value")
    if observed is None and config.type == "expect_column_values_to_be_between":
        col = pd.to_numeric(df[kwargs["column"]], errors="coerce")
        observed = {"min": col.min(), "max": col.max()}
    info = r.exception_info or {}
    errors = [info] if "exception_message" in info else list(info.values())
    error = next((e.get("exception_message") for e in errors if e.get("raised_exception")),
                 None)
    return ExpectationOutcome(
        expectation=config.type, columns=spec.columns, success=bool(r.success),
        kwargs=jsonable(kwargs), observed_value=jsonable(observed),
        unexpected_count=res.get("unexpected_count"),
        partial_unexpected_list=jsonable(res.get("partial_unexpected_list") or [])[:max_examples],
        unexpected_rows=jsonable(res.get("partial_unexpected_index_list") or [])[:max_examples],
        error=error)


def _summary(name: str, rows: int, outcomes: tuple[ExpectationOutcome, ...],
             failed: list[ExpectationOutcome]) -> str:
    if not failed:
        return f"{name}: all {len(outcomes)} expectations passed on {rows} rows"
    parts = []
    for o in failed:
        what = f"{o.expectation}({', '.join(o.columns)})" if o.columns else o.expectation
        if o.error:
            what += f": error {o.error}"
        elif o.unexpected_count is not None:
            what += f": {o.unexpected_count} rows, e.g. {o.partial_unexpected_list[:3]}"
        else:
            what += f": observed {o.observed_value}"
        parts.append(what)
    return f"{name}: {len(failed)} of {len(outcomes)} expectations failed on {rows} rows: " + (
        "; ".join(parts))
