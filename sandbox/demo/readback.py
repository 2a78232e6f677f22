"""What the demo reads back from the marts and the Datadog intake to show a person."""

from __future__ import annotations

from datetime import date

from ingestion.warehouse.base import Warehouse


def wallet_summary(wh: Warehouse, relation, last_day: date) -> list[dict]:
    """Per wallet over the whole period: provisioning success, yellow completion, API error
    rate, the worst day's p99 latency, and active tokens at the end of the last day."""
    compare = wh.query(f"select wallet_id, requests, provision_success_rate, "
                       f"yellow_completion_rate, api_error_rate from "
                       f"{relation('wallet_comparison')} order by requests desc")
    p99 = dict(wh.query(f"select wallet_id, max(gateway_latency_p99_ms) from "
                        f"{relation('wallet_service_daily')} group by wallet_id"))
    active = dict(wh.query(f"select wallet_id, active_tokens from "
                           f"{relation('wallet_token_usage_daily')} where usage_date = %s",
                           [last_day]))
    return [{"wallet": w, "requests": n, "success_rate": s, "yellow_completion": y,
             "error_rate": e, "p99_ms": p99.get(w), "active_tokens": active.get(w)}
            for w, n, s, y, e in compare]


def audit_findings(wh: Warehouse, relation) -> list[tuple[str, int]]:
    return [(t, int(n)) for t, n in wh.query(
        f"select exception_type, sum(findings) from {relation('audit_daily_summary')} "
        "group by exception_type having sum(findings) > 0 order by 2 desc")]


def withheld_events(records: list[dict]) -> list[dict]:
    return [r["body"] for r in records if r["path"] == "/api/v1/events"
            and "publication:withheld" in r["body"].get("tags", [])]
