"""In-process bus for the single-process mode (``nhigw up``) and tests."""

from __future__ import annotations

from collections import defaultdict

from nhigw.bus.base import Bus, Subscription


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    async def publish(self, channel: str, message: bytes) -> int:
        subs = list(self._subs.get(channel, ()))
        for s in subs:
            s.queue.put_nowait((channel, bytes(message)))
        return len(subs)

    async def subscribe(self, *channels: str) -> Subscription:
        sub = Subscription(tuple(channels), self._drop)
        for c in channels:
            self._subs[c].add(sub)
        return sub

    def _drop(self, sub: Subscription) -> None:
        for c in sub.channels:
            self._subs[c].discard(sub)
            if not self._subs[c]:
                del self._subs[c]
