"""What a valid record of each source looks like: required fields and their types.

The simulator reads this to inject malformed lines on purpose; ingestion reads it to decide
what goes to ``raw.quarantine``. One definition for both.
"""

from __future__ import annotations

#: Required fields per source and the JSON types they must have ("timestamp" is an ISO-8601
#: string with a timezone, "int" excludes booleans).
REQUIRED: dict[str, dict[str, str]] = {
    "wallet_events": {
        "event_id": "str", "event_type": "str", "event_time": "timestamp",
        "wallet_id": "str", "token_ref": "str", "schema_version": "int",
    },
    "apigw_logs": {
        "request_id": "str", "request_time": "timestamp", "route": "str", "status": "int",
        "latency_ms": "number", "wallet_id": "str",
    },
    "lambda_logs": {
        "request_id": "str", "timestamp": "timestamp", "function": "str",
        "duration_ms": "number", "billed_duration_ms": "number",
    },
}

WALLET_EVENT_TYPES: tuple[str, ...] = (
    "provision_request", "provision_response", "idv_challenge", "idv_result", "token_used",
    "lifecycle_notice",
)

#: Limits on one record (a Kinesis record's data or one line of an S3 object), checked before
#: it is parsed; a record over a limit is quarantined. The types' ranges are in
#: ``ingestion/raw_schema.py``, the timestamps' plausible window in
#: ``tokenwatch.config.record_time_window()``.
MAX_RECORD_BYTES = 256 * 1024
#: Levels of JSON nesting, the record's own object counting as the first.
MAX_DEPTH = 32

#: S3 prefixes of the data lake, per source: ``<prefix>/dt=YYYY-MM-DD/hour=HH/part-*.json.gz``
S3_PREFIXES: dict[str, str] = {"apigw_logs": "apigw", "lambda_logs": "lambda"}
