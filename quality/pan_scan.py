"""No card number (PAN) anywhere in the warehouse: every text column of the raw tables and of
the given marts is scanned with the project's one rule (``tokenwatch.pan``).

The database pre-filters with a superset of the rule, and Python applies ``find_pan_like`` to
the cells that come back. A cell comes back when its text holds

- in ASCII, a maximal run of 13-19 digits, or digit groups of 3-6 joined by single separators
  (space, ``-``, ``.``, ASCII whitespace) that could hold 13 digits, starting with 2-6 (the
  shapes of dbt's ``pan_candidate_pattern``); or
- a non-ASCII character, and seven characters in a row each an ASCII digit or non-ASCII, at
  most one separator between two: what a PAN-like run becomes once the rule's normalisation
  has made its Unicode digits, spaces and dashes ASCII and dropped its invisible characters
  (a character normalises to at most two digits in a row, such as U+2473 to ``20``).

Hits are reported masked (first six and last four digits); a full PAN is never echoed, not
even inside a row locator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ingestion.raw_schema import SCHEMA, TABLES
from ingestion.warehouse.base import Warehouse
from quality.partitions import quote, table_columns
from quality.result import MAX_EXAMPLES, CheckResult
from tokenwatch.pan import find_pan_like, mask, redact

__all__ = ["mask", "prefilter", "redact", "scan_for_pans"]

#: The single separators of printed groups, as ASCII text holds them (whitespace becomes a
#: space): literal characters, so that RE2, PostgreSQL and Snowflake read the same class.
_SEP = "[ .\t\n\x0b\x0c\r\x1c-\x1f-]"
_G, _G4, _G5 = "[0-9]{3,6}", "[0-9]{4,6}", "[0-9]{5,6}"
_F, _F4, _F5 = "[2-6][0-9]{2,5}", "[2-6][0-9]{3,5}", "[2-6][0-9]{4,5}"
#: ASCII shapes that may hold a PAN-like run (a superset: the digits are checked in Python).
PREFILTER_SHAPES = ("(^|[^0-9])([2-6][0-9]{12,18}|" + "|".join(_SEP.join(groups) for groups in (
    (_F5, _G, _G), (_F, _G5, _G), (_F, _G, _G5), (_F4, _G, _G, _G), (_F, _G4, _G, _G),
    (_F, _G, _G4, _G), (_F, _G, _G, _G4))) + f"|{_F}({_SEP}{_G}){{4,}})([^0-9]|$)")
NON_ASCII = "[\x80-\U0010ffff]"
#: Seven ASCII digits or non-ASCII characters in a row, at most one separator between two.
NON_ASCII_WINDOW = f"[0-9\x80-\U0010ffff]({_SEP}?[0-9\x80-\U0010ffff]){{6}}"
_MATCH = {"duckdb": "regexp_matches({}, '{}')", "postgres": "{} ~ '{}'",
          "snowflake": "regexp_instr({}, '{}') > 0"}
_AS_TEXT = {"duckdb": "cast({} as varchar)", "postgres": "cast({} as text)",
            "snowflake": "to_varchar({})"}
_TEXT_TYPES = ("varchar", "text", "char", "json", "variant", "string")
#: The column that says where a raw row came from (else ``_source_location``, else column 1).
RAW_LOCATORS = {"quarantine": "location", "_ingest_state": "key", "_s3_manifest": "s3_key"}


def prefilter(dialect: str, expr: str) -> str:
    """The SQL predicate (``duckdb``, ``postgres`` or ``snowflake``) true for every text
    ``expr`` in which ``find_pan_like`` may find a run."""
    match = _MATCH[dialect]
    return (f"({match.format(expr, PREFILTER_SHAPES)} or ({match.format(expr, NON_ASCII)}"
            f" and {match.format(expr, NON_ASCII_WINDOW)}))")


def _scan_table(wh: Warehouse, table: str, locator: str | None) -> tuple[int, int, list[dict]]:
    """(text columns, candidate rows, hits) of one table."""
    schema, name, columns = table_columns(wh, table)
    text = [c for c, t in columns if t.startswith(_TEXT_TYPES)]
    if not text:
        return 0, 0, []
    names = [c for c, _ in columns]
    by_lower = {c.lower(): c for c in names}
    loc = by_lower.get((locator or RAW_LOCATORS.get(name.lower(), "_source_location")).lower(),
                       names[0])
    as_text = [_AS_TEXT[wh.name].format(quote(c)) for c in text]
    where = " or ".join(prefilter(wh.name, e) for e in as_text)
    rows = wh.query(f"select {_AS_TEXT[wh.name].format(quote(loc))}, {', '.join(as_text)}"
                    f" from {quote(schema)}.{quote(name)} where {where}")
    hits = [{"table": table, "column": col.lower() if col.isupper() else col,
             "locator": None if row[0] is None else redact(str(row[0])),
             "masked": [mask(run) for run in runs]}
            for row in rows for col, value in zip(text, row[1:], strict=True)
            if value and (runs := find_pan_like(value))]
    return len(text), len(rows), hits


def scan_for_pans(wh: Warehouse, tables: Iterable[str] = (), include_raw: bool = True,
                  locators: Mapping[str, str] | None = None,
                  max_examples: int = MAX_EXAMPLES) -> CheckResult:
    """Scan the raw tables (``include_raw``) and ``tables`` (``schema.table``); ``locators``
    maps a table to the column that identifies its rows in the report."""
    if wh.name not in _MATCH:
        raise ValueError(f"pan scan: no regexp function known for warehouse {wh.name!r}")
    names = [f"{SCHEMA}.{t}" for t in TABLES] if include_raw else []
    names += [t for t in tables if t not in names]
    hits: list[dict[str, Any]] = []
    columns = candidates = 0
    for table in names:
        n_columns, n_candidates, found = _scan_table(wh, table, (locators or {}).get(table))
        columns, candidates, hits = columns + n_columns, candidates + n_candidates, hits + found
    per_column = Counter(f"{h['table']}.{h['column']}" for h in hits)
    metadata: dict[str, Any] = {
        "tables_scanned": names, "text_columns_scanned": columns,
        "candidate_rows": candidates, "pan_like_cells": len(hits),
        "pan_like_cells_by_column": dict(per_column), "hits": hits[:max_examples]}
    if not hits:
        return CheckResult("pan_scan", True, f"pan_scan: no PAN-like value in {columns} text "
                           f"columns of {len(names)} tables ({candidates} candidate rows)",
                           metadata)
    first = hits[0]
    return CheckResult("pan_scan", False, (
        f"pan_scan: {len(hits)} cells hold PAN-like values ("
        + ", ".join(f"{c}: {n}" for c, n in per_column.most_common())
        + f"), e.g. {first['masked'][0]} in {first['table']}.{first['column']} at "
        f"{first['locator']}"), metadata)
