"""The raw layer's schema: the one contract that ingestion writes and dbt's sources read.

Every raw table carries ``_loaded_at`` (when the warehouse accepted the row) and
``_source_location`` (where the row came from: a PostgreSQL row id, a Kinesis shard and
sequence number, or an S3 key and line). Logical types map to each target's physical types in
the warehouse modules. ``tokenwatch ingest --print-schema`` prints this as a table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

SCHEMA = "raw"

#: The logical types and what each holds. Ingestion refuses a value outside its type before it
#: reaches any warehouse (ingestion/records.py), so no target ever sees one:
#:
#: - ``integer`` is a 32-bit and ``bigint`` a 64-bit signed integer (``INTEGER_RANGES``;
#:   Snowflake's NUMBER(38,0) holds both);
#: - ``double`` is an IEEE 754 binary64, finite: no NaN, no infinity, magnitude at most
#:   ``DOUBLE_MAX`` (a 400-digit number is refused, not rounded to infinity);
#: - ``text`` is Unicode that UTF-8 can encode (no lone surrogates) and without NUL (U+0000),
#:   which PostgreSQL's text and jsonb cannot hold; ``json`` is text holding JSON (numbers in it
#:   finite and within ``DOUBLE_MAX``, the same text rules for its keys and strings);
#: - ``timestamp`` is a point in time with a timezone, stored in UTC; a record's timestamps
#:   must lie in the plausible window ``tokenwatch.config.record_time_window()``.
LOGICAL_TYPES = ("text", "bigint", "integer", "double", "boolean", "timestamp", "json")
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
DOUBLE_MAX = sys.float_info.max


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of LOGICAL_TYPES
    description: str


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    key: str | None  # the column duplicates are recognised by (None: no dedupe)
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


C = Column
_LOADED = C("_loaded_at", "timestamp", "When the warehouse accepted the row (UTC).")


def _loc(what: str) -> Column:
    return C("_source_location", "text", f"Where the row came from: {what}.")


TRANSITIONS = Table(
    "token_state_transitions",
    "The state service's append-only transition log, copied incrementally from PostgreSQL.",
    "transition_id",
    (
        C("transition_id", "bigint", "The source row's identity in the state service."),
        C("token_ref", "text", "The payment token's opaque reference."),
        C("version", "integer", "The token's version after this transition (1 = creation)."),
        C("event_id", "text", "The writer's idempotency key, unique across the log."),
        C("from_state", "text", "State before the transition; empty on creation."),
        C("to_state", "text", "State after the transition."),
        C("actor", "text", "Who caused it: issuer, cardholder, wallet, token_service, system."),
        C("reason_code", "text", "Why, from the fixed list of reason codes."),
        C("decision", "text", "Provisioning decision on ProvisionPending: green, yellow, red."),
        C("idv_method", "text", "ID&V method on a yellow decision."),
        C("wallet_id", "text", "The wallet the token lives in."),
        C("network", "text", "Card network: visa or mastercard."),
        C("token_type", "text", "secure_element, hce or card_on_file."),
        C("occurred_at", "timestamp", "When it happened, by the writer's clock."),
        C("recorded_at", "timestamp", "When the state service recorded it (database clock)."),
        C("xact_id", "bigint", "The writing transaction's id (the incremental-read contract)."),
        C("prev_hash", "text", "row_hash of the token's previous row (hash chain)."),
        C("row_hash", "text", "sha256 of the canonical row (hash chain)."),
        _LOADED,
        _loc("pg:token_state_transitions/<transition_id>"),
    ),
)

WALLET_EVENTS = Table(
    "wallet_events",
    "Wallet events from the Kinesis stream, one row per event_id (re-deliveries dropped).",
    "event_id",
    (
        C("event_id", "text", "The event's unique id."),
        C("event_type", "text", "provision_request, provision_response, idv_challenge, "
          "idv_result, token_used or lifecycle_notice."),
        C("event_time", "timestamp", "When the event happened (may be hours before arrival)."),
        C("wallet_id", "text", "The wallet that emitted the event."),
        C("token_ref", "text", "The token the event is about."),
        C("schema_version", "integer", "Version of the event's schema."),
        C("request_id", "text", "Provisioning request id (provision_request/response)."),
        C("network", "text", "Card network (provision_request)."),
        C("token_type", "text", "Token type (provision_request)."),
        C("latency_ms", "double", "Provisioning latency in ms (provision_response)."),
        C("http_status", "integer", "HTTP status of the provisioning call (provision_response)."),
        C("decision", "text", "Provisioning decision (provision_response)."),
        C("error_code", "text", "Error code of a failed call (provision_response)."),
        C("idv_method", "text", "ID&V method (idv_challenge, idv_result)."),
        C("outcome", "text", "ID&V outcome: pass, fail, timeout (idv_result)."),
        C("amount", "double", "Authorised amount (token_used)."),
        C("currency", "text", "ISO currency (token_used)."),
        C("merchant_category", "text", "Merchant category code (token_used)."),
        C("new_state", "text", "The token's new state (lifecycle_notice)."),
        C("reason_code", "text", "Reason code (lifecycle_notice)."),
        C("actor", "text", "Actor (lifecycle_notice)."),
        C("extra", "json", "Fields not in this schema (schema drift), kept as JSON."),
        C("shard_id", "text", "Kinesis shard the event was read from."),
        C("sequence_number", "text", "Kinesis sequence number (a decimal integer)."),
        C("arrived_at", "timestamp", "Kinesis approximate arrival time."),
        _LOADED,
        _loc("kinesis:<stream>/<shard_id>/<sequence_number>"),
    ),
)

APIGW_LOGS = Table(
    "apigw_logs",
    "API Gateway access logs from the S3 data lake (apigw/dt=/hour=/part-*.json.gz).",
    None,
    (
        C("request_id", "text", "API Gateway request id."),
        C("request_time", "timestamp", "When the request arrived."),
        C("route", "text", "Method and route, e.g. 'POST /v1/provision'."),
        C("status", "integer", "HTTP status returned."),
        C("latency_ms", "double", "End-to-end latency in ms."),
        C("integration_latency_ms", "double", "Latency of the backend integration in ms."),
        C("wallet_id", "text", "The calling wallet."),
        C("extra", "json", "Fields not in this schema (schema drift), kept as JSON."),
        _LOADED,
        _loc("s3://<bucket>/<key>#<line>"),
    ),
)

LAMBDA_LOGS = Table(
    "lambda_logs",
    "Lambda invocation logs from the S3 data lake (lambda/dt=/hour=/part-*.json.gz).",
    None,
    (
        C("request_id", "text", "The API Gateway request the invocation served."),
        C("invoked_at", "timestamp", "When the invocation started (the record's timestamp)."),
        C("function", "text", "Lambda function name."),
        C("duration_ms", "double", "Run time in ms."),
        C("billed_duration_ms", "double", "Billed duration in ms."),
        C("memory_size_mb", "integer", "Configured memory in MB."),
        C("max_memory_used_mb", "integer", "Peak memory used in MB."),
        C("error", "text", "Error of a failed invocation, else empty."),
        C("extra", "json", "Fields not in this schema (schema drift), kept as JSON."),
        _LOADED,
        _loc("s3://<bucket>/<key>#<line>"),
    ),
)

QUARANTINE = Table(
    "quarantine",
    "Every record that could not be loaded, with where it was and why. Nothing is dropped.",
    None,
    (
        C("source", "text", "token_state_transitions, wallet_events, apigw_logs, lambda_logs."),
        C("location", "text", "Where: s3://bucket/key#line, kinesis:stream/shard/seq, pg:..."),
        C("raw_text", "text", "The record as received (redacted, made storable), truncated to "
          "4000 characters."),
        C("reason", "text", "Why it was refused, naming the field."),
        _LOADED,
    ),
)

INGEST_STATE = Table(
    "_ingest_state",
    "Watermarks and checkpoints, written in the same transaction as the rows they cover.",
    "key",
    (
        C("key", "text", "transitions:xact_watermark, kinesis:<stream>:<shard>, ..."),
        C("value", "text", "The watermark or checkpoint."),
        C("updated_at", "timestamp", "When it last moved."),
    ),
)

S3_MANIFEST = Table(
    "_s3_manifest",
    "Every S3 object seen: loaded once per key and etag; identical content elsewhere skipped.",
    None,
    (
        C("s3_key", "text", "Object key."),
        C("etag", "text", "Object ETag (content hash for single-part uploads)."),
        C("size_bytes", "bigint", "Object size."),
        C("rows_loaded", "bigint", "Rows loaded from it."),
        C("rows_quarantined", "bigint", "Lines quarantined from it."),
        C("duplicate_of", "text", "Key of an already loaded object with identical content."),
        _LOADED,
    ),
)

CHAIN_CHECKPOINTS = Table(
    "chain_checkpoints",
    "Every transition row a checkpoint recorded (state_service/checkpoints.py): the reference "
    "the audit marts compare the log with. Written by `tokenwatch audit checkpoint`.",
    None,
    (
        C("seq", "bigint", "The checkpoint's number."),
        C("token_ref", "text", "The token."),
        C("version", "integer", "The row's version in the token's chain."),
        C("transition_id", "bigint", "The row's identity in the state service."),
        C("row_hash", "text", "The row's hash when the checkpoint was taken."),
        C("content_hash", "text", "sha256 of the row's own content (chain.CONTENT_FIELDS): an "
          "edited row changes it, a row only re-hashed does not."),
        C("sealed", "boolean", "Whether the row's seal held when the checkpoint was taken."),
        _LOADED,
    ),
)

CHAIN_CHECKPOINT_LOG = Table(
    "chain_checkpoint_log",
    "One row per checkpoint: its sequence, digest chain and seal, and where its locked S3 "
    "copy is.",
    "seq",
    (
        C("seq", "bigint", "The checkpoint's number (1, 2, ...; a gap is a missing checkpoint)."),
        C("taken_at", "timestamp", "When it was taken (UTC)."),
        C("prev_digest", "text", "Digest of the checkpoint before it (empty for the first)."),
        C("digest", "text", "sha256 of the checkpoint's content."),
        C("key_id", "text", "The chain key that sealed the digest."),
        C("seal", "text", "HMAC of the digest under that key."),
        C("xact_from", "bigint", "First transaction id covered."),
        C("xact_to", "bigint", "Transaction ids below this are covered."),
        C("row_count", "bigint", "Rows recorded (not `rows`: a reserved word in Snowflake)."),
        C("s3_key", "text", "The S3 object (key and version) under Object Lock."),
        _LOADED,
    ),
)

LOADS = Table(
    "_loads",
    "Every load of a raw table, numbered in commit order: the incremental models' watermark. "
    "A load's rows carry its `_loaded_at` stamp, which is the worker's clock and may be hours "
    "older than the commit; `load_seq` is taken from `_load_counter` as the load's last step "
    "(its lock held until the commit), so a higher number always committed later.",
    None,
    (
        C("load_seq", "bigint", "The load's number: 1, 2, ... in commit order."),
        C("table_name", "text", "The raw table loaded."),
        C("loaded_at", "timestamp", "The `_loaded_at` stamp of the load's rows."),
        C("row_count", "bigint", "Rows inserted by the append that carried this stamp."),
        C("registered_at", "timestamp", "The worker's clock at the load's last step (UTC)."),
    ),
)

LOAD_COUNTER = Table(
    "_load_counter",
    "One row: the last load_seq handed out (ingestion/warehouse/base.py).",
    None,
    (C("last_seq", "bigint", "The last load_seq given to a load."),),
)

TABLES: dict[str, Table] = {t.name: t for t in (
    TRANSITIONS, WALLET_EVENTS, APIGW_LOGS, LAMBDA_LOGS, QUARANTINE, INGEST_STATE, S3_MANIFEST,
    CHAIN_CHECKPOINTS, CHAIN_CHECKPOINT_LOG, LOADS, LOAD_COUNTER)}

RAW_TEXT_LIMIT = 4000
