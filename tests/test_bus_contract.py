"""One contract, two buses: MemoryBus and RedisBus (on a real redis-server) behave the same.

Plus RedisBus's own promise: when Redis restarts, it reconnects and re-subscribes by
itself, and subscriptions opened before the restart receive again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nhigw.bus import Bus, MemoryBus
from nhigw.bus.base import BusError
from nhigw.bus.redis import RedisBus
from tests.conftest import start_redis


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        b: Bus = MemoryBus()
    else:
        b = RedisBus(request.getfixturevalue("redis_server"))
    yield b
    await b.close()


async def test_publish_reaches_every_subscriber_of_the_channel_in_order(bus: Bus, bus_prefix: str) -> None:
    ch, other = f"{bus_prefix}:a", f"{bus_prefix}:b"
    s1, s2, s3 = await bus.subscribe(ch), await bus.subscribe(ch), await bus.subscribe(other)
    assert await bus.publish(ch, b"one") >= 1  # Redis counts connections, MemoryBus subscriptions: only 0 is meaningful
    assert await bus.publish(ch, b"two") >= 1
    for s in (s1, s2):
        assert await s.get(2) == (ch, b"one")
        assert await s.get(2) == (ch, b"two")
    with pytest.raises(TimeoutError):
        await s3.get(0.2)
    for s in (s1, s2, s3):
        await s.close()


async def test_publish_counts_zero_when_nobody_listens_and_after_close(bus: Bus, bus_prefix: str) -> None:
    ch = f"{bus_prefix}:nobody"
    assert await bus.publish(ch, b"x") == 0
    s = await bus.subscribe(ch)
    assert await bus.publish(ch, b"x") == 1
    await s.close()
    assert await bus.publish(ch, b"x") == 0


async def test_one_subscription_over_several_channels_and_binary_payloads(bus: Bus, bus_prefix: str) -> None:
    a, b = f"{bus_prefix}:x", f"{bus_prefix}:y"
    s = await bus.subscribe(a, b)
    payload = bytes(range(256))
    await bus.publish(a, payload)
    await bus.publish(b, b"\x00")
    got = {await s.get(2), await s.get(2)}
    assert got == {(a, payload), (b, b"\x00")}
    await s.close()


async def test_closing_one_subscription_leaves_the_others(bus: Bus, bus_prefix: str) -> None:
    ch = f"{bus_prefix}:shared"
    s1, s2 = await bus.subscribe(ch), await bus.subscribe(ch)
    await s1.close()
    assert await bus.publish(ch, b"still") >= 1
    assert await s2.get(2) == (ch, b"still")
    await s2.close()


async def test_ping(bus: Bus) -> None:
    assert await bus.ping() is True


@pytest.mark.redis
async def test_redis_bus_reconnects_and_resubscribes_after_a_redis_restart(tmp_path: Path, bus_prefix: str) -> None:
    proc, port = start_redis(tmp_path, appendonly=True)
    bus = RedisBus(f"redis://127.0.0.1:{port}/0")
    ch = f"{bus_prefix}:survives"
    try:
        sub = await bus.subscribe(ch)
        assert await bus.publish(ch, b"before") == 1
        assert await sub.get(2) == (ch, b"before")
        proc.kill()
        proc.wait(5)
        assert await bus.ping() is False
        proc, _ = start_redis(tmp_path, appendonly=True, port=port)
        # The reader reconnects with capped backoff and re-subscribes by itself. Pub/sub may lose
        # what is published around the reconnect (seen: the first message after it), so publish
        # until the old subscription hears again.
        got = None
        for _ in range(100):
            with contextlib.suppress(BusError):
                await bus.publish(ch, b"after")
            with contextlib.suppress(TimeoutError):
                got = await sub.get(0.1)
                break
        assert got == (ch, b"after")
        # and a new subscription on the same bus works too
        sub2 = await bus.subscribe(ch + ":new")
        assert await bus.publish(ch + ":new", b"fresh") >= 1
        assert await sub2.get(3) == (ch + ":new", b"fresh")
        await sub.close()
        await sub2.close()
    finally:
        await bus.close()
        proc.kill()
        proc.wait(5)
