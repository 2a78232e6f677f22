"""Turning JSON records into raw rows, or into a quarantine reason that names the field.

Every record is checked against the raw contract before it reaches a warehouse, so that no value
a warehouse cannot store ever stops a load. In order:

1. its size (``contract.MAX_RECORD_BYTES``) and its encoding (UTF-8);
2. its nesting depth (``contract.MAX_DEPTH``), counted on the text before it is parsed, without
   recursion, so a record nested 50,000 deep is refused, not a ``RecursionError``;
3. JSON, an object;
4. card numbers: every decoded key and value, nested ones and numbers included
   (``tokenwatch.pan.pan_fields``), so escapes, spaces, dashes or full-width digits do not
   hide one;
5. required fields, then each column's type and range (``raw_schema``: ``INTEGER_RANGES``,
   ``DOUBLE_MAX``, text without NUL or lone surrogates; timestamps within
   ``config.record_time_window()``), and unknown fields (``extra``) under the same text and
   number rules.

A failure raises ``BadRecord``: its message names the field and what was wrong, never a value
that could be a card number. ``quarantine_row`` turns the record into a row of
``raw.quarantine`` that every warehouse can store (valid UTF-8 without NUL, card numbers
redacted in the decoded values too, truncated).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime

import pyarrow as pa

from ingestion.contract import MAX_DEPTH, MAX_RECORD_BYTES, REQUIRED
from ingestion.raw_schema import DOUBLE_MAX, INTEGER_RANGES, RAW_TEXT_LIMIT, Table
from tokenwatch import config
from tokenwatch.pan import REDACTED, find_pan_like, looks_like_pan, pan_fields, redact

ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "integer": pa.int32(),
               "double": pa.float64(), "boolean": pa.bool_(),
               "timestamp": pa.timestamp("us", tz="UTC"), "json": pa.string()}

#: Record fields stored under another column name.
RENAMES: dict[str, dict[str, str]] = {"lambda_logs": {"timestamp": "invoked_at"}}
_META = ("extra", "_loaded_at", "_source_location", "shard_id", "sequence_number", "arrived_at")
#: The contract's JSON kinds (contract.REQUIRED) and the logical types that may store each.
_KIND_TYPES = {"str": ("text",), "int": ("integer", "bigint"), "number": ("double",),
               "timestamp": ("timestamp",)}
_WINDOW_SETTINGS = "TOKENWATCH_TIMESTAMP_MIN / TOKENWATCH_TIMESTAMP_MAX_AHEAD_S"


class BadRecord(ValueError):
    """A record that goes to quarantine; the message is the reason. ``decoded`` is the decoded
    record when it holds a card number (quarantine redacts its decoded values too)."""

    def __init__(self, reason: str, decoded: object = None):
        super().__init__(reason)
        self.decoded = decoded


def text_problem(value: str) -> str | None:
    """What keeps ``value`` out of a text column of every warehouse, or None."""
    if "\x00" in value:
        return "holds a NUL character (U+0000), which PostgreSQL text cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"holds a lone surrogate (U+{ord(value[exc.start]):04X}), "
                    "which is not valid Unicode")
    return None


def _name(field: object) -> str:
    """A field name fit for a reason: short, and printable (repr escapes the rest)."""
    name = field if isinstance(field, str) else str(field)
    name = name if name.isprintable() else repr(name)[1:-1]
    return name if len(name) <= 80 else name[:77] + "..."


def _json_problem(value: object, path: str = "") -> tuple[str, str] | None:
    """The first (where, what) in decoded JSON that a warehouse's JSON column cannot hold: a key
    or string with NUL or a lone surrogate, a number that is not a finite double. Paths are
    pan_fields' (``a.b[2]``)."""
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                return f"field '{_name(where)}'", problem
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"field '{_name(where)}'", "is not a finite number"
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > DOUBLE_MAX:
                return f"field '{_name(where)}'", "is a number beyond the range of a double"
        elif isinstance(item, dict):
            for key, child in item.items():
                if problem := text_problem(key):
                    return (f"a key in field '{_name(where)}'" if where else "a top-level key",
                            problem)
                stack.append((f"{where}.{key}" if where else key, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return None


#: A JSON string (to its closing quote, or to the end of a text that never closes it: the scan
#: never backtracks) or a bracket.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.S)


def too_deep(text: str, limit: int = MAX_DEPTH) -> str | None:
    """None when the JSON ``text`` nests at most ``limit`` levels, else the top-level key
    (decoded; '' when there is none) under which it goes deeper. Brackets inside strings do not
    count; no recursion, and it stops at the first bracket too deep."""
    if text.count("[") + text.count("{") <= limit:
        return None
    depth, key = 0, ""
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > limit:
                try:
                    return str(json.loads(key)) if key else ""
                except ValueError:
                    return key[1:]
        elif token == "]" or token == "}":
            depth -= 1
        elif depth == 1:
            key = token  # at depth 1, the key of the member whose value comes next
    return None


def parse_timestamp(value: object, field: str,
                    window: tuple[datetime, datetime] | None = None) -> datetime:
    """An ISO-8601 string with a timezone, in UTC; within ``window`` when one is given. A
    timestamp that cannot be expressed in UTC (past year 9999) is always refused."""
    if not isinstance(value, str):
        raise BadRecord(f"field '{field}' must be an ISO-8601 timestamp string, "
                        f"got {type(value).__name__}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecord(f"field '{field}' is not an ISO-8601 timestamp: {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise BadRecord(f"field '{field}' has no timezone")
    try:
        utc = ts.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        utc = None
    if utc is None or (window is not None and not window[0] <= utc <= window[1]):
        low, high = window or (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
        raise BadRecord(f"field '{field}' is {value[:40]!r}, outside the plausible window "
                        f"{low.isoformat(timespec='seconds')} .. "
                        f"{high.isoformat(timespec='seconds')} ({_WINDOW_SETTINGS})")
    return utc


def _json_type(value: object) -> str:
    return type(value).__name__


class RecordParser:
    """Validates records of one source against the contract and shapes them as raw rows. The
    plausible window of timestamps is read once, when the parser is made (once per run)."""

    def __init__(self, source: str, table: Table, now: datetime | None = None):
        self.source, self.table = source, table
        self.required = REQUIRED[source]
        self.renames = RENAMES.get(source, {})
        self.columns = {c.name: c.type for c in table.columns if c.name not in _META}
        self.window = config.record_time_window(now)
        for field, kind in self.required.items():  # the contract and the schema agree
            column = self.renames.get(field, field)
            if self.columns.get(column) not in _KIND_TYPES[kind]:
                raise ValueError(f"contract: {source}.{field} is {kind}, but column {column} "
                                 f"is {self.columns.get(column)}")

    def parse_line(self, text: str | bytes) -> dict:
        """One record (bytes as received, or text) as a raw row; ``BadRecord`` when it does not
        meet the contract."""
        if isinstance(text, str):
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BadRecord(f"not valid Unicode: {exc.reason} at character {exc.start}") \
                    from None
        else:
            data = text
        if len(data) > MAX_RECORD_BYTES:
            raise BadRecord(f"record is {len(data):,} bytes, over the limit of "
                            f"{MAX_RECORD_BYTES:,} bytes")
        if isinstance(text, bytes):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRecord(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
            if text.startswith("\ufeff"):
                text = text[1:]  # a byte order mark, as json.loads(bytes) allowed
        key = too_deep(text)
        if key is not None:
            where = f"field '{_name(key)}' is" if key else "record is"
            raise BadRecord(f"{where} nested deeper than {MAX_DEPTH} levels")
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise BadRecord(f"not valid JSON: {exc}") from None
        except RecursionError:  # not reached below the depth limit: a last line of defence
            raise BadRecord(f"record is nested deeper than {MAX_DEPTH} levels") from None
        if not isinstance(record, dict):
            raise BadRecord(f"not a JSON object but {_json_type(record)}")
        pans = pan_fields(record)
        if pans:
            named = ", ".join(repr(_name(p)) for p in pans[:20])
            more = f" and {len(pans) - 20} more" if len(pans) > 20 else ""
            raise BadRecord(f"PAN-like value in field(s) {named}{more}: "
                            "card numbers never enter the warehouse", decoded=record)
        return self.shape(record)

    def shape(self, record: dict) -> dict:
        for field in self.required:
            if record.get(field) is None:
                raise BadRecord(f"missing required field '{field}'")
        row: dict = {}
        extra = {}
        for key, value in record.items():
            column = self.renames.get(key, key)
            kind = self.columns.get(column)
            if kind is None:
                extra[key] = value
            else:
                row[column] = self._coerce(value, kind, key)
        if extra:
            problem = _json_problem(extra)
            if problem:
                raise BadRecord(" ".join(problem))
            row["extra"] = json.dumps(extra, ensure_ascii=False, sort_keys=True)
        else:
            row["extra"] = None
        return row

    def _coerce(self, value: object, kind: str, field: str) -> object:
        if value is None:
            return None
        if kind == "text":
            if not isinstance(value, str):
                raise BadRecord(f"field '{field}' must be text, got {_json_type(value)}")
            if problem := text_problem(value):
                raise BadRecord(f"field '{field}' {problem}")
            return value
        if kind == "timestamp":
            return parse_timestamp(value, field, self.window)
        if kind == "boolean" and isinstance(value, bool):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRecord(f"field '{field}' must be {kind}, got {_json_type(value)}")
        if kind in INTEGER_RANGES:
            if not isinstance(value, int):
                raise BadRecord(f"field '{field}' must be {kind}, got {_json_type(value)}")
            low, high = INTEGER_RANGES[kind]
            if not low <= value <= high:
                raise BadRecord(f"field '{field}' is out of the range of {kind} "
                                f"({low}..{high})")
            return value
        if kind == "double":
            if isinstance(value, int) and abs(value) > DOUBLE_MAX:
                raise BadRecord(f"field '{field}' is a number beyond the range of a double")
            if isinstance(value, float) and not math.isfinite(value):
                raise BadRecord(f"field '{field}' is not a finite number")
            return float(value)
        raise BadRecord(f"field '{field}' must be {kind}, got {_json_type(value)}")


def to_arrow(table: Table, rows: list[dict]) -> pa.Table:
    """Rows (dicts keyed by column name, missing = NULL) as an Arrow table of ``table``."""
    arrays = [pa.array([r.get(c.name) for r in rows], type=ARROW_TYPES[c.type])
              for c in table.columns]
    return pa.Table.from_arrays(arrays, names=table.column_names)


# -- quarantine rows ----------------------------------------------------------------------

_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t"}
#: What a cut may leave of a card number at the end of a truncated text: digits, separators,
#: the start of an escape.
_CUT_TAIL = re.compile(r"(?:[\d\s.\-\u2010-\u2015\u2212\uff0d]|\\u[0-9a-fA-F]{0,4}|\\)+\Z")
#: How much of a record is looked at to build its raw_text: enough for RAW_TEXT_LIMIT characters
#: after JSON escapes (6 characters each) are decoded.
_PREFIX = 6 * RAW_TEXT_LIMIT


def _unescape(text: str) -> str:
    """``text`` with its JSON string escapes decoded (structure left as is)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1)
                       else _SIMPLE_ESCAPES[m.group(2)], text)


def storable(text: str) -> str:
    """``text`` as every warehouse's text column holds it: NUL and lone surrogates become
    U+FFFD (an escaped surrogate pair becomes its character)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _redacted(value: object) -> object:
    """Decoded JSON with every key and value holding a card number redacted."""
    if isinstance(value, dict):
        return {redact(str(k), REDACTED): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, str):
        return redact(value, REDACTED)
    return REDACTED if looks_like_pan(value) else value


def quarantine_text(raw: str | bytes, decoded: object = None) -> str:
    """The raw_text of a quarantined record: at most RAW_TEXT_LIMIT characters of valid UTF-8
    without NUL, and no card number, however it was written. A record that decoded to JSON
    holding one is stored re-serialised from its decoded values, redacted; any other record as
    received, redacted both as written and with its JSON escapes decoded."""
    if decoded is not None:
        text = redact(json.dumps(_redacted(decoded), ensure_ascii=False), REDACTED)
        truncated = False
    else:
        if isinstance(raw, bytes):
            truncated = len(raw) > _PREFIX
            text = raw[:_PREFIX].decode("utf-8", errors="replace")
        else:
            truncated = len(raw) > _PREFIX
            text = raw[:_PREFIX]
        text = redact(text, REDACTED)
        if "\\" in text:
            unescaped = _unescape(text)
            if unescaped != text and find_pan_like(unescaped):
                text = redact(unescaped, REDACTED)
    text = storable(text)
    if len(text) > RAW_TEXT_LIMIT:
        text, truncated = text[:RAW_TEXT_LIMIT - 1], True
    if truncated:  # a card number cut in two leaves no digits behind
        text = _CUT_TAIL.sub("", text) + "\u2026"
    return text


def quarantine_row(source: str, location: str, raw: str | bytes, reason: str | BadRecord,
                   loaded_at: datetime | None) -> dict:
    """A row of ``raw.quarantine``. ``reason`` is the refusal (a ``BadRecord`` carries the
    decoded record when it holds a card number) or its text."""
    decoded = reason.decoded if isinstance(reason, BadRecord) else None
    return {"source": source, "location": storable(location),
            "raw_text": quarantine_text(raw, decoded),
            "reason": storable(redact(str(reason), REDACTED)), "_loaded_at": loaded_at}

