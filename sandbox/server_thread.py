"""A local stand-in's HTTP server in a background thread, on a free port of 127.0.0.1:
``with SomeThread(...) as stand_in: stand_in.url``. The Datadog intake and the Tableau stand-in
build their server and hand it here."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class ServerThread:
    def __init__(self, server: ThreadingHTTPServer):
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
