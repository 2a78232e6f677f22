"""The service's front door, before any route runs: the key is checked before the body is read,
and the body is read only up to a limit.

- ``/healthz`` and the API description (``/openapi.json``, ``/docs``) answer without a key:
  they hold no data. Everything else needs ``Authorization: Bearer <key>``.
- Reads (GET/HEAD) take a read key or a write key; anything else takes a write key. No key or
  an unknown key answers 401; a read key on a write answers 403.
- Every 401 and 403 is told to ``refused`` (state_service/auth_failures.py records them).
- A body larger than the limit answers 413, whether ``Content-Length`` says so or a chunked
  body grows past it; the service never holds more than the limit of one request in memory.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
READ_METHODS = frozenset({"GET", "HEAD"})


def _matches(given: bytes, keys: tuple[bytes, ...]) -> bool:
    ok = False
    for key in keys:  # compare with every key: the time taken does not tell which was close
        ok |= hmac.compare_digest(given, key)
    return ok


async def send_json(send: Send, status: int, body: dict,
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """ASGI middleware: authentication and the body limit (see the module's docstring)."""

    def __init__(self, app: ASGIApp, write_keys: Iterable[str], read_keys: Iterable[str],
                 max_body_bytes: int, refused: Callable[[int, str, str, str], None] | None = None):
        self.app = app
        #: told of every 401 and 403: (status, method, path, client address)
        self.refused = refused
        self.write_keys = tuple(k.encode() for k in write_keys)
        self.read_keys = self.write_keys + tuple(k.encode() for k in read_keys)
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = _bearer(headers.get(b"authorization", b""))
        reading = scope["method"] in READ_METHODS
        if given is None or not _matches(given, self.read_keys):
            self._refused(scope, 401)
            await send_json(send, 401, {
                "error": "unauthorized",
                "message": "send 'Authorization: Bearer <key>' with a valid key"},
                [(b"www-authenticate", b"Bearer")])
            return
        if not reading and not _matches(given, self.write_keys):
            self._refused(scope, 403)
            await send_json(send, 403, {"error": "forbidden",
                                        "message": "this key may read, not write"})
            return
        if reading:
            await self.app(scope, receive, send)
            return
        body = await self._read_body(headers, receive, send)
        if body is None:
            return
        await self.app(scope, replay_body(body, receive), send)

    def _refused(self, scope: Scope, status: int) -> None:
        if self.refused is not None:
            client = scope.get("client") or ("", 0)
            self.refused(status, scope["method"], scope["path"], str(client[0] or ""))

    async def _read_body(self, headers: dict, receive: Receive, send: Send) -> bytes | None:
        too_large = {"error": "body_too_large",
                     "message": f"the request body is larger than {self.max_body} bytes"}
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, {"error": "bad_request",
                                            "message": "Content-Length is not a number"})
                return None
            if int(declared) > self.max_body:
                await send_json(send, 413, too_large)
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await send_json(send, 413, too_large)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read) as one message, then waits on
    the real one (for the client's disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _bearer(value: bytes) -> bytes | None:
    scheme, _, credentials = value.partition(b" ")
    if scheme.lower() != b"bearer" or not credentials.strip():
        return None
    return credentials.strip()
