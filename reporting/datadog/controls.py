"""The compliance controls' metrics (``catalog.CONTROL_METRICS``) as Datadog gauges: a pack
built (``tokenwatch.audit.pack.*``, ``tokenwatch.audit.chain.findings``), the age of the
newest daily review (``tokenwatch.audit.review.age_hours``) and the days the audit marts lack
(``tokenwatch.audit.marts.missing_days``).

Unlike KPI points, these are stamped with the time the control ran (now): they say how the
controls stand, and the monitors (monitors/chain_break.json, missed_daily_review.json,
stale_audit_mart.json, failed_audit_pack.json) alert on them, also on their absence. They go
through ``series.publish``, so every rule of a KPI point holds for them too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from reporting.datadog.series import KpiPoint, PublishResult, publish

PERIODS = ("day", "month")
SIDES = ("postgres", "warehouse")
TIERS = ("retention", "hot")


def _now() -> int:
    return int(time.time())


def pack_points(period: str, controls: Mapping[str, str], chain_findings: Mapping[str, int],
                env: str, at: int | None = None) -> list[KpiPoint]:
    """A built pack's points: one pack generated, its failed controls, and the chain findings
    of each side that was checked (a side "not checked" sends nothing: no false zero)."""
    if period not in PERIODS:
        raise ValueError(f"period {period!r} is not one of {PERIODS}")
    unknown = sorted(set(chain_findings) - set(SIDES))
    if unknown:
        raise ValueError(f"chain findings of unknown side(s) {unknown}; expected {SIDES}")
    at = at or _now()
    tags = (f"env:{env}", f"period:{period}")
    failed = sum(1 for verdict in controls.values() if verdict == "fail")
    points = [KpiPoint("tokenwatch.audit.pack.generated", 1, at, tags),
              KpiPoint("tokenwatch.audit.pack.controls_failed", failed, at, tags)]
    points += [KpiPoint("tokenwatch.audit.chain.findings", int(n), at,
                        (f"env:{env}", f"side:{side}"))
               for side, n in sorted(chain_findings.items())]
    return points


def review_point(age_hours: float, env: str, at: int | None = None) -> KpiPoint:
    return KpiPoint("tokenwatch.audit.review.age_hours", round(float(age_hours), 2),
                    at or _now(), (f"env:{env}",))


def missing_days_point(tier: str, days: int, env: str, at: int | None = None) -> KpiPoint:
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {TIERS}")
    return KpiPoint("tokenwatch.audit.marts.missing_days", int(days), at or _now(),
                    (f"env:{env}", f"tier:{tier}"))


def send(points: list[KpiPoint], client_options: Mapping[str, Any]) -> PublishResult:
    """Send control points (checked by every rule first: nothing is sent if one is bad)."""
    return publish(points, client_options)
