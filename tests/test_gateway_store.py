"""The gateway's key/value store, the same contract on Redis and in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nhigw.gateway.store import KV, MemoryKV, RedisKV


@pytest.fixture(params=["memory", "redis"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KV]:
    if request.param == "memory":
        yield MemoryKV()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_server"))
    yield RedisKV(client)
    await client.aclose()


async def test_exists_many_says_for_each_key_whether_it_holds_a_value(kv: KV, bus_prefix: str) -> None:
    a, b, c = (f"{bus_prefix}:kv:{n}" for n in "abc")
    await kv.set(a, b"1", ttl_s=60)
    await kv.set(c, b"", ttl_s=60)  # an empty value is a value
    assert await kv.exists_many([a, b, c, a]) == [True, False, True, True]
    assert await kv.exists_many([]) == []
    await kv.delete(a)
    assert await kv.exists_many([a, c]) == [False, True]
