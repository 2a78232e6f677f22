"""The demo's deliberate damage, and its repair: one wallet's provisioning success rate on one
day set to an impossible 1.7, so the quality gate has a partition to withhold. Nothing else in
tokenwatch writes to a mart outside dbt."""

from __future__ import annotations

from datetime import date

from ingestion.warehouse.base import Warehouse


def corrupt_success_rate(wh: Warehouse, relation, day: date) -> list[tuple]:
    """Set one wallet's success rate on ``day`` to an impossible 1.7; return what to restore."""
    table = relation("wallet_provisioning_daily")
    saved = wh.query(f"select wallet_id, network, provision_success_rate from {table} "
                     "where request_date = %s order by requests desc limit 1", [day])
    for wallet, network, _ in saved:
        wh.execute(f"update {table} set provision_success_rate = 1.7 where request_date = %s "
                   "and wallet_id = %s and network = %s", [day, wallet, network])
    return saved


def restore_success_rate(wh: Warehouse, relation, day: date, saved: list[tuple]) -> None:
    table = relation("wallet_provisioning_daily")
    for wallet, network, rate in saved:
        wh.execute(f"update {table} set provision_success_rate = %s where request_date = %s "
                   "and wallet_id = %s and network = %s", [rate, day, wallet, network])
