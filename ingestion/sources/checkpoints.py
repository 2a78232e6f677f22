"""The transition log's checkpoints into the raw layer (``raw.chain_checkpoints`` and
``raw.chain_checkpoint_log``), for the audit marts: what ``state_service.checkpoints`` locked
in S3, as the warehouse's copy.

``take_checkpoint(..., sink=loader(wh))`` streams the rows here as it writes them to S3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from ingestion.raw_schema import CHAIN_CHECKPOINT_LOG, CHAIN_CHECKPOINTS
from ingestion.records import to_arrow
from ingestion.warehouse.base import Warehouse
from state_service.checkpoints import Checkpoint


def loader(wh: Warehouse) -> Callable[[Checkpoint, Iterable[list]], None]:
    """A ``take_checkpoint`` sink that loads into ``wh``."""
    return lambda cp, rows: load_checkpoint(wh, cp, rows)


def load_checkpoint(wh: Warehouse, cp: Checkpoint, rows: Iterable[list]) -> None:
    """One checkpoint's rows and its log entry, in one transaction."""
    now = datetime.now(UTC)
    with wh.transaction():
        batch: list[dict] = []
        for r in rows:
            batch.append({"seq": cp.seq, "token_ref": r[0], "version": r[1],
                          "transition_id": r[2], "row_hash": r[3], "content_hash": r[4],
                          "sealed": r[5], "_loaded_at": now})
            if len(batch) == 100_000:
                wh.append(CHAIN_CHECKPOINTS, to_arrow(CHAIN_CHECKPOINTS, batch))
                batch = []
        wh.append(CHAIN_CHECKPOINTS, to_arrow(CHAIN_CHECKPOINTS, batch))
        wh.append(CHAIN_CHECKPOINT_LOG, to_arrow(CHAIN_CHECKPOINT_LOG, [{
            "seq": cp.seq, "taken_at": datetime.fromisoformat(cp.taken_at),
            "prev_digest": cp.prev_digest, "digest": cp.digest, "key_id": cp.key_id,
            "seal": cp.seal, "xact_from": cp.xact_from, "xact_to": cp.xact_to,
            "row_count": cp.rows, "s3_key": cp.key, "_loaded_at": now}]))
