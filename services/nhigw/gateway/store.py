"""Small key/value store the gateway replicas share: Redis, or a dict for the in-memory deployment.

Used for idempotency answers, in-flight markers, write-attempt markers, enrolment tokens
and sealed agent keys. Values are bytes; TTLs in seconds.
"""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from nhigw.bus.base import BusError, NotConfirmed
from nhigw.bus.resp import ReplicaTimeout, ReplicaWait

REDIS_ERRORS = (RedisError, OSError)  # Redis refused, or its connection failed (redis-py raises both)


@contextlib.contextmanager
def redis_errors(what: str, *, on_error: Callable[[], None] | None = None) -> Iterator[None]:
    """Redis failing inside the block, raised as the bus's ``BusError`` ("``what`` failed: ..."), the one
    error the engine answers (9402, a retry, a lost trail entry); ``on_error`` first forgets what the
    failure made unknown. A ``BusError`` raised inside (``NotConfirmed``) passes as it is."""
    try:
        yield
    except REDIS_ERRORS as exc:
        if on_error is not None:
            on_error()
        raise BusError(f"{what} failed: {exc}") from exc


def answer_aad(answer_key: str) -> str:
    """A stored answer is bound to its answer key (client + Idempotency-Key): a copy under another key does not open."""
    return f"answer:{answer_key}"


class KV(abc.ABC):
    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None, nx: bool = False) -> bool:
        """Store; with ``nx`` only when absent. True when stored."""

    async def get_replicated(self, key: str, barrier: str) -> bytes | None:
        """``get``, and a value found is on the replicas too when writes wait for them (``RedisKV``)."""
        return await self.get(key)

    async def exists_many(self, keys: list[str]) -> list[bool]:
        """Whether each key holds a value (``RedisKV``: one round trip for all of them)."""
        return [await self.get(k) is not None for k in keys]

    @abc.abstractmethod
    async def getdel(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def push(self, key: str, value: bytes, *, ttl_s: float, keep: int) -> None:
        """Append to the list at ``key``, keep its last ``keep`` items, (re)set its TTL."""

    @abc.abstractmethod
    async def items(self, key: str) -> list[bytes]:
        """The list at ``key``, oldest first (empty when absent)."""


class MemoryKV(KV):
    def __init__(self) -> None:
        self._d: dict[str, tuple[bytes, float | None]] = {}
        self._lists: dict[str, tuple[list[bytes], float]] = {}

    def _live(self, key: str) -> bytes | None:
        v = self._d.get(key)
        if v is None:
            return None
        if v[1] is not None and v[1] < time.monotonic():
            del self._d[key]
            return None
        return v[0]

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None, nx: bool = False) -> bool:
        if nx and self._live(key) is not None:
            return False
        self._d[key] = (bytes(value), time.monotonic() + ttl_s if ttl_s else None)
        return True

    async def getdel(self, key: str) -> bytes | None:
        v = self._live(key)
        self._d.pop(key, None)
        return v

    async def delete(self, key: str) -> None:
        self._d.pop(key, None)
        self._lists.pop(key, None)

    async def push(self, key: str, value: bytes, *, ttl_s: float, keep: int) -> None:
        items = await self.items(key)
        self._lists[key] = ([*items, bytes(value)][-keep:], time.monotonic() + ttl_s)

    async def items(self, key: str) -> list[bytes]:
        items, until = self._lists.get(key, ([], 0.0))
        return list(items) if until >= time.monotonic() else []


class RedisKV(KV):
    def __init__(self, client: aioredis.Redis, wait: ReplicaWait | None = None) -> None:
        self.client, self.wait = client, wait  # wait: ``set`` waits for replicas (nhigw.bus.resp)

    async def get(self, key: str) -> bytes | None:
        with redis_errors("redis get"):
            # redis-py types every reply as bytes | str; this client never decodes (decode_responses off): bytes.
            value = cast("bytes | None", await self.client.get(key))
            return value

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None, nx: bool = False) -> bool:
        with redis_errors("redis set"):
            if self.wait is None:
                return bool(await self.client.set(key, value, px=int(ttl_s * 1000) if ttl_s else None, nx=nx))
            async with self.client.pipeline(transaction=False) as p:  # one connection: WAIT counts the SET
                p.set(key, value, px=int(ttl_s * 1000) if ttl_s else None, nx=nx)
                p.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
                done, acked = await p.execute()
            try:
                self.wait.check(acked, done)
            except ReplicaTimeout as exc:
                raise NotConfirmed(f"redis set not confirmed: {exc}", applied=bool(exc.reply)) from exc
            return bool(done)

    # On the server the value was read from: the value again and, if it is there, a write to the
    # caller's barrier key, so that the ``WAIT`` after it counts everything before it in the
    # replication stream (the value's own write included). WAIT counts only a connection's writes.
    _BARRIER = """
    local v = redis.call('GET', KEYS[1])
    if v then redis.call('SET', KEYS[2], '1', 'PX', 60000) end
    return v
    """

    async def get_replicated(self, key: str, barrier: str) -> bytes | None:
        """With replica waiting: a value written by another connection (a job's end on another replica)
        is returned only once the replicas have it, so nothing read here is lost in a failover; not
        confirmed in time -> ``BusError`` (as a write that is not confirmed). Nothing found: one GET."""
        value = await self.get(key)
        if value is None or self.wait is None:
            return value
        with redis_errors("redis get"):
            async with self.client.pipeline(transaction=False) as p:  # one connection, one server: the read and its WAIT
                p.eval(self._BARRIER, 2, key, barrier)
                p.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
                again, acked = await p.execute()
            if again is not None:
                self.wait.check(acked)
            return cast("bytes | None", again)

    async def exists_many(self, keys: list[str]) -> list[bool]:
        if not keys:
            return []
        with redis_errors("redis exists"):
            async with self.client.pipeline(transaction=False) as p:
                for k in keys:
                    p.exists(k)
                return [bool(n) for n in await p.execute()]

    async def getdel(self, key: str) -> bytes | None:
        with redis_errors("redis getdel"):
            value = cast("bytes | None", await self.client.getdel(key))
            return value

    async def delete(self, key: str) -> None:
        with redis_errors("redis delete"):
            await self.client.delete(key)

    async def push(self, key: str, value: bytes, *, ttl_s: float, keep: int) -> None:
        with redis_errors("redis push"):
            async with self.client.pipeline(transaction=True) as p:
                p.rpush(key, value)
                p.ltrim(key, -keep, -1)
                p.pexpire(key, int(ttl_s * 1000))
                await p.execute()

    async def items(self, key: str) -> list[bytes]:
        with redis_errors("redis lrange"):
            return cast("list[bytes]", await self.client.lrange(key, 0, -1))
