"""Redis pub/sub bus (redis.asyncio), with reconnect and re-subscribe.

One receiver task per bus feeds per-subscription queues. Subscribing and
unsubscribing happen under a lock. When the connection drops, the receiver
reconnects with capped backoff and re-subscribes every live channel; messages
published while it was away are lost (pub/sub semantics: presence is re-sent every
second, and signature calls time out and are reported, never silently repeated). The reader
hands every message on as bytes, whatever it holds; what a message may be is each receiver's
business (``nhigw.bus.guard``), and no failure ends the reader, only a ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.redisurl import redis_client
from nhigw.common.logging import get_logger

log = get_logger("nhigw.bus.redis")


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis_client(url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10)
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = asyncio.Lock()
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self.live_since: float | None = None

    async def publish(self, channel: str, message: bytes) -> int:
        try:
            return int(await self.client.publish(channel, message))
        except (RedisError, OSError) as exc:
            raise BusError(f"redis publish failed: {exc}") from exc

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._ready.clear()
            self._reader = asyncio.create_task(self._run(), name="redis-bus-reader")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def subscribe(self, *channels: str) -> Subscription:
        sub = Subscription(tuple(channels), self._drop)
        async with self._lock:
            await self._ensure_reader()
            new = [c for c in channels if not self._subs.get(c)]
            for c in channels:
                self._subs[c].add(sub)
            if new and self._pubsub is not None:
                try:
                    await self._pubsub.subscribe(*new)
                except (RedisError, OSError) as exc:
                    log.warning("redis_subscribe_failed", error=str(exc))  # the reader re-subscribes on reconnect
        return sub

    async def _drop(self, sub: Subscription) -> None:
        async with self._lock:
            gone = []
            for c in sub.channels:
                self._subs[c].discard(sub)
                if not self._subs[c]:
                    del self._subs[c]
                    gone.append(c)
            if gone and self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(*gone)

    async def _run(self) -> None:
        delay = 0.05
        while not self._closed:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                # Publish the new connection first, then subscribe the snapshot: a concurrent
                # subscribe() either lands in the snapshot or subscribes on this pubsub itself.
                self._pubsub = pubsub
                await pubsub.subscribe("__nhigw_keepalive__", *list(self._subs))
                self.live_since = time.monotonic()
                self._ready.set()
                delay = 0.05
                while not self._closed:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                    data = msg["data"] if isinstance(msg["data"], bytes) else str(msg["data"]).encode()
                    for sub in list(self._subs.get(channel, ())):
                        sub.queue.put_nowait((channel, data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- Redis away, or anything else: reconnect, never a dead reader
                level = log.warning if isinstance(exc, (RedisError, OSError)) else log.exception
                level("redis_bus_reconnect", error=str(exc), retry_in_s=delay)
                self._pubsub = None
                self.live_since = None  # messages published meanwhile are lost
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        self._closed = True
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.client.aclose()
