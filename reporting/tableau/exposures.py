"""Which extracts exist and which marts each holds: declared once, on the dbt exposures.

A Tableau exposure in ``dbt_project/models/marts/_marts__exposures.yml`` names its extract
under ``config: meta: tableau:``::

    config:
      meta:
        tableau:
          extract: wallet_analytics.hyper
          tables:
            - {model: wallet_provisioning_daily, day_column: request_date}
            - {model: dim_wallet}

A table with a ``day_column`` is cut to the days the gate passed on that column; a table
without one goes in whole, and only a dimension (``dim_*``) may: a period aggregate such as
``wallet_comparison`` sums withheld days too, so it stays out (the workbook re-aggregates the
daily tables). Read with plain ``yaml.safe_load``, as ``tokenwatch/kpis.py`` reads the marts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tokenwatch import kpis

EXPOSURES_FILE = kpis.MARTS_DIR / "_marts__exposures.yml"
FILE_NAME = re.compile(r"[a-z][a-z0-9_]*\.hyper")
REF = re.compile(r"ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)")
_TABLE_KEYS = {"model", "day_column"}


class ExposureDeclarationError(ValueError):
    """A Tableau exposure's ``meta: tableau:`` is wrong; the message says where and why."""


@dataclass(frozen=True)
class ExtractTable:
    model: str
    day_column: str | None = None  # None: a dimension, taken whole

    @property
    def filter(self) -> str:
        return f"passed days, by {self.day_column}" if self.day_column else "whole (a dimension)"


@dataclass(frozen=True)
class Extract:
    exposure: str
    label: str
    file: str  # e.g. wallet_analytics.hyper
    tables: tuple[ExtractTable, ...]

    @property
    def name(self) -> str:
        """The data source's name on Tableau Server: the file's stem."""
        return self.file.removesuffix(".hyper")


def extracts(project_dir: Path | None = None) -> tuple[Extract, ...]:
    """Every extract the exposures declare, in the file's order, checked."""
    project_dir = Path(project_dir or kpis.dbt_project_dir())
    path = project_dir / EXPOSURES_FILE
    document = yaml.safe_load(path.read_text()) or {}
    found = [_extract(exposure, path.name) for exposure in document.get("exposures") or []]
    found = [extract for extract in found if extract is not None]
    _check_day_columns(found, kpis.load(project_dir), path.name)
    files = [extract.file for extract in found]
    duplicate = sorted({f for f in files if files.count(f) > 1})
    if duplicate:
        raise ExposureDeclarationError(f"{path.name}: extract file(s) {duplicate} named twice")
    return tuple(found)


def _extract(exposure: dict, where: str) -> Extract | None:
    name = exposure.get("name", "?")
    spec = ((exposure.get("config") or {}).get("meta") or {}).get("tableau")
    if spec is None:
        return None

    def fail(problem: str) -> ExposureDeclarationError:
        return ExposureDeclarationError(f"{where}: exposure {name}: meta.tableau: {problem}")

    if not isinstance(spec, dict):
        raise fail("must be a mapping with extract and tables")
    file = spec.get("extract")
    if not isinstance(file, str) or not FILE_NAME.fullmatch(file):
        raise fail(f"extract {file!r} must be a file name such as wallet_analytics.hyper")
    refs = {m for d in exposure.get("depends_on") or [] for m in REF.findall(str(d))}
    tables = []
    for item in spec.get("tables") or []:
        if not isinstance(item, dict) or set(item) - _TABLE_KEYS or "model" not in item:
            raise fail(f"table {item!r} must be {{model: ..., day_column: ...}} "
                       "(day_column only for a daily mart)")
        model, day = item["model"], item.get("day_column")
        if model not in refs:
            raise fail(f"table {model!r} is not in the exposure's depends_on")
        if day is None and not model.startswith("dim_"):
            raise fail(f"table {model!r} has no day_column: only a dimension (dim_*) goes in "
                       "whole, anything else would carry withheld days")
        tables.append(ExtractTable(model, day))
    if not tables:
        raise fail("tables is empty")
    return Extract(name, exposure.get("label") or name, file, tuple(tables))


def _check_day_columns(found: list[Extract], contract: kpis.Contract, where: str) -> None:
    """A KPI mart is cut on the day column its KPI declaration names (one day per mart)."""
    declared = {mart.model: mart.day_column for mart in contract.marts}
    for extract in found:
        for table in extract.tables:
            day = declared.get(table.model)
            if day is not None and table.day_column != day:
                raise ExposureDeclarationError(
                    f"{where}: exposure {extract.exposure}: meta.tableau: table "
                    f"{table.model!r} has day_column {table.day_column!r}, its KPI "
                    f"declaration says {day!r}")
