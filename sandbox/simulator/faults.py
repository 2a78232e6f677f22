"""Injected faults: each switchable, each counted in the summary."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields

from ingestion.contract import REQUIRED
from state_service import lifecycle


@dataclass(frozen=True)
class Faults:
    kinesis_duplicates: float = 0.01  # share of events delivered twice
    s3_duplicate_objects: float = 0.03  # share of objects re-delivered under a second key
    out_of_order: float = 0.05  # share of events swapped with a neighbour
    late_events: float = 0.02  # share of events delivered at the end, hours late
    malformed_lines: float = 0.002  # extra bad lines per valid S3 line
    malformed_records: float = 0.002  # extra bad Kinesis records per valid event
    corrupt_objects: int = 1  # S3 objects that are not gzip at all
    illegal_transitions: float = 0.02  # share of tokens that also get an illegal move
    retries: float = 0.02  # share of service calls sent twice with the same event_id

    @classmethod
    def none(cls) -> Faults:
        return cls(**{f.name: type(f.default)(0) for f in fields(cls)})

    @classmethod
    def parse(cls, specs: list[str], base: Faults | None = None) -> Faults:
        """Override fault rates from ``name=value`` strings."""
        values = asdict(base or cls())
        kinds = {f.name: type(f.default) for f in fields(cls)}
        for spec in specs:
            name, sep, value = spec.partition("=")
            if not sep or name not in values:
                raise ValueError(f"fault {spec!r}: expected name=value with name one of "
                                 f"{', '.join(values)}")
            try:
                values[name] = kinds[name](value)
            except ValueError as exc:
                raise ValueError(f"fault {spec!r}: {value!r} is not a number") from exc
        return cls(**values)


MALFORMED_KINDS = ("broken_json", "missing_field", "wrong_type")


def malformed_line(rng: random.Random, source: str, good: dict) -> tuple[str, str]:
    """A bad line derived from a good record of ``source``: (kind, text)."""
    kind = rng.choice(MALFORMED_KINDS)
    required = list(REQUIRED[source])
    bad = dict(good)
    if kind == "broken_json":
        text = json.dumps(bad, separators=(",", ":"))
        return kind, text[: max(5, len(text) // 2)]
    if kind == "missing_field":
        bad.pop(rng.choice(required))
    else:
        name = rng.choice(required)
        bad[name] = {"str": 12345, "timestamp": 1700000000, "int": "not-a-number",
                     "number": "fast"}[REQUIRED[source][name]]
    return kind, json.dumps(bad, separators=(",", ":"))


def illegal_move(rng: random.Random, state: str) -> str:
    """A target state that is not legal from ``state``."""
    targets = [t.value for f, t in lifecycle.illegal_pairs() if f.value == state]
    return rng.choice(targets)
