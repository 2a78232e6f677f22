"""Reading a mart partition out of any warehouse target, with its column names (the
``Warehouse.query`` interface returns bare tuples), and the previous partition's row count."""

from __future__ import annotations

from datetime import date

import pandas as pd

from ingestion.warehouse.base import Warehouse


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def day_list(days) -> str:
    """Days as SQL date literals for ``in (...)``, sorted (dates only: no user text)."""
    return ", ".join(f"date '{d.isoformat()}'" for d in sorted(days))


def table_columns(wh: Warehouse, table: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(schema, table, [(column, data_type)]) of ``schema.table`` as the catalogue spells
    them (Snowflake in capitals); data types in lower case."""
    schema, _, name = table.rpartition(".")
    if not schema:
        raise ValueError(f"table {table!r} must be schema-qualified (schema.table)")
    rows = wh.query("select table_schema, table_name, column_name, data_type"
                    " from information_schema.columns where upper(table_schema) = upper(%s)"
                    " and upper(table_name) = upper(%s) order by ordinal_position",
                    [schema, name])
    if not rows:
        raise ValueError(f"table {table!r} not found in the {wh.name} warehouse")
    return rows[0][0], rows[0][1], [(r[2], str(r[3]).lower()) for r in rows]


def _relation(wh: Warehouse, table: str, day_column: str) -> tuple[str, list[str], str]:
    schema, name, columns = table_columns(wh, table)
    names = [c for c, _ in columns]
    day = {c.lower(): c for c in names}.get(day_column.lower())
    if day is None:
        raise ValueError(f"table {table!r} has no column {day_column!r} (columns: "
                         f"{', '.join(names)})")
    return f"{quote(schema)}.{quote(name)}", names, quote(day)


def read_partition(wh: Warehouse, table: str, day_column: str, day: date) -> pd.DataFrame:
    """The rows of ``table`` whose ``day_column`` is ``day``, columns named in lower case."""
    relation, names, day_col = _relation(wh, table, day_column)
    rows = wh.query(f"select {', '.join(quote(c) for c in names)} from {relation}"
                    f" where {day_col} = %s", [day])
    return pd.DataFrame(rows, columns=[c.lower() if c.isupper() else c for c in names])


def previous_partition_count(wh: Warehouse, table: str, day_column: str,
                             day: date) -> int | None:
    """Rows of the latest partition before ``day``; None when there is none (the first)."""
    relation, _, day_col = _relation(wh, table, day_column)
    rows = wh.query(f"select {day_col}, count(*) from {relation} where {day_col} = "
                    f"(select max({day_col}) from {relation} where {day_col} < %s)"
                    f" group by {day_col}", [day])
    return int(rows[0][1]) if rows else None
