"""What the charts show, read from the KPI marts: plain records, one query per chart.

Rates are ratios of sums of their counts (a wallet's day spans several networks in
``wallet_provisioning_daily``: its success rate is its successes over its requests, never an
average of the networks' rates). Percentiles cannot be re-aggregated, so latency stays per
wallet and day as the mart has it. ``query`` is a warehouse's ``query`` (``%s`` placeholders)
and ``relation`` names a model's relation in that warehouse.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from quality.verdicts import as_date
from reporting.charts.style import wallet_name

Query = Callable[..., list[tuple]]
Relation = Callable[[str], str]

#: The marts the charts read (the Dagster asset depends on each).
CHART_MARTS = ("wallet_provisioning_daily", "provisioning_funnel", "wallet_service_daily",
               "token_state_daily")
PERCENTILES = ("p50", "p95", "p99")


def _num(value) -> float | None:
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal | int | float) else float(str(value))


def _ratio(part, whole) -> float | None:
    return None if not whole else float(part) / float(whole)


def success_rate(query: Query, relation: Relation) -> list[dict]:
    """Per wallet and request day: requests, successes and their ratio."""
    rows = query(f"select wallet_id, request_date, sum(provision_successes), sum(requests) "
                 f"from {relation('wallet_provisioning_daily')} "
                 "group by wallet_id, request_date order by request_date, wallet_id")
    return [{"day": as_date(d).isoformat(), "wallet_id": w, "wallet": wallet_name(w),
             "successes": int(s), "requests": int(r), "success_rate": _ratio(s, r)}
            for w, d, s, r in rows]


def funnel(query: Query, relation: Relation) -> list[dict]:
    """Per wallet and funnel step: tokens that reached it, and their share of the tokens that
    reached the first step (the requests)."""
    rows = query(f"select wallet_id, step_number, state, tokens_reached "
                 f"from {relation('provisioning_funnel')} order by wallet_id, step_number")
    first = {w: int(n) for w, step, _, n in rows if step == 1}
    return [{"wallet_id": w, "wallet": wallet_name(w), "step": int(step),
             "state": state, "tokens": int(n), "share": _ratio(n, first.get(w))}
            for w, step, state, n in rows]


def latency(query: Query, relation: Relation) -> list[dict]:
    """Per wallet, day and percentile: the API Gateway latency in milliseconds."""
    rows = query(f"select wallet_id, activity_date, gateway_latency_p50_ms, "
                 f"gateway_latency_p95_ms, gateway_latency_p99_ms "
                 f"from {relation('wallet_service_daily')} order by activity_date, wallet_id")
    return [{"day": as_date(d).isoformat(), "wallet_id": w, "wallet": wallet_name(w),
             "percentile": p, "latency_ms": _num(v)}
            for w, d, *values in rows for p, v in zip(PERCENTILES, values, strict=True)
            if v is not None]


def error_rate(query: Query, relation: Relation) -> list[dict]:
    """Per wallet, day and class (4xx, 5xx): errors over API requests, from the counts."""
    rows = query(f"select wallet_id, activity_date, sum(client_errors), sum(server_errors), "
                 f"sum(api_requests) from {relation('wallet_service_daily')} "
                 "group by wallet_id, activity_date order by activity_date, wallet_id")
    out = []
    for w, d, client, server, requests in rows:
        for kind, errors in (("4xx", client), ("5xx", server)):
            if requests:
                out.append({"day": as_date(d).isoformat(), "wallet_id": w,
                            "wallet": wallet_name(w), "class": kind, "errors": int(errors),
                            "requests": int(requests), "error_rate": _ratio(errors, requests)})
    return out


def states(query: Query, relation: Relation) -> list[dict]:
    """Per day and state: tokens in that state at the day's end, all wallets."""
    rows = query(f"select calendar_date, state, min(state_order), sum(tokens_at_day_end) "
                 f"from {relation('token_state_daily')} group by calendar_date, state "
                 "order by calendar_date, min(state_order)")
    return [{"day": as_date(d).isoformat(), "state": s, "state_order": int(o),
             "tokens": int(n)} for d, s, o, n in rows]
