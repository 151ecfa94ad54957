"""Group commit: one call in flight, and everything submitted meanwhile rides the next one.

The gateway's hot path makes two Redis round trips per business request: the
admission script and the job's end (audit record + answer + XACK). Under load each was a
command of its own on its own pooled connection, so N concurrent requests cost N writes, N
reads and N event-loop wake-ups each way. ``GroupCommit`` sends them together instead:

- an item submitted while nothing is in flight is sent at once, by the submitter itself (a
  batch of one, no task hand-off: no added wait at low load, unlike a timer-based batcher);
- items submitted while a call is in flight queue up and go, in order, in the next call
  (at most ``max_batch`` per call);
- ``fn(items)`` returns one result per item; if it raises, every item of that batch gets
  the exception (nothing is half-reported: a batch is one script, atomic on Redis).

A submitter cancelled while waiting does not withdraw its item: once submitted, it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, fn: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int = 128) -> None:
        self.fn, self.max_batch = fn, max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._busy = False  # a submitter is making a direct call
        self.calls = 0  # calls of ``fn`` (batches), for tests and benchmarks
        self.items = 0

    async def submit(self, item: T) -> R:
        if self._runner is None and not self._busy:  # idle: call directly, then hand what queued meanwhile to a task
            self._busy = True
            self.calls += 1
            self.items += 1
            try:
                (result,) = await self.fn([item])
            finally:
                self._busy = False
                if self._pending and self._runner is None:
                    self._runner = asyncio.create_task(self._drain())
            return result
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._runner is None and not self._busy:
            self._runner = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                self.calls += 1
                self.items += len(batch)
                try:
                    results = await self.fn([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"group commit: {len(results)} results for {len(batch)} items")
                except asyncio.CancelledError:
                    for _, f in batch:
                        f.cancel()
                    raise
                except Exception as exc:
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                for (_, f), r in zip(batch, results, strict=True):
                    if not f.done():
                        f.set_result(r)
        finally:
            self._runner = None
            if self._pending:  # cancelled (shutdown): nobody will send these
                for _, f in self._pending:
                    f.cancel()
                self._pending = []
