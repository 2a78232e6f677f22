"""One ingestion run: the three sources into the warehouse's raw layer, in order.

Plain Python, no Dagster: ``tokenwatch ingest`` and the Dagster assets both call
``ingest``. Each source commits its rows with its own watermark or checkpoints, so one source
failing leaves the others' loads in place; the error names the source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ingestion.sources.kinesis import load_wallet_events
from ingestion.sources.s3 import load_lake
from ingestion.sources.transitions import load_transitions
from ingestion.warehouse.base import Warehouse
from ingestion.world import World

SOURCES = ("transitions", "wallet_events", "s3")
Progress = Callable[[str, int], None]  # (source, records so far)


class IngestError(RuntimeError):
    """A source failed; what other sources loaded before it stays loaded."""


@dataclass
class IngestReport:
    results: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {name: asdict(res) | {"seconds": self.seconds[name]}
                for name, res in self.results.items()}


def _nothing(source: str, n: int) -> None:
    return None


def ingest(sources: World, wh: Warehouse, only: tuple[str, ...] = SOURCES,
           progress: Progress = _nothing) -> IngestReport:
    unknown = set(only) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; expected some of {SOURCES}")
    report = IngestReport()
    loaders = {
        "transitions": lambda: load_transitions(
            sources.pg_dsn, wh, lambda n: progress("transitions", n)),
        "wallet_events": lambda: load_wallet_events(
            sources.kinesis, sources.stream, wh, lambda n: progress("wallet_events", n)),
        "s3": lambda: load_lake(sources.s3, sources.bucket, wh, progress=lambda n: progress(
            "s3", n)),
    }
    for name in SOURCES:
        if name not in only:
            continue
        started = time.perf_counter()
        try:
            report.results[name] = loaders[name]()
        except Exception as exc:
            raise IngestError(f"loading {name} failed: {type(exc).__name__}: {exc}") from exc
        report.seconds[name] = round(time.perf_counter() - started, 3)
    return report
