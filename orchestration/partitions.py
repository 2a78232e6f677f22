"""Daily partitions of the marts and of publication (UTC days).

They start where the data starts: ``TOKENWATCH_PARTITIONS_START`` (YYYY-MM-DD) when it is set;
else, locally, the first day ever simulated into the stack (``data_start`` in
``$TOKENWATCH_HOME/stack.json``, written by ``tokenwatch simulate`` and the demo); else
``DEFAULT_DAYS`` days before today. The definitions are built at import, so the day is read
from the environment and that file only, never from the warehouse. A backfill of any range of
days runs as one dbt invocation (``BackfillPolicy.single_run``).
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from tokenwatch import config, stack_file

# partitioned asset checks (gate.py) and single-run backfills are used on purpose
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

#: without a setting or a recorded first day: this many days of history
DEFAULT_DAYS = 30


def start_day(today: date | None = None) -> date:
    """The first daily partition (see the module docstring)."""
    explicit = config.settings().partitions_start
    if explicit is not None:
        return explicit
    if config.env_name() == "local":
        recorded = stack_file.data_start()
        if recorded is not None:
            return recorded
    return (today or datetime.now(UTC).date()) - timedelta(days=DEFAULT_DAYS)


START = start_day().isoformat()
DAILY = dg.DailyPartitionsDefinition(start_date=START, timezone="UTC", end_offset=1)
