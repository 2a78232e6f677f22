"""The KPI contract: every KPI tokenwatch publishes, declared once, in the dbt marts' yml.

A KPI mart says, under the model's ``config: meta: kpi:``, the day column its partitions are
cut on, the dimension columns that become Datadog tags (column: tag key, in order), whether the
quality gate runs its suite (``gated``), and what else the gate checks that is not published
(``bounds`` of other columns, ``ordered`` column lists such as p50 <= p95 <= p99). Each
published column says, under its own ``config: meta: kpi:``, the metric, unit, description,
bounds and, when several columns publish one metric, the extra tag that tells them apart::

    - name: green_share
      config:
        meta:
          kpi:
            metric: tokenwatch.provisioning.decision_share
            tag: decision:green
            unit: fraction
            description: Share of provisioning decisions per decision (green, yellow, red)
            bounds: [0, 1]

This module reads those declarations with plain ``yaml.safe_load`` (no dbt), checks them (an
error names the file, the model and the column) and hands them out as frozen dataclasses:
publication (``reporting/kpis.py``), the Datadog catalogue, the gate and the suites all read
them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from tokenwatch import config

#: The units a KPI may be declared in.
UNITS: frozenset[str] = frozenset(
    {"requests", "fraction", "seconds", "milliseconds", "tokens", "authorisations", "exceptions"})
#: Where the declarations live, under the dbt project.
MARTS_DIR = Path("models") / "marts"
METRIC = re.compile(r"tokenwatch\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*")
TAG_KEY = re.compile(r"[a-z][a-z_]*")
EXTRA_TAG = re.compile(r"([a-z][a-z_]*):([a-z0-9][a-z0-9_.:/-]*)")
#: Tag keys a mart may not declare: every point carries ``env``.
RESERVED_TAG_KEYS = frozenset({"env"})

_MART_KEYS = {"day_column", "tags", "gated", "bounds", "ordered"}
_KPI_KEYS = {"metric", "unit", "description", "bounds", "tag"}

Bounds = tuple[float | None, float | None]


class KpiDeclarationError(ValueError):
    """A KPI declaration in the dbt project's yml is wrong; the message says where and why."""


@dataclass(frozen=True)
class Kpi:
    """One published column: ``metric`` with ``unit``, from ``mart.column``."""
    metric: str
    mart: str
    column: str
    unit: str
    description: str
    bounds: Bounds  # (low, high); None is unbounded on that side
    tag: str | None = None  # the extra "key:value" tag, when several columns share the metric


@dataclass(frozen=True)
class KpiMart:
    """A mart whose columns are published: one query per day, one point per row and KPI."""
    model: str
    day_column: str
    tags: tuple[tuple[str, str], ...]  # (column, tag key), in the order declared
    kpis: tuple[Kpi, ...]
    gated: bool = False  # the quality gate runs this mart's suite before publication
    #: columns the gate bounds that are not published: (column, (low, high))
    checked_bounds: tuple[tuple[str, Bounds], ...] = ()
    #: column lists the gate holds non-decreasing, row by row (p50 <= p95 <= p99)
    ordered: tuple[tuple[str, ...], ...] = ()
    path: str = ""  # the yml file, relative to the repository

    @property
    def tag_columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.tags)

    @property
    def tag_keys(self) -> dict[str, str]:
        return dict(self.tags)

    @property
    def bounds(self) -> tuple[tuple[str, Bounds], ...]:
        """Every bounded column the gate checks: the KPIs', then the others, each once."""
        seen: dict[str, Bounds] = {}
        for column, bounds in [(k.column, k.bounds) for k in self.kpis] + list(
                self.checked_bounds):
            seen.setdefault(column, bounds)
        return tuple(seen.items())


@dataclass(frozen=True)
class Contract:
    marts: tuple[KpiMart, ...]

    def mart(self, model: str) -> KpiMart:
        for mart in self.marts:
            if mart.model == model:
                return mart
        raise KeyError(f"{model!r} declares no KPI (its yml has no config: meta: kpi:)")

    @property
    def kpis(self) -> tuple[Kpi, ...]:
        return tuple(k for mart in self.marts for k in mart.kpis)

    @property
    def metrics(self) -> dict[str, Kpi]:
        """Metric name -> its (first) declaration: a shared metric has one unit and text."""
        out: dict[str, Kpi] = {}
        for kpi in self.kpis:
            out.setdefault(kpi.metric, kpi)
        return out

    @property
    def gated(self) -> tuple[KpiMart, ...]:
        return tuple(mart for mart in self.marts if mart.gated)


def dbt_project_dir() -> Path:
    return config.project_root() / "dbt_project"


def contract() -> Contract:
    """The declarations of the checkout's dbt project (read once)."""
    return load(dbt_project_dir())


@cache
def load(project_dir: Path) -> Contract:
    """Every KPI declared under ``project_dir``'s marts, checked."""
    files = sorted((Path(project_dir) / MARTS_DIR).rglob("*.yml"))
    marts: list[KpiMart] = []
    for path in files:
        text = path.read_text()
        if "kpi" not in text:  # (most of the project's yml: parsing them all takes a second)
            continue
        where = _shown(path, Path(project_dir))
        document = yaml.safe_load(text) or {}
        for model in document.get("models") or []:
            mart = _mart(model, where)
            if mart is not None:
                marts.append(mart)
    _check_metrics(marts)
    return Contract(tuple(marts))


def _shown(path: Path, project_dir: Path) -> str:
    try:
        return str(path.relative_to(project_dir.parent))
    except ValueError:
        return str(path)


def _meta_kpi(node: dict) -> object:
    return ((node.get("config") or {}).get("meta") or {}).get("kpi")


def _mart(model: dict, where: str) -> KpiMart | None:
    name = model.get("name", "?")
    columns = {c.get("name"): c for c in model.get("columns") or []}
    declared = _meta_kpi(model)
    published = [(column, _meta_kpi(node)) for column, node in columns.items()
                 if _meta_kpi(node) is not None]
    for label, node in [(name, model)] + [(f"{name}.{c}", n) for c, n in columns.items()]:
        if "kpi" in (node.get("meta") or {}):
            raise KpiDeclarationError(f"{where}: {label}: kpi under meta: dbt 1.11 reads meta "
                                      "under config (config: meta: kpi:)")
    if declared is None:
        if published:
            raise KpiDeclarationError(
                f"{where}: {name}.{published[0][0]}: a KPI column in a model without "
                "config: meta: kpi: (its day_column and tags)")
        return None

    def fail(column: str | None, problem: str) -> KpiDeclarationError:
        return KpiDeclarationError(f"{where}: {name}{'.' + column if column else ''}: {problem}")

    def known(column: object, what: str) -> str:
        if not isinstance(column, str) or column not in columns:
            raise fail(None, f"{what} {column!r} is not a column of the model's yml")
        return column

    if not isinstance(declared, dict):
        raise fail(None, "config: meta: kpi: must be a mapping")
    unknown = sorted(set(declared) - _MART_KEYS)
    if unknown:
        raise fail(None, f"unknown key(s) {unknown} in the model's kpi "
                   f"(known: {sorted(_MART_KEYS)})")
    if "day_column" not in declared:
        raise fail(None, "the model's kpi has no day_column")
    day = known(declared["day_column"], "day_column")
    tags = declared.get("tags") or {}
    if not isinstance(tags, dict) or not tags:
        raise fail(None, "the model's kpi needs tags: a mapping of dimension column -> tag key")
    for column, key in tags.items():
        known(column, "tag column")
        if not isinstance(key, str) or not TAG_KEY.fullmatch(key) or key in RESERVED_TAG_KEYS:
            raise fail(column, f"tag key {key!r} must be lowercase letters and '_', not env")
    gated = declared.get("gated", False)
    if not isinstance(gated, bool):
        raise fail(None, f"gated must be true or false, got {gated!r}")
    checked = declared.get("bounds") or {}
    if not isinstance(checked, dict):
        raise fail(None, "the model's kpi bounds must map column -> [low, high]")
    checked_bounds = tuple((known(c, "bounded column"), _bounds(b, lambda p, c=c: fail(c, p)))
                           for c, b in checked.items())
    ordered = declared.get("ordered") or []
    if not isinstance(ordered, list) or not all(
            isinstance(o, list) and len(o) >= 2 for o in ordered):
        raise fail(None, "ordered must be a list of column lists (each at least two long)")
    ordered_columns = tuple(tuple(known(c, "ordered column") for c in o) for o in ordered)
    kpis = tuple(_kpi(name, column, spec, set(tags.values()), lambda p, c=column: fail(c, p))
                 for column, spec in published)
    if not kpis:
        raise fail(None, "the model declares a kpi but none of its columns does")
    return KpiMart(name, day, tuple(tags.items()), kpis, gated, checked_bounds, ordered_columns,
                   where)


def _bounds(value: object, fail) -> Bounds:
    if not isinstance(value, list) or len(value) != 2:
        raise fail(f"bounds must be [low, high] (null for unbounded), got {value!r}")
    low, high = value
    for side in (low, high):
        if side is not None and (isinstance(side, bool) or not isinstance(side, int | float)):
            raise fail(f"bounds must be numbers or null, got {value!r}")
    if low is None and high is None:
        raise fail(f"bounds {value!r} bound nothing: give at least one side")
    if low is not None and high is not None and low > high:
        raise fail(f"bounds {value!r}: low is above high")
    return (low, high)


def _kpi(mart: str, column: str, spec: object, mart_tag_keys: set[str], fail) -> Kpi:
    if not isinstance(spec, dict):
        raise fail("config: meta: kpi: must be a mapping")
    unknown = sorted(set(spec) - _KPI_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown} in kpi (known: {sorted(_KPI_KEYS)})")
    metric = spec.get("metric")
    if not isinstance(metric, str) or not METRIC.fullmatch(metric):
        raise fail(f"metric {metric!r} is not of the form tokenwatch.<area>.<kpi> (lowercase)")
    unit = spec.get("unit")
    if unit not in UNITS:
        raise fail(f"unknown unit {unit!r} (known: {', '.join(sorted(UNITS))})")
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        raise fail("kpi has no description")
    if "bounds" not in spec:
        raise fail("kpi has no bounds: say [low, high], null for unbounded ([0, 1], [0, null])")
    bounds = _bounds(spec["bounds"], fail)
    tag = spec.get("tag")
    if tag is not None:
        match = EXTRA_TAG.fullmatch(tag) if isinstance(tag, str) else None
        if not match:
            raise fail(f"tag {tag!r} is not 'key:value' in lowercase")
        if match.group(1) in mart_tag_keys | RESERVED_TAG_KEYS:
            raise fail(f"tag {tag!r} repeats a tag key the mart already sets")
    return Kpi(metric, mart, column, unit, description.strip(), bounds, tag)


def _check_metrics(marts: list[KpiMart]) -> None:
    """A metric is declared once, or by columns of one mart that differ only by extra tag."""
    by_metric: dict[str, list[tuple[KpiMart, Kpi]]] = {}
    for mart in marts:
        for kpi in mart.kpis:
            by_metric.setdefault(kpi.metric, []).append((mart, kpi))
    for metric, declared in by_metric.items():
        if len(declared) == 1:
            continue
        (mart, first), *others = declared
        tags = {first.tag}
        for other_mart, other in others:
            culprit, also = (other_mart, other), (mart, first)
            if other_mart.model != mart.model:
                problem = "columns share a metric only within one mart"
            elif None in (first.tag, other.tag):
                problem = "columns that share a metric each need a tag telling them apart"
                if first.tag is None:
                    culprit, also = also, culprit
            elif other.tag in tags:
                problem = f"tag {other.tag!r} is already taken"
            elif other.tag.split(":")[0] != first.tag.split(":")[0]:
                problem = "the tags of columns that share a metric have one key"
            else:
                problem = None
            where = f"{culprit[0].path}: {culprit[0].model}.{culprit[1].column}"
            seen = f"{also[0].path}: {also[0].model}.{also[1].column}"
            if problem:
                raise KpiDeclarationError(
                    f"{where}: duplicate metric {metric!r} (also {seen}): {problem}")
            if (other.unit, other.description) != (first.unit, first.description):
                raise KpiDeclarationError(
                    f"{where}: metric {metric!r} has another unit or description than {seen}")
            tags.add(other.tag)
