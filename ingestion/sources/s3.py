"""API Gateway and Lambda logs from the S3 data lake into ``raw.apigw_logs`` / ``raw.lambda_logs``.

Objects are listed by prefix with pagination. The object manifest (``raw._s3_manifest``) makes
loads idempotent: a key already loaded with the same etag is skipped, and an object whose
content (etag and size) equals an already loaded one under another key is recorded as a
duplicate of it and not loaded again. Each object is parsed as a stream (gzip JSON lines) and
written with its manifest row in one warehouse transaction. A bad line is quarantined with its
key and line number; an object that is not gzip is quarantined as one entry, and so is the rest
of an object whose gzip stream breaks. A line longer than ``MAX_RECORD_BYTES`` is quarantined
from its first bytes and skipped without being held in memory. A body that cannot be read (the
connection drops) is not the object's fault: the load fails and the object is read again by the
next run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from ingestion.contract import MAX_RECORD_BYTES, S3_PREFIXES
from ingestion.raw_schema import QUARANTINE, S3_MANIFEST, TABLES
from ingestion.records import BadRecord, RecordParser, quarantine_row, to_arrow
from ingestion.warehouse.base import Warehouse
from tokenwatch.pan import find_pan_like

NOT_GZIP_PREVIEW = 512
_SKIP_CHUNK = 1 << 16


class S3ReadError(RuntimeError):
    """An object's body could not be read: the network's fault, not the object's."""


@dataclass
class S3Result:
    objects_seen: int = 0
    objects_loaded: int = 0
    objects_skipped: int = 0  # same key and etag loaded before
    duplicate_objects: int = 0  # identical content under another key
    rows_loaded: int = 0
    quarantined: int = 0
    per_source: dict[str, int] = field(default_factory=dict)


def stored_key(key: str) -> str:
    """The object's key as the warehouse records it: as is, unless it holds a PAN-like value,
    which never enters the warehouse; then a name made of the key's sha256."""
    if not find_pan_like(key):
        return key
    return f"[PAN-REDACTED key, sha256 {hashlib.sha256(key.encode()).hexdigest()}]"


def list_objects(client, bucket: str, prefix: str, page_size: int = 1000,
                 start_after: str = ""):
    """Every object under ``prefix``, in key order, page by page (after ``start_after``)."""
    kwargs = {"Bucket": bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": page_size}}
    if start_after:
        kwargs["StartAfter"] = start_after
    for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
        yield from page.get("Contents", [])


def newest_keys(client, bucket: str, after: dict[str, str]) -> dict[str, str]:
    """Per lake prefix, the greatest key listed after ``after[prefix]`` (keys are
    ``dt=/hour=`` partitioned, so they sort by time): empty when nothing new landed."""
    newest = {}
    for prefix in S3_PREFIXES.values():
        for obj in list_objects(client, bucket, prefix + "/", start_after=after.get(prefix, "")):
            newest[prefix] = max(newest.get(prefix, ""), obj["Key"])
    return newest


def load_lake(client, bucket: str, wh: Warehouse, sources: tuple[str, ...] = tuple(S3_PREFIXES),
              progress: Callable[[int], None] = lambda n: None,
              page_size: int = 1000) -> S3Result:
    result = S3Result()
    loaded = {(k, e): None for k, e in wh.query("select s3_key, etag from raw._s3_manifest")}
    by_content = {(e, int(sz)): k for k, e, sz in wh.query(
        "select s3_key, etag, size_bytes from raw._s3_manifest where duplicate_of is null")}
    for source in sources:
        parser = RecordParser(source, TABLES[source])
        for obj in list_objects(client, bucket, S3_PREFIXES[source] + "/", page_size):
            key, etag, size = obj["Key"], obj["ETag"].strip('"'), int(obj["Size"])
            result.objects_seen += 1
            if stored_key(key) != key:  # a card number in the key: the object is not read
                key = stored_key(key)
                if (key, etag) in loaded:
                    result.objects_skipped += 1
                    continue
                bad = [quarantine_row(source, f"s3://{bucket}/{key}", b"", (
                    "the object's key holds a PAN-like value: the object is not loaded; "
                    "write its lines again under a key without the card number"),
                    datetime.now(UTC))]
                with wh.transaction():
                    wh.append(QUARANTINE, to_arrow(QUARANTINE, bad))
                    _record(wh, key, etag, size, 0, 1, None)
                loaded[(key, etag)] = None
                result.quarantined += 1
                continue
            if (key, etag) in loaded:
                result.objects_skipped += 1
                continue
            original = by_content.get((etag, size))
            if original is not None and original != key:
                with wh.transaction():
                    _record(wh, key, etag, size, 0, 0, original)
                loaded[(key, etag)] = None
                result.duplicate_objects += 1
                continue
            rows, bad = _read_object(client, bucket, key, source, parser)
            with wh.transaction():
                n = wh.append(TABLES[source], to_arrow(TABLES[source], rows))
                wh.append(QUARANTINE, to_arrow(QUARANTINE, bad))
                _record(wh, key, etag, size, n, len(bad), None)
            loaded[(key, etag)] = None
            by_content[(etag, size)] = key
            result.objects_loaded += 1
            result.rows_loaded += n
            result.quarantined += len(bad)
            result.per_source[source] = result.per_source.get(source, 0) + n
            progress(result.objects_seen)
    return result


def _record(wh: Warehouse, key, etag, size, rows, bad, duplicate_of) -> None:
    table = pa.Table.from_pylist([{
        "s3_key": key, "etag": etag, "size_bytes": size, "rows_loaded": rows,
        "rows_quarantined": bad, "duplicate_of": duplicate_of,
        "_loaded_at": datetime.now(UTC)}])
    wh.append(S3_MANIFEST, to_arrow(S3_MANIFEST, table.to_pylist()))


def _read_object(client, bucket, key, source, parser: RecordParser):
    now = datetime.now(UTC)
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    rows: list[dict] = []
    bad: list[dict] = []
    location = f"s3://{bucket}/{key}"
    try:
        head = body.read(2)
    except Exception as exc:
        raise S3ReadError(f"reading {location} failed: {type(exc).__name__}: {exc}") from exc
    stream = io.BufferedReader(_Prefixed(head, body, location))
    if head != b"\x1f\x8b":
        preview = stream.read(NOT_GZIP_PREVIEW)
        bad.append(quarantine_row(source, location, preview,
                                  "object is not gzip (no gzip magic bytes)", now))
        return rows, bad
    line_no = 0
    try:
        with gzip.GzipFile(fileobj=stream) as lines:
            for line_no, line, size in _lines(lines):
                if not line.strip():
                    continue
                try:
                    if size > MAX_RECORD_BYTES:  # never held whole: its first bytes only
                        raise BadRecord(f"record is {size:,} bytes, over the limit of "
                                        f"{MAX_RECORD_BYTES:,} bytes")
                    row = parser.parse_line(line)
                except BadRecord as exc:
                    bad.append(quarantine_row(source, f"{location}#{line_no}", line.rstrip(),
                                              exc, now))
                    continue
                row["_loaded_at"] = now
                row["_source_location"] = f"{location}#{line_no}"
                rows.append(row)
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip
        bad.append(quarantine_row(source, f"{location}#{line_no + 1}", b"",
                                  f"gzip stream broken after line {line_no}: {exc}", now))
    return rows, bad


def _lines(lines):
    """(line number, line, size in bytes without its newline) of each line. A line longer than
    MAX_RECORD_BYTES comes back cut after them; the rest of it is read and dropped in chunks."""
    line_no = 0
    while True:
        line = lines.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        line_no += 1
        if line.endswith(b"\n"):
            yield line_no, line, len(line) - 1
            continue
        size = len(line)
        if size > MAX_RECORD_BYTES:
            while chunk := lines.readline(_SKIP_CHUNK):
                if chunk.endswith(b"\n"):
                    size += len(chunk) - 1
                    break
                size += len(chunk)
        yield line_no, line, size


class _Prefixed(io.RawIOBase):
    """A readable stream of ``head`` followed by the rest of ``body`` (a streaming body). An
    error reading the body is raised as ``S3ReadError``: not an ``OSError``, so it is never
    taken for a broken gzip stream (which would quarantine the object for good)."""

    def __init__(self, head: bytes, body, location: str = "the object"):
        self._head, self._body, self._location = head, body, location

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            raise S3ReadError(f"reading {self._location} failed: {type(exc).__name__}: "
                              f"{exc}") from exc
        buffer[: len(data)] = data
        return len(data)
