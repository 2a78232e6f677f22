"""The reports API's read keys: ``TOKENWATCH_REPORT_KEYS``, ``name:key`` pairs.

A request sends ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The key is compared
with every configured key in constant time (the time taken does not tell which was close); the
access log records the key's *name*, never the key: ``anonymous`` without a key, ``invalid``
with a wrong one.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from tokenwatch import config

ANONYMOUS, INVALID = "anonymous", "invalid"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_KEY_LENGTH = 16


def parse_keys(raw: str | None) -> dict[str, str]:
    """``name:key,name:key`` -> {name: key}; ValueError naming what is wrong (never a key)."""
    keys: dict[str, str] = {}
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, key = item.partition(":")
        if not sep or not _NAME.fullmatch(name) or len(key) < MIN_KEY_LENGTH:
            raise ValueError("TOKENWATCH_REPORT_KEYS must be name:key pairs separated by "
                             f"commas, each name [A-Za-z0-9_.@-] and each key at least "
                             f"{MIN_KEY_LENGTH} characters")
        if name in keys:
            raise ValueError(f"TOKENWATCH_REPORT_KEYS names {name!r} twice")
        keys[name] = key
    return keys


def keys_from_env() -> dict[str, str]:
    return parse_keys(config.secret(config.settings().report_keys))


def given_key(headers: Mapping[str, str]) -> str | None:
    """The key a request sends (bearer first), or None."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


class Keys:
    def __init__(self, keys: Mapping[str, str]):
        self._keys = [(name, key.encode()) for name, key in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def who(self, headers: Mapping[str, str]) -> tuple[str, bool]:
        """(who, authenticated): the key's name, or ``anonymous`` / ``invalid``."""
        given = given_key(headers)
        if given is None:
            return ANONYMOUS, False
        raw = given.encode()
        found = None
        for name, key in self._keys:  # every key compared: constant time whoever matches
            if hmac.compare_digest(raw, key):
                found = name
        return (found, True) if found else (INVALID, False)
