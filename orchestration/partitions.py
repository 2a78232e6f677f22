"""Daily partitions of the marts and of publication (UTC days).

``TOKENWATCH_PARTITIONS_START`` (YYYY-MM-DD, default 2026-01-01) is the first day; a backfill
of any range of days runs as one dbt invocation (``BackfillPolicy.single_run``).
"""

from __future__ import annotations

import warnings

import dagster as dg

from tokenwatch import config

# partitioned asset checks (gate.py) and single-run backfills are used on purpose
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

START = config.settings().partitions_start.isoformat()
DAILY = dg.DailyPartitionsDefinition(start_date=START, timezone="UTC", end_offset=1)
