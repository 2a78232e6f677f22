"""The semantic layer: the metrics dbt's semantic layer declares, compiled to SQL by MetricFlow.

The metrics and their semantic models are defined once, in dbt_project/models/semantic/
(``_semantic_models.yml``, ``_metrics.yml``); ``dbt parse`` (``make install``) writes them to
``dbt_project/target/semantic_manifest.json``, which this module reads. MetricFlow turns a query
(metrics x group by x where x order) into the SQL of the configured warehouse (DuckDB,
PostgreSQL or Snowflake); this module only compiles: the caller runs the SQL where it reads
(the DuckDB read replica, PostgreSQL, Snowflake), bounded by its own row limit and timeout.

Names a query may use: a metric's name; a dimension by its short name (``network``,
``decision``, ``state``, ``wallet``) when that is unambiguous for the metrics asked, or by its
qualified MetricFlow name (``token__network``, ``wallet__display_name``); ``metric_time`` with a
grain (``hour``, ``day``, ``week``, ``month``, ``quarter``, ``year``). Unknown names raise
:class:`SemanticError` naming the allowed ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from tokenwatch import kpis

#: The grains ``metric_time`` can be asked at (the time spines have hour and day).
GRAINS = ("hour", "day", "week", "month", "quarter", "year")
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "in", "not in")
#: Units a metric not published as a KPI may declare, beside the KPIs' own.
UNITS = kpis.UNITS | {"transitions", "visits"}
ENGINES = ("duckdb", "postgres", "snowflake")
#: Entities a query may group or filter by (every other entity is a fact's own row id).
GROUPABLE_ENTITIES = frozenset({"wallet", "token"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SemanticError(ValueError):
    """A query names something the semantic layer does not have; ``allowed`` lists what it has."""

    def __init__(self, kind: str, name: str, allowed: Sequence[str], detail: str = ""):
        self.kind, self.name, self.allowed = kind, name, list(allowed)
        text = detail or f"unknown {kind} {name!r}"
        super().__init__(f"{text}; allowed: {', '.join(self.allowed)}" if self.allowed else text)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    description: str
    unit: str
    type: str  # simple | ratio | derived
    dimensions: tuple[str, ...]  # short names where unambiguous, else qualified
    qualified_dimensions: tuple[str, ...]
    grains: tuple[str, ...] = GRAINS
    kpi: str | None = None  # the Datadog metric it is published as
    kpi_tag: str | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "description": self.description,
                "unit": self.unit, "type": self.type, "dimensions": list(self.dimensions),
                "qualified_dimensions": list(self.qualified_dimensions),
                "grains": list(self.grains), "kpi": self.kpi, "kpi_tag": self.kpi_tag}


@dataclass(frozen=True)
class Filter:
    """``dimension op value``; ``in``/``not in`` take a list. Values are quoted here."""
    dimension: str
    op: str
    value: Any


@dataclass(frozen=True)
class Query:
    metrics: tuple[str, ...]
    group_by: tuple[str, ...] = ()  # dimension names and/or "metric_time"
    grain: str = "day"  # the grain of metric_time when grouped by it
    where: tuple[Filter, ...] = ()
    order_by: tuple[str, ...] = ()  # output names; "-name" descending
    start: date | None = None  # metric_time >= start
    end: date | None = None  # metric_time < end

    def signature(self) -> str:
        return hashlib.sha256(json.dumps(
            [self.metrics, self.group_by, self.grain, [(f.dimension, f.op, f.value)
                                                        for f in self.where],
             self.order_by, str(self.start), str(self.end)], default=str).encode()
        ).hexdigest()[:16]


@dataclass(frozen=True)
class Compiled:
    """SQL for one page: ``columns`` in output order (group-bys as asked, then metrics);
    ``time_column`` is the metric_time column when grouped by it."""
    sql: str
    columns: tuple[str, ...]
    time_column: str | None = None
    metrics: tuple[str, ...] = field(default=())


def _mf_engine_type(engine: str):
    from metricflow.protocols.sql_client import SqlEngine
    from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer
    from metricflow.sql.render.postgres import PostgresSQLSqlPlanRenderer
    from metricflow.sql.render.snowflake import SnowflakeSqlPlanRenderer

    return {"duckdb": (SqlEngine.DUCKDB, DuckDbSqlPlanRenderer),
            "postgres": (SqlEngine.POSTGRES, PostgresSQLSqlPlanRenderer),
            "snowflake": (SqlEngine.SNOWFLAKE, SnowflakeSqlPlanRenderer)}[engine]


class _RenderOnly:
    """MetricFlow's SqlClient for compiling only: the dialect, never a connection."""

    def __init__(self, engine: str):
        kind, renderer = _mf_engine_type(engine)
        self.sql_engine_type, self.sql_plan_renderer = kind, renderer()

    def query(self, *args, **kwargs):
        raise RuntimeError("the semantic layer compiles; the caller runs the SQL")

    execute = dry_run = query

    def close(self) -> None:
        return None

    def render_bind_parameter_key(self, key: str) -> str:
        return f"%({key})s"


def manifest_path(project_dir: Path) -> Path:
    return project_dir / "target" / "semantic_manifest.json"


def _load_manifest(path: Path):
    """The semantic manifest, with each model addressed as ``schema.table`` (no database):
    the connection's own database, as the rest of tokenwatch reads marts (the DuckDB read
    replica's catalog is not the writers' file's name)."""
    from metricflow_semantics.model.dbt_manifest_parser import (
        parse_manifest_from_dbt_generated_manifest,
    )

    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `make install` (or `dbt parse` in dbt_project/)")
    raw = json.loads(path.read_text())
    for model in raw.get("semantic_models", []):
        relation = model["node_relation"]
        relation["database"] = None
        relation["relation_name"] = f"{relation['schema_name']}.{relation['alias']}"
    return parse_manifest_from_dbt_generated_manifest(manifest_json_string=json.dumps(raw))


def _reason(error: Exception) -> str:
    """MetricFlow's reason for refusing a query, in one line: the first ``Message:`` block of
    its report (the rest is the query echoed back), else its first line."""
    text = str(error)
    found = re.search(r"Message:\s*\n(.*?)(?:\n\s*\n\s*(?:Query Input|Issue Location|Error #)|$)",
                      text, re.S)
    reason = " ".join((found[1] if found else text.splitlines()[0]).split())
    return reason[:500]


def _literal(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise SemanticError("filter value", repr(value), [], "a filter value must be a "
                            "string, a number or a date")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


class SemanticLayer:
    """The project's metrics for one warehouse engine; thread-safe, compiled SQL cached."""

    def __init__(self, project_dir: Path, engine: str):
        from metricflow.engine.metricflow_engine import MetricFlowEngine
        from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
        self.engine = engine
        self._mf = MetricFlowEngine(SemanticManifestLookup(_load_manifest(
            manifest_path(project_dir))), _RenderOnly(engine))
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self._entities: set[str] = set()
        self._metrics = self._catalogue()

    # -- the catalogue --------------------------------------------------------------------
    def _catalogue(self) -> dict[str, MetricInfo]:
        contract = kpis.contract()
        published = {(k.metric, k.tag): k for k in contract.kpis}
        out = {}
        for metric in sorted(self._mf.list_metrics(), key=lambda m: m.name):
            meta = dict(metric.config.meta) if metric.config else {}
            kpi = meta.get("kpi")
            if kpi:
                declared = published.get((kpi["metric"], kpi.get("tag")))
                if declared is None:
                    raise kpis.KpiDeclarationError(
                        f"metric {metric.name} names KPI {kpi} that no mart publishes")
                unit = declared.unit
            else:
                unit = meta.get("unit")
            if unit not in UNITS:
                raise kpis.KpiDeclarationError(
                    f"metric {metric.name}: unit {unit!r} is not one of {sorted(UNITS)}")
            qualified = tuple(sorted(self._group_bys([metric.name])))
            names = self._short_names(qualified)
            listed = sorted({short if names.get(short) else name for name in qualified
                             for short in [name.split("__")[-1]]})
            out[metric.name] = MetricInfo(
                name=metric.name, label=metric.label or metric.name,
                description=metric.description or "", unit=unit, type=metric.type.value,
                dimensions=tuple(listed),
                qualified_dimensions=qualified,
                kpi=kpi["metric"] if kpi else None, kpi_tag=kpi.get("tag") if kpi else None)
        return out

    def _group_bys(self, metrics: Sequence[str]) -> list[str]:
        names = []
        for item in self._mf.list_group_bys(list(metrics)):
            name = getattr(item, "dunder_name", None) or item.name
            if name.startswith("metric_time"):
                continue
            if getattr(getattr(item, "type", None), "value", None) == "time":
                continue  # a fact's own time: metric_time is the one time to group by
            if type(item).__name__ == "Entity":
                if name not in GROUPABLE_ENTITIES:
                    continue  # a fact's own row id: not a dimension
                self._entities.add(name)
            names.append(name)
        return sorted(set(names))

    @staticmethod
    def _short_names(qualified: Sequence[str]) -> dict[str, str]:
        """short name -> qualified, for the names whose last part is unique."""
        by_short: dict[str, list[str]] = {}
        for name in qualified:
            by_short.setdefault(name.split("__")[-1], []).append(name)
        return {short: names[0] if len(names) == 1 else "" for short, names in by_short.items()
                } | {name: name for name in qualified}

    def metrics(self) -> dict[str, MetricInfo]:
        return dict(self._metrics)

    def metric(self, name: str) -> MetricInfo:
        if name not in self._metrics:
            raise SemanticError("metric", name, sorted(self._metrics))
        return self._metrics[name]

    # -- compiling ------------------------------------------------------------------------
    def _dimension(self, name: str, allowed: dict[str, str]) -> str:
        qualified = allowed.get(name)
        if not qualified:
            choices = sorted(k for k, v in allowed.items() if v)
            detail = (f"dimension {name!r} is ambiguous for these metrics; use one of "
                      f"{[q for q in allowed.values() if q.endswith('__' + name)]}"
                      if name in allowed else "")
            raise SemanticError("dimension", name, choices + ["metric_time"], detail)
        return qualified

    def resolve(self, query: Query) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """``[(output name, MetricFlow name)]`` of the group-bys and the allowed names."""
        if not query.metrics:
            raise SemanticError("metric", "", sorted(self._metrics), "no metric asked")
        for name in query.metrics:
            self.metric(name)
        if query.grain not in GRAINS:
            raise SemanticError("grain", query.grain, GRAINS)
        allowed = self._short_names(self._group_bys(query.metrics))
        resolved = []
        for name in query.group_by:
            if name == "metric_time" or name.startswith("metric_time__"):
                grain = name.split("__", 1)[1] if "__" in name else query.grain
                if grain not in GRAINS:
                    raise SemanticError("grain", grain, GRAINS)
                resolved.append((f"metric_time__{grain}", f"metric_time__{grain}"))
            else:
                resolved.append((name, self._dimension(name, allowed)))
        outputs = [out for out, _ in resolved]
        if len(set(outputs)) != len(outputs):
            raise SemanticError("group_by", ",".join(query.group_by), [],
                                "a dimension is asked twice")
        return resolved, allowed

    def _where(self, flt: Filter, allowed: dict[str, str]) -> str:
        if flt.op not in OPERATORS:
            raise SemanticError("operator", flt.op, OPERATORS)
        if flt.dimension == "metric_time" or flt.dimension.startswith("metric_time__"):
            grain = flt.dimension.split("__", 1)[1] if "__" in flt.dimension else "day"
            if grain not in GRAINS:
                raise SemanticError("grain", grain, GRAINS)
            ref = f"{{{{ TimeDimension('metric_time', '{grain}') }}}}"
        else:
            name = self._dimension(flt.dimension, allowed)
            kind = "Entity" if name in self._entities else "Dimension"
            ref = f"{{{{ {kind}('{name}') }}}}"
        if flt.op in ("in", "not in"):
            values = flt.value if isinstance(flt.value, list | tuple) else [flt.value]
            if not values:
                raise SemanticError("filter value", "[]", [], "'in' needs at least one value")
            return f"{ref} {flt.op.upper()} ({', '.join(_literal(v) for v in values)})"
        return f"{ref} {flt.op} {_literal(flt.value)}"

    def _metricflow_sql(self, query: Query, resolved, allowed) -> str:
        from metricflow.engine.metricflow_engine import MetricFlowQueryRequest

        key = query.signature()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            # start/end as filters on metric_time (>= start, < end): MetricFlow's own time
            # constraint is BETWEEN start AND end, which would take in the end day too
            where = list(query.where)
            if query.start:
                where.append(Filter("metric_time", ">=", query.start))
            if query.end:
                where.append(Filter("metric_time", "<", query.end))
            request = MetricFlowQueryRequest.create(
                metric_names=list(query.metrics),
                group_by_names=[mf for _, mf in resolved] or None,
                where_constraints=[self._where(f, allowed) for f in where] or None)
            try:
                sql = self._mf.explain(request).sql_statement.sql
            except SemanticError:
                raise
            except Exception as error:  # noqa: BLE001 - MetricFlow's reasons, as a 4xx
                raise SemanticError("query", ",".join(query.metrics), [],
                                    f"MetricFlow cannot answer this query: "
                                    f"{_reason(error)}") from error
            if len(self._cache) > 2048:
                self._cache.clear()
            self._cache[key] = sql
            return sql

    def compile(self, query: Query, *, limit: int, offset: int = 0) -> Compiled:
        """One page of the query's answer: ``limit`` rows from ``offset``, in a stable order
        (the asked order, then every group-by column)."""
        resolved, allowed = self.resolve(query)
        inner = self._metricflow_sql(query, resolved, allowed)
        outputs = [out for out, _ in resolved] + list(query.metrics)
        select = [f"q.{mf} as {out}" for out, mf in resolved] + [f"q.{m} as {m}"
                                                                for m in query.metrics]
        order = []
        for item in query.order_by:
            name = item.lstrip("-")
            if name not in outputs:
                raise SemanticError("order_by", item, outputs)
            order.append(f"{name} {'desc' if item.startswith('-') else 'asc'} nulls last")
        order += [f"{out} asc nulls last" for out, _ in resolved
                  if out not in [o.lstrip("-") for o in query.order_by]]
        sql = (f"select {', '.join(select)} from (\n{inner}\n) q"
               + (f" order by {', '.join(order)}" if order else "")
               + f" limit {int(limit)} offset {int(offset)}")
        time_column = next((out for out, _ in resolved if out.startswith("metric_time")), None)
        return Compiled(sql, tuple(outputs), time_column, tuple(query.metrics))


@cache
def for_engine(engine: str, project_dir: str | None = None) -> SemanticLayer:
    """The project's semantic layer for ``engine``, loaded once per process."""
    return SemanticLayer(Path(project_dir) if project_dir else kpis.dbt_project_dir(), engine)
