"""Group commit: concurrent single writes of one worker, written together when the database
is busy.

A write that finds none of this worker's writes in flight goes straight to the write
functions (``TransitionStore``: one server-side call and the seal, two round trips). Otherwise
it waits; when a write or group in flight ends, every write waiting then goes as one group
through the set-based batch writer (``BatchWriter``: two round trips and one COMMIT for the
whole group). A second group may run beside the first (``TOKENWATCH_SERVICE_WRITE_GROUPS``, 2)
once ``MIN_SECOND_GROUP`` writes wait. Each write still answers exactly what it would have
answered alone, right after the writes before it in its group (the batch writer's contract,
tested against the write functions), and none answers before its group is committed. So under
load the database does one transaction where it did many, and a write waits at most for the
group ahead of it.

The group's database work runs in the context of its first write (its trace in Datadog APM),
shielded from the cancellation of any one request: a client that goes away does not take the
others' writes with it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque

from state_service.batch_writer import BatchWriter, Item, Result, write_alone
from state_service.schemas import CreateToken, TransitionRequest
from state_service.store import DatabaseUnavailable, Outcome, TransitionStore

#: The most writes one group carries (a batch of the batch writer).
MAX_GROUP = 64
#: Beyond the first group in flight, another starts only when this many writes wait: small
#: groups side by side cost more CPU per write than they save in waiting (bench/state_service.py).
MIN_SECOND_GROUP = 4


class GroupCommit:
    """``create_token`` and ``transition`` as ``TransitionStore``'s, grouped under load."""

    def __init__(self, store: TransitionStore, writer: BatchWriter, in_flight: int):
        self.store, self.writer = store, writer
        self.limit = max(1, in_flight)
        self.in_flight = 0
        self._waiting: deque[tuple[Item, asyncio.Future, contextvars.Context]] = deque()
        self._running: set[asyncio.Task] = set()  # the loop holds tasks weakly: we hold them
        self.groups = 0  # groups of two or more written (tests read them)
        self.grouped = 0  # writes that went in such groups

    async def create_token(self, body: CreateToken) -> Outcome:
        return await self._write(Item(body.token_ref, body))

    async def transition(self, token_ref: str, body: TransitionRequest) -> Outcome:
        return await self._write(Item(token_ref, body))

    async def _write(self, item: Item) -> Outcome:
        if self.in_flight == 0:
            self.in_flight += 1  # alone: the write functions, in this request's own task
            try:
                return await write_alone(self.store, item)
            finally:
                self.in_flight -= 1
                self._next()
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future, contextvars.copy_context()))
        self._next()  # a second group, once enough wait
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    def _next(self) -> None:
        """Start the next group, if writes wait and a place is free."""
        while self._waiting and (self.in_flight == 0 or (
                self.in_flight < self.limit and len(self._waiting) >= MIN_SECOND_GROUP)):
            group = [self._waiting.popleft()
                     for _ in range(min(MAX_GROUP, len(self._waiting)))]
            self.in_flight += 1
            # the group's spans belong to its first write's trace
            task = group[0][2].run(asyncio.ensure_future, self._run(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, group: list) -> None:
        try:
            results: list[Result | BaseException]
            if len(group) == 1:
                try:
                    results = [await write_alone(self.store, group[0][0])]
                except Exception as exc:  # noqa: BLE001 - answered to the write that caused it
                    results = [exc]
            else:
                self.groups += 1
                self.grouped += len(group)
                try:
                    results = await self.writer.write([item for item, _, _ in group])
                except DatabaseUnavailable as exc:
                    results = [DatabaseUnavailable(str(exc)) for _ in group]
                except Exception as exc:  # noqa: BLE001 - every write of the group hears it
                    results = [exc] * len(group)
            for (_, future, _), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self.in_flight -= 1
            self._next()
