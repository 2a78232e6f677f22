"""What tokenwatch may publish to Datadog: the KPI metrics and the tag keys they may carry.

This is the one list: ``publish`` refuses a metric that is not here, and a test checks that
every metric a dashboard or monitor queries is here. Adding a KPI means adding a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Kpi:
    unit: str
    description: str


KPI_METRICS: MappingProxyType[str, Kpi] = MappingProxyType({
    "tokenwatch.provisioning.requests": Kpi(
        "requests", "Provisioning requests received, per wallet and network"),
    "tokenwatch.provisioning.success_rate": Kpi(
        "fraction", "Share of provisioning requests that ended in ProvisionSuccess"),
    "tokenwatch.provisioning.yellow_completion_rate": Kpi(
        "fraction", "Share of yellow-path (ID&V) provisionings that completed"),
    "tokenwatch.provisioning.decision_share": Kpi(
        "fraction", "Share of provisioning decisions per decision (green, yellow, red)"),
    "tokenwatch.provisioning.time_to_activate_p95_s": Kpi(
        "seconds", "95th percentile of time from TokenRequested to TokenActive"),
    "tokenwatch.service.requests": Kpi(
        "requests", "API requests served by the token service"),
    "tokenwatch.service.error_rate_4xx": Kpi(
        "fraction", "Share of API requests answered with a 4xx status"),
    "tokenwatch.service.error_rate_5xx": Kpi(
        "fraction", "Share of API requests answered with a 5xx status"),
    "tokenwatch.service.latency_p50_ms": Kpi("milliseconds", "Median API latency"),
    "tokenwatch.service.latency_p95_ms": Kpi("milliseconds", "95th percentile API latency"),
    "tokenwatch.service.latency_p99_ms": Kpi("milliseconds", "99th percentile API latency"),
    "tokenwatch.tokens.active": Kpi("tokens", "Tokens in TokenActive at the end of the day"),
    "tokenwatch.tokens.transacting": Kpi(
        "tokens", "Active tokens with at least one authorisation in the day"),
    "tokenwatch.tokens.authorisations_per_active": Kpi(
        "authorisations", "Payment authorisations per active token in the day"),
    "tokenwatch.audit.exceptions": Kpi(
        "exceptions", "Audit exceptions found, per exception type (0 when clean)"),
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
TAG_KEYS: frozenset[str] = frozenset(
    {"env", "wallet", "network", "decision", "state", "reason", "exception_type"})

#: Tag keys of the publication events (not metrics: a per-day tag is fine on an event).
EVENT_TAG_KEYS: frozenset[str] = frozenset({"env", "partition", "publication"})
