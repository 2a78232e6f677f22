"""Daily partitions of the marts and of publication (UTC days).

``TOKENWATCH_PARTITIONS_START`` (YYYY-MM-DD, default 2026-01-01) is the first day; a backfill
of any range of days runs as one dbt invocation (``BackfillPolicy.single_run``).
"""

from __future__ import annotations

import os

import dagster as dg

START = os.environ.get("TOKENWATCH_PARTITIONS_START", "2026-01-01")
DAILY = dg.DailyPartitionsDefinition(start_date=START, timezone="UTC", end_offset=1)
