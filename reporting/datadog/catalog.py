"""What tokenwatch may publish to Datadog: the KPI metrics and the tag keys they may carry.

The metrics, their units and descriptions are declared once, in the dbt marts' yml (under each
KPI column's ``config: meta: kpi:``; ``tokenwatch/kpis.py`` reads them): ``publish`` refuses a
metric that is not declared, and a test checks that every metric a dashboard or monitor
queries is. Adding a KPI means adding its yml block (dbt_project/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from tokenwatch import kpis


@dataclass(frozen=True)
class Kpi:
    unit: str
    description: str


def kpi_metrics(contract: kpis.Contract | None = None) -> MappingProxyType[str, Kpi]:
    """Metric -> unit and description, as the dbt project declares them."""
    declared = (contract or kpis.contract()).metrics
    return MappingProxyType({name: Kpi(k.unit, k.description) for name, k in declared.items()})


KPI_METRICS: MappingProxyType[str, Kpi] = kpi_metrics()

#: Tag keys a KPI point may carry. Each has a small, fixed set of values, so every metric has
#: a bounded number of time series (Datadog bills and slows down per series). Never a token,
#: card or event identifier: those are unbounded and some are sensitive.
#:   env             local | prod                    (required on every point)
#:   wallet          the wallets we integrate with   (a handful)
#:   network         visa | mastercard
#:   decision        green | yellow | red
#:   state           the lifecycle states (state_service/lifecycle.py, ten of them)
#:   reason          the reason codes (state_service/lifecycle.py REASON_CODES)
#:   exception_type  the audit's exception kinds     (a fixed list in the audit)
TAG_KEYS: frozenset[str] = frozenset(
    {"env", "wallet", "network", "decision", "state", "reason", "exception_type"})

#: Tag keys of the publication events (not metrics: a per-day tag is fine on an event).
EVENT_TAG_KEYS: frozenset[str] = frozenset({"env", "partition", "publication"})
