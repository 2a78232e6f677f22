"""The cursor of a paged answer: opaque to clients, base64url of the query's signature and the
next page's offset. A cursor only continues the query it came from: sent with another query it
answers 400 (as does one that does not decode)."""

from __future__ import annotations

import base64
import binascii
import json


class BadCursor(ValueError):
    pass


def encode(signature: str, offset: int) -> str:
    raw = json.dumps({"q": signature, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, signature: str) -> int:
    """The offset ``cursor`` continues at, for the query of ``signature``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset, signed = data["o"], data["q"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadCursor("the cursor is not one this API gave: pass next_cursor from the "
                        "previous page unchanged") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 \
            or not isinstance(signed, str):
        raise BadCursor("the cursor is not one this API gave: pass next_cursor from the "
                        "previous page unchanged")
    if signed != signature:
        raise BadCursor("the cursor belongs to a different query: send it with the same "
                        "metrics, group_by, grain, where, order_by, start and end as the "
                        "page it came with")
    return offset
