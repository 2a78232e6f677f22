"""Whether schedules and sensors run by default: stopped in the local environment (opening the
UI starts nothing; turn one on in the UI or with ``dagster schedule start`` /
``dagster sensor start``), running in production (``TOKENWATCH_ENV=prod``). Decided once, here,
from ``tokenwatch.config.env_name()``; every schedule and sensor of ``orchestration/defs`` takes
its ``default_status`` from these two functions (a test checks it).
"""

from __future__ import annotations

import dagster as dg

from tokenwatch import config


def runs_by_default(env: str | None = None) -> bool:
    """True in production: automation that is not started by hand elsewhere."""
    return (env or config.env_name()) == "prod"


def schedule_status(env: str | None = None) -> dg.DefaultScheduleStatus:
    return (dg.DefaultScheduleStatus.RUNNING if runs_by_default(env)
            else dg.DefaultScheduleStatus.STOPPED)


def sensor_status(env: str | None = None) -> dg.DefaultSensorStatus:
    return (dg.DefaultSensorStatus.RUNNING if runs_by_default(env)
            else dg.DefaultSensorStatus.STOPPED)
