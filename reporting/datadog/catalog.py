"""What tokenwatch may publish to Datadog: the KPI metrics, the control metrics, the pipeline's
own metrics and the tag keys they may carry.

The KPI metrics, their units and descriptions are declared once, in the dbt marts' yml (under
each KPI column's ``config: meta: kpi:``; ``tokenwatch/kpis.py`` reads them). The control
metrics are not mart columns: they measure tokenwatch's own compliance controls when those run
(the audit pack, the daily review, retention), so they are declared here, in
``CONTROL_METRICS``; so are the metrics of the Dagster runs themselves (``PIPELINE_METRICS``).
``publish`` refuses a metric declared in none, and a test checks that every metric a dashboard
or monitor queries is. Adding a KPI means adding its yml block (dbt_project/README.md); adding a
control or pipeline metric, a line below.
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

#: Metrics of tokenwatch's compliance controls (reporting/datadog/controls.py sends them, stamped
#: with the time the control ran, not with a partition): metric -> unit and description.
CONTROL_METRICS: MappingProxyType[str, Kpi] = MappingProxyType({
    "tokenwatch.audit.pack.generated": Kpi(
        "packs", "Audit packs built (1 per pack), per period (day or month)"),
    "tokenwatch.audit.pack.controls_failed": Kpi(
        "controls", "PCI DSS controls a pack's evidence failed (0 when all pass), per period"),
    "tokenwatch.audit.chain.findings": Kpi(
        "findings", "Hash-chain findings in the latest pack, per side (postgres, warehouse)"),
    "tokenwatch.audit.review.age_hours": Kpi(
        "hours", "Hours since the end of the last day whose daily audit pack verifies, without a "
                 "gap"),
    "tokenwatch.audit.marts.missing_days": Kpi(
        "days", "Days the source holds that the audit marts lack, per tier (retention: 12 "
                "months, hot: 90 days)"),
})

#: Metrics of the pipeline itself: each finished Dagster run (success, failure, canceled) as the
#: run-status sensors of orchestration/defs/run_reports/ report it, stamped with the run's end
#: (reporting/datadog/pipeline.py builds them): metric -> unit and description.
PIPELINE_METRICS: MappingProxyType[str, Kpi] = MappingProxyType({
    "tokenwatch.pipeline.run.duration_s": Kpi(
        "seconds", "A finished run's wall time, start to end, per job and outcome"),
    "tokenwatch.pipeline.run.count": Kpi(
        "runs", "Finished runs (a count, 1 per run), per job and outcome (success, failure, "
                "canceled)"),
    "tokenwatch.pipeline.gate.withheld_days": Kpi(
        "days", "Days of a run's partitions the quality gate withheld (0 when every day "
                "passed; sent only by runs that evaluated the gate), per job"),
})

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
#:   period          day | month                     (an audit pack's period)
#:   side            postgres | warehouse            (who verified the hash chains)
#:   tier            retention | hot                 (12 months, the last 90 days)
#:   job             the Dagster jobs of the definitions (a handful)
#:   outcome         success | failure | canceled    (a finished run's)
#: (A run's partition is never a metric tag: a new value every day. Its event carries it.)
TAG_KEYS: frozenset[str] = frozenset(
    {"env", "wallet", "network", "decision", "state", "reason", "exception_type", "period",
     "side", "tier", "job", "outcome"})

#: Tag keys of the publication and audit events (not metrics: a per-day tag is fine on an
#: event). ``audit``: the control (pack, retention, hot_tier, review) and ``status`` its
#: outcome (passed, failed). A finished run's event: ``job``, ``outcome`` and ``gate`` (passed or
#: withheld, when the run evaluated the gate).
EVENT_TAG_KEYS: frozenset[str] = frozenset({"env", "partition", "publication", "audit",
                                            "status", "job", "outcome", "gate"})
