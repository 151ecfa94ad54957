"""The bus interface."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Self


class BusError(Exception):
    """The bus is unreachable (transport error); callers may retry."""


class NotConfirmed(BusError):
    """A write the primary executed but its replicas did not confirm in time (``WAIT``): it is on the
    primary now and may be gone after a failover. Unlike a plain ``BusError`` the caller knows it
    was applied (not "maybe"); ``applied`` is the command's own answer (e.g. ``SET NX``: placed)."""

    def __init__(self, message: str, applied: bool = True) -> None:
        super().__init__(message)
        self.applied = applied


class Subscription:
    """Messages of the channels it was opened for, in order, through an unbounded queue.

    Closing it unsubscribes; a message in flight when it closes is dropped (pub/sub
    has no delivery guarantee; queued work uses Redis Streams instead).
    """

    def __init__(self, channels: tuple[str, ...], on_close: Callable[[Subscription], object]) -> None:
        self.channels = channels
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._on_close = on_close
        self.closed = False

    async def get(self, timeout_s: float | None = None) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.queue.get(), timeout_s)

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[tuple[str, bytes]]:
        while not self.closed:
            yield await self.queue.get()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            res = self._on_close(self)
            if asyncio.iscoroutine(res):
                await res


class Bus(abc.ABC):
    # Since when (``time.monotonic()``) the bus has received without a break: None while it is
    # disconnected. 0.0: always (an in-process bus loses nothing). The gateway's registry counts
    # from here before it trusts "offline" (``Registry.caught_up``).
    live_since: float | None = 0.0

    @abc.abstractmethod
    async def publish(self, channel: str, message: bytes) -> int:
        """Send to every current subscriber of ``channel``.

        Returns 0 when nobody was subscribed, more otherwise (MemoryBus counts subscriptions,
        Redis counts subscribed connections): callers may rely on 0 only.
        """

    @abc.abstractmethod
    async def subscribe(self, *channels: str) -> Subscription:
        """Start receiving ``channels``; the subscription is active when this returns."""

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
