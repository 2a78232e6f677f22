"""Reading a source ahead of the writes: the loaders' one way to overlap the network (or a
driver's decoding) with the warehouse's inserts, without changing what commits when."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

_DONE = object()


def read_ahead(items: Iterator, depth: int, name: str = "read-ahead") -> Iterator:
    """Iterate ``items`` on a daemon thread named ``name``, up to ``depth`` ahead of the
    consumer, so a source is read while the previous item is written (a socket wait, the
    ADBC reader and DuckDB's insert all release the GIL). An error on the thread is raised
    here; a consumer that stops early (its own error, or ``close()``) stops the thread at its
    next item and waits for it."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            put(error)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
