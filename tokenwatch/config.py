"""Where tokenwatch keeps its local state, and the environment variables it reads.

Every setting comes from the environment; the README's configuration table lists them.
Secrets (API keys, DSNs with passwords) are never written to files by tokenwatch.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The source checkout when running from one, else the current directory."""
    if (_PACKAGE_ROOT / "pyproject.toml").is_file():
        return _PACKAGE_ROOT
    return Path.cwd()


def home() -> Path:
    """``TOKENWATCH_HOME``: local state (private PostgreSQL, stack endpoints, DuckDB warehouse)."""
    configured = os.environ.get("TOKENWATCH_HOME")
    path = Path(configured) if configured else project_root() / ".tokenwatch"
    if not path.exists():  # private: the warehouse, its WAL, the stack's files live here
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)  # (as root, pgserver opens it for its own user when it starts)
    return path


def env_name() -> str:
    """``TOKENWATCH_ENV``: ``local`` (default) or ``prod``."""
    value = os.environ.get("TOKENWATCH_ENV", "local")
    if value not in ("local", "prod"):
        raise ValueError(f"TOKENWATCH_ENV must be 'local' or 'prod', got {value!r}")
    return value


def api_keys() -> frozenset[str]:
    """``TOKENWATCH_API_KEYS``: comma-separated bearer keys allowed to write."""
    raw = os.environ.get("TOKENWATCH_API_KEYS", "")
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


def database_name() -> str:
    """``TOKENWATCH_PG_DATABASE``: the state service's database when no DSN names one."""
    return os.environ.get("TOKENWATCH_PG_DATABASE", "tokenwatch")


def read_keys() -> frozenset[str]:
    """``TOKENWATCH_READ_KEYS``: comma-separated bearer keys allowed to read (write keys may
    read too)."""
    raw = os.environ.get("TOKENWATCH_READ_KEYS", "")
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


def _int_setting(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def max_body_bytes() -> int:
    """``TOKENWATCH_MAX_BODY_BYTES``: the largest request body the service reads (default
    512 KiB; a batch of 1000 items of typical size is about 300 KB)."""
    return _int_setting("TOKENWATCH_MAX_BODY_BYTES", 512 * 1024)


def record_time_window(now=None) -> tuple:
    """``(earliest, latest)``, the plausible range of a record's timestamps at ingestion (a
    wallet event's ``event_time``, a log's ``request_time`` or ``timestamp``): from
    ``TOKENWATCH_TIMESTAMP_MIN`` (ISO-8601, default ``2000-01-01T00:00:00Z``; without an offset,
    UTC) to ``now`` (default: the current time) plus ``TOKENWATCH_TIMESTAMP_MAX_AHEAD_S`` seconds
    (default 86400: a day of clock skew). A record outside it is quarantined."""
    from datetime import UTC, datetime, timedelta

    raw = os.environ.get("TOKENWATCH_TIMESTAMP_MIN", "").strip() or "2000-01-01T00:00:00+00:00"
    try:
        earliest = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"TOKENWATCH_TIMESTAMP_MIN is not an ISO-8601 timestamp: {raw!r}") \
            from None
    if earliest.tzinfo is None:
        earliest = earliest.replace(tzinfo=UTC)
    ahead = os.environ.get("TOKENWATCH_TIMESTAMP_MAX_AHEAD_S", "").strip() or "86400"
    if not ahead.isdigit():
        raise ValueError("TOKENWATCH_TIMESTAMP_MAX_AHEAD_S must be a whole number of seconds, "
                         f"got {ahead!r}")
    latest = (now or datetime.now(UTC)) + timedelta(seconds=int(ahead))
    if earliest >= latest:
        raise ValueError(f"TOKENWATCH_TIMESTAMP_MIN ({earliest.isoformat()}) is not before now "
                         f"plus TOKENWATCH_TIMESTAMP_MAX_AHEAD_S ({latest.isoformat()})")
    return earliest, latest


#: The chain key used when none is configured in ``TOKENWATCH_ENV=local``: public, so rows
#: sealed with it are tamper evident against edits, not against someone who reads this file.
LOCAL_CHAIN_KEY_ID = "local-dev"
LOCAL_CHAIN_KEY = b"tokenwatch local development chain key (public, not a secret)"


def chain_keys() -> tuple[str, dict[str, bytes]]:
    """``TOKENWATCH_CHAIN_KEYS`` (``id:secret,id:secret``: every key that sealed rows, old ones
    kept for verification) and ``TOKENWATCH_CHAIN_KEY_ID`` (the one new rows are sealed with;
    default: the last listed). Returns (current id, {id: secret}). Locally, with none set,
    the public development key; in prod a missing key is an error."""
    raw = os.environ.get("TOKENWATCH_CHAIN_KEYS", "").strip()
    if not raw:
        if env_name() == "prod":
            raise ValueError("TOKENWATCH_CHAIN_KEYS is not set: the transition log's MACs need "
                             "a secret key in prod (id:secret, from a secret store)")
        return LOCAL_CHAIN_KEY_ID, {LOCAL_CHAIN_KEY_ID: LOCAL_CHAIN_KEY}
    keys: dict[str, bytes] = {}
    for item in raw.split(","):
        key_id, sep, secret = item.strip().partition(":")
        if not sep or not key_id or len(secret) < 16:
            raise ValueError("TOKENWATCH_CHAIN_KEYS must be id:secret pairs separated by commas,"
                             " each secret at least 16 characters")
        keys[key_id] = secret.encode()
    current = os.environ.get("TOKENWATCH_CHAIN_KEY_ID") or list(keys)[-1]
    if current not in keys:
        raise ValueError(f"TOKENWATCH_CHAIN_KEY_ID {current!r} is not in TOKENWATCH_CHAIN_KEYS")
    return current, keys
