"""The write path's front door: the two hot writes, answered without FastAPI's machinery.

``POST /v1/tokens`` and ``POST /v1/tokens/{token_ref}/transitions`` are most of the
service's traffic. When such a request is valid (a JSON body the contract's own models accept,
validated by pydantic-core straight from the bytes, and a token_ref the path's rule accepts),
this middleware hands it to the worker's writes (``GroupCommit``) and answers itself, with the
same bodies and statuses the routes give (``app._record`` and ``app.store_error_body`` build
them). Anything else (another route, another content type, a body or path the models refuse)
goes to FastAPI untouched, with its body replayed, so every error answer is still FastAPI's
own, exactly as documented in ``/openapi.json``. It sits inside the Guard: the key and the body
limit were checked already.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
import psycopg
from pydantic import ValidationError

from state_service.group_commit import GroupCommit
from state_service.guard import replay_body
from state_service.schemas import IDENTIFIER, CreateToken, TransitionRequest
from state_service.store import Outcome, StoreError
from tokenwatch.pan import looks_like_pan

_TOKEN_REF = re.compile(IDENTIFIER)
_PREFIX, _SUFFIX = "/v1/tokens/", "/transitions"


class WriteFastPath:
    def __init__(self, app, writes: GroupCommit,
                 answer: Callable[[Outcome], tuple[int, dict]],
                 refused: Callable[[StoreError], tuple[int, dict]],
                 data_error: dict, routes: dict[str, object]):
        self.app, self.writes = app, writes
        self.answer, self.refused, self.data_error = answer, refused, data_error
        self.routes = routes  # operation name -> the FastAPI route (for metrics and traces)
        self.answered = 0  # requests this door answered itself (tests read it)

    async def __call__(self, scope, receive, send) -> None:
        write = self._which(scope)
        if write is None:
            await self.app(scope, receive, send)
            return
        kind, token_ref = write
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            model = (CreateToken if kind == "create_token" else TransitionRequest
                     ).model_validate_json(body)
        except ValidationError:
            await self.app(scope, replay_body(body, receive), send)  # FastAPI's own 422
            return
        scope["route"] = self.routes[kind]
        try:
            outcome = (await self.writes.create_token(model) if kind == "create_token"
                       else await self.writes.transition(token_ref, model))
            status, answer = self.answer(outcome)
        except StoreError as exc:
            status, answer = self.refused(exc)
        except psycopg.DataError:
            status, answer = 422, self.data_error
        self.answered += 1
        data = orjson.dumps(answer)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(data)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})

    @staticmethod
    def _which(scope) -> tuple[str, str | None] | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if content_type.split(b";")[0].strip().lower() != b"application/json":
            return None
        path = scope["path"]
        if path == "/v1/tokens":
            return "create_token", None
        if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
            ref = path[len(_PREFIX):-len(_SUFFIX)]
            if _TOKEN_REF.fullmatch(ref) and not looks_like_pan(ref):
                return "post_transition", ref
        return None

