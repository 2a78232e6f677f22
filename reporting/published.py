"""Write-audit-publish: what analysts read is only what the quality gate passed.

dbt writes the marts into their build schemas (``analytics_wallet``, ``analytics_lifecycle``,
...); the gate audits each day (orchestration/defs/gate/checks.py) and records its verdict in
the warehouse (quality/verdicts.py); then ``publish`` copies, into the analyst-facing schema
``analytics_published``, each analyst mart's rows of the days whose latest verdict is
``passed``, and removes every other day's. So:

* a day the gate withholds never appears there (and disappears if it was published before);
* a passed day keeps the rows the gate saw until the gate passes it again: a dbt build
  between two gate runs changes the build schemas only;
* a day fixed and re-gated appears with its fixed rows.

The analyst marts (``ANALYST_MARTS``) are the wallet and lifecycle marts that are per day,
each published by its day column, and their dimensions, copied whole (as the Tableau
extracts take them). The compliance marts are not published here: compliance officers read
every day, withheld ones included, in ``analytics_compliance``. On PostgreSQL and Snowflake
the analyst roles (``TOKENWATCH_ANALYST_ROLES``) are granted this schema and nothing of the
build schemas.

The copy runs in one transaction where the warehouse allows (DuckDB, PostgreSQL); the tables
are small (daily aggregates, and facts per day), and only the days the gate just evaluated
and the days that stopped being published are rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from quality import verdicts
from quality.partitions import day_list, table_columns
from tokenwatch import config

SCHEMA = "analytics_published"
Relation = Callable[[str], str]  # model name -> schema.table of its build in this warehouse
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class AnalystMart:
    model: str
    day_column: str | None  # None: a dimension, copied whole


@dataclass(frozen=True)
class Published:
    """What one publication did."""

    days: tuple[date, ...]  # the days published now (every passed day)
    rewritten: tuple[date, ...]  # days whose rows were copied again
    removed: tuple[date, ...]  # days taken out (withheld, or never passed)
    tables: tuple[str, ...]


#: The analyst marts, each with the day column it is published by (None: a dimension, copied
#: whole). Day-partitioned marts and dimensions only: an all-time aggregate (wallet_comparison,
#: provisioning_funnel, token_state_durations) sums withheld days into every row, so it is not
#: published (it stays in its build schema for engineering). tests/reporting/test_published.py
#: checks that every KPI mart and every analyst extract table is here, by the same day column.
ANALYST_MARTS: tuple[AnalystMart, ...] = (
    AnalystMart("dim_token", None),
    AnalystMart("dim_wallet", None),
    AnalystMart("fct_api_requests", "request_date"),
    AnalystMart("fct_provisioning_attempts", "request_date"),
    AnalystMart("fct_token_state_spans", "entered_date"),
    AnalystMart("fct_token_state_transitions", "occurred_date"),
    AnalystMart("fct_wallet_events", "event_date"),
    AnalystMart("token_state_daily", "calendar_date"),
    AnalystMart("wallet_provisioning_daily", "request_date"),
    AnalystMart("wallet_service_daily", "activity_date"),
    AnalystMart("wallet_token_usage_daily", "usage_date"),
    AnalystMart("wallet_token_usage_hourly", "usage_date"),
)


def _columns(wh, relation: str) -> list[str]:
    """The relation's column names in order; none when it does not exist."""
    try:
        _, _, columns = table_columns(wh, relation)
    except ValueError:
        return []
    return [str(name).lower() for name, _ in columns]


def publish(wh, relation: Relation, evaluated: Iterable[date] = (), schema: str = SCHEMA,
            marts: tuple[AnalystMart, ...] = ANALYST_MARTS) -> Published:
    """Bring ``schema`` in line with the latest verdicts: every passed day of ``evaluated``
    (the days the gate just judged) copied afresh from the build marts, every day that is not
    passed (now) removed; a table created now (or recreated because its mart changed shape)
    gets every passed day. Nothing else is copied: a day's rows change here only when the
    gate has just passed them. Returns what it did."""
    if not _NAME.fullmatch(schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    passed = verdicts.published_days(wh)
    evaluated = set(evaluated)
    wh.execute(f"create schema if not exists {schema}")  # DDL first: Snowflake commits it
    fresh = set()
    for mart in marts:  # a table whose build changed shape is recreated (empty)
        target = f"{schema}.{mart.model}"
        if _columns(wh, target) != _columns(wh, relation(mart.model)):
            wh.execute(f"drop table if exists {target}")
            wh.execute(f"create table {target} as select * from {relation(mart.model)} "
                       "where 1 = 0")
            fresh.add(mart.model)
    removed: set[date] = set()
    with wh.transaction():
        for mart in marts:
            source, target = relation(mart.model), f"{schema}.{mart.model}"
            if mart.day_column is None:
                wh.execute(f"delete from {target}")
                wh.execute(f"insert into {target} select * from {source}")
                continue
            day = mart.day_column
            shown = {verdicts.as_date(d) for (d,) in wh.query(
                f"select distinct {day} from {target}")}
            gone = shown - passed
            rewrite = passed if mart.model in fresh else evaluated & passed
            if gone | rewrite:
                wh.execute(f"delete from {target} where {day} in "
                           f"({day_list(gone | rewrite)})")
            if rewrite:
                wh.execute(f"insert into {target} select * from {source} "
                           f"where {day} in ({day_list(rewrite)})")
            removed |= gone
    _grant(wh, schema, marts)
    return Published(tuple(sorted(passed)), tuple(sorted(evaluated & passed)),
                     tuple(sorted(removed)), tuple(f"{schema}.{m.model}" for m in marts))


def _grant(wh, schema: str, marts: tuple[AnalystMart, ...]) -> None:
    """The analyst roles read this schema (PostgreSQL, Snowflake); DuckDB has no roles."""
    roles = config.settings().analyst_roles
    if wh.name not in ("postgres", "snowflake") or not roles:
        return
    for role in roles:
        if not _NAME.fullmatch(role.lower()):
            raise ValueError(f"TOKENWATCH_ANALYST_ROLES: not a role name: {role!r}")
        wh.execute(f"grant usage on schema {schema} to {role}")
        for mart in marts:
            wh.execute(f"grant select on {schema}.{mart.model} to {role}")
