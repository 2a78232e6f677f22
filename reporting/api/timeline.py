"""A token's life: the live state and history from the state service's PostgreSQL, merged with
what the warehouse made of it (state spans, wallet events).

PostgreSQL is read as ``tokenwatch_reader`` (SELECT only; ``state_service.roles``), in
read-only sessions with a statement timeout, from the tables ``tokens`` and
``token_state_transitions``. The answer holds no card data: ``token_ref`` is already a keyed
hash, ``card_ref`` and the chain's hashes are left out, and wallet events come from
``fct_wallet_events``, which carries no raw payload.

``timeline`` is one chronological list: each transition (``source: state_service``) and each
wallet event (``source: warehouse``). ``warehouse.in_sync`` says whether the warehouse's current
span is the live state (false while ingestion or dbt has not caught up).
"""

from __future__ import annotations

from datetime import datetime

from reporting.api import relations
from reporting.api.formats import plain
from reporting.api.readers import QueryTimeout, Reader, WarehouseUnavailable

LIVE = ("wallet_id", "network", "token_type", "state", "version", "created_at", "updated_at")
HISTORY = ("version", "from_state", "to_state", "actor", "reason_code", "decision",
           "idv_method", "occurred_at", "recorded_at")
SPANS = ("state", "state_visit_number", "entered_at", "entered_by", "entered_reason_code",
         "exited_at", "exited_by", "next_state", "duration_seconds", "is_current")
EVENTS = ("event_id", "event_type", "event_time", "wallet_id", "network", "latency_ms",
          "http_status", "decision", "error_code", "idv_method", "idv_outcome", "amount",
          "currency", "merchant_category", "new_state", "reason_code", "actor")


class StateSource:
    """The state service's database, read-only, as ``tokenwatch_reader``."""

    def __init__(self, dsn: str, timeout_s: float, pool_size: int = 4):
        from psycopg_pool import ConnectionPool

        options = (f"-c statement_timeout={max(1, int(timeout_s * 1000))} "
                   "-c default_transaction_read_only=on -c TimeZone=UTC")
        self.timeout_s = timeout_s
        self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=True, timeout=5,
                                   kwargs={"autocommit": True, "options": options},
                                   name="tokenwatch-reports-state")

    def token(self, token_ref: str) -> tuple[tuple | None, list[tuple]]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection() as conn:
                live = conn.execute(f"select {', '.join(LIVE)} from tokens where token_ref = %s",
                                    [token_ref]).fetchone()
                history = conn.execute(
                    f"select {', '.join(HISTORY)} from token_state_transitions "
                    "where token_ref = %s order by version", [token_ref]).fetchall()
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(self.timeout_s) from None
        except (psycopg.Error, PoolTimeout) as error:
            raise WarehouseUnavailable(f"the state service's database is unavailable "
                                       f"({error.__class__.__name__})") from error
        return live, history

    def close(self) -> None:
        self.pool.close()


def _records(names: tuple[str, ...], rows: list[tuple]) -> list[dict]:
    return [{name: plain(value) for name, value in zip(names, row, strict=True)}
            for row in rows]


def _at(value) -> str:
    return value if isinstance(value, str) else plain(value) if isinstance(value, datetime) \
        else str(value)


def timeline(state: StateSource, reader: Reader, token_ref: str, max_events: int) -> dict | None:
    """The token's timeline, or None when neither PostgreSQL nor the warehouse knows it."""
    live, history = state.token(token_ref)
    spans = reader.query(f"select {', '.join(SPANS)} from "
                         f"{relations.relation('fct_token_state_spans')} where token_ref = %s "
                         "order by entered_at, state_visit_number", [token_ref])
    events = reader.query(f"select {', '.join(EVENTS)} from "
                          f"{relations.relation('fct_wallet_events')} where token_ref = %s "
                          f"order by event_time, event_id limit {int(max_events) + 1}",
                          [token_ref])
    if live is None and not history and not spans and not events:
        return None
    truncated = len(events) > max_events
    events = events[:max_events]
    live_d = dict(zip(LIVE, (plain(v) for v in live), strict=True)) if live else None
    history_d, spans_d, events_d = (_records(HISTORY, history), _records(SPANS, spans),
                                    _records(EVENTS, events))
    merged = [{"at": h["occurred_at"], "source": "state_service", "kind": "transition",
               "from_state": h["from_state"], "to_state": h["to_state"], "actor": h["actor"],
               "reason_code": h["reason_code"], "version": h["version"]} for h in history_d]
    merged += [{"at": e["event_time"], "source": "warehouse", "kind": "wallet_event",
                "event_type": e["event_type"], "event_id": e["event_id"],
                "decision": e["decision"], "http_status": e["http_status"]} for e in events_d]
    merged.sort(key=lambda item: (_at(item["at"]), item["kind"]))
    current = next((s["state"] for s in reversed(spans_d) if s["is_current"]), None)
    return {"token_ref": token_ref, "live": live_d, "history": history_d, "spans": spans_d,
            "events": events_d, "events_truncated": truncated, "timeline": merged,
            "warehouse": {"current_state": current,
                          "in_sync": bool(live_d) and current == live_d["state"],
                          "spans": len(spans_d), "events": len(events_d)}}
