"""Refused requests, recorded (PCI DSS 10.2.1.4): the front door (``guard.Guard``) counts each
401 and 403 here; a background thread adds the counts to ``auth_failures`` (migration 0004)
every second, one row per minute, status, method, path and client address.

Counting in memory and writing in batches keeps a flood of bad keys from becoming a flood of
statements or rows: the request path never waits for PostgreSQL. Counts not yet written when
the database is down are kept and retried, up to :data:`MAX_KEYS` distinct rows pending (beyond
that, new keys add to one overflow row per status, so nothing refused goes uncounted).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from tokenwatch import pan

log = logging.getLogger(__name__)
MAX_KEYS = 10_000
PATH_CHARS = 200
OVERFLOW = "(overflow)"

_UPSERT = ("insert into auth_failures (minute, status, method, path, client, attempts, "
           "first_at, last_at) values (%s, %s, %s, %s, %s, %s, %s, %s) "
           "on conflict (minute, status, method, path, client) do update set "
           "attempts = auth_failures.attempts + excluded.attempts, "
           "last_at = greatest(auth_failures.last_at, excluded.last_at)")


class AuthFailures:
    """Counts refused requests and writes them to PostgreSQL through ``pool``."""

    def __init__(self, pool: ConnectionPool, interval_s: float = 1.0):
        self.pool, self.interval_s = pool, interval_s
        self._lock = threading.Lock()
        self._pending: Counter = Counter()
        self._times: dict[tuple, tuple[datetime, datetime]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, status: int, method: str, path: str, client: str) -> None:
        now = datetime.now(UTC)
        key = (now.replace(second=0, microsecond=0), status, method[:16],
               pan.redact(path)[:PATH_CHARS], client[:64])
        with self._lock:
            if key not in self._pending and len(self._pending) >= MAX_KEYS:
                key = (key[0], status, OVERFLOW, OVERFLOW, OVERFLOW)
            self._pending[key] += 1
            first, _ = self._times.get(key, (now, now))
            self._times[key] = (first, now)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="auth-failures", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> int:
        """Write what is pending; returns the rows written (0 when the database is down: the
        counts stay pending and the next flush retries them)."""
        with self._lock:
            batch, times = self._pending, self._times
            self._pending, self._times = Counter(), {}
        if not batch:
            return 0
        rows = [(*key, count, *times[key]) for key, count in batch.items()]
        try:
            with self.pool.connection(timeout=2) as conn:
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT, rows)
        except Exception as exc:  # noqa: BLE001 - kept for the next flush, never lost here
            log.warning("refused requests not recorded yet (%s): retrying",
                        exc.__class__.__name__)
            with self._lock:
                for key, count in batch.items():
                    self._pending[key] += count
                    first, last = times[key]
                    old_first, old_last = self._times.get(key, (first, last))
                    self._times[key] = (min(first, old_first), max(last, old_last))
            return 0
        return len(rows)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
