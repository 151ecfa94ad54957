"""The work queue's contract, run against both implementations: RedisQueue (real Redis Streams
with a consumer group) and MemoryQueue (``nhigw up``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import QueuedJob
from nhigw.gateway.queue import Delivery, MemoryQueue, RedisQueue, WorkQueue
from tests.helpers import eventually


def job(n: int) -> QueuedJob:
    now = time.time()
    return QueuedJob(requestId=f"r{n}", idempotencyKey=f"k{n}", answerKey=f"a{n}", path="/api/v1/BasicData/Query", body="{}", client="c", write=False, enqueuedAt=now, deadline=now + 30)


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest, bus_prefix: str) -> AsyncIterator[WorkQueue]:
    if request.param == "memory":
        yield MemoryQueue(max_deliveries=3)
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_server"))
    k = BusKeys(bus_prefix)
    q = RedisQueue(client, k.jobs, k.jobs_group, k.dead, max_deliveries=3)
    await q.start()
    await q.start()  # BUSYGROUP tolerated: every replica creates the group at start
    yield q
    await client.aclose()


async def test_each_entry_goes_to_one_consumer_and_ack_removes_it(queue: WorkQueue) -> None:
    for n in range(4):
        await queue.add(job(n))
    a = await queue.read("A", count=2, block_s=0.5)
    b = await queue.read("B", count=10, block_s=0.5)
    assert [d.job().requestId for d in a] == ["r0", "r1"] and [d.job().requestId for d in b] == ["r2", "r3"]
    assert all(d.deliveries == 1 for d in a + b)
    assert (await queue.depth()).pending == 4
    for d in a + b:
        await queue.ack(d.id)
    assert (await queue.depth()).pending == 0
    assert await queue.read("A", block_s=0.1) == []


async def test_an_entry_read_with_its_job_known_is_delivered_with_that_job_unopened(queue: WorkQueue) -> None:
    mine, other = job(1), job(2)
    eid = await queue.add(mine)
    await queue.add(other)
    a, b = await queue.read("A", count=2, block_s=0.5, known={eid: mine})
    assert a.known is mine and a.raw == b"" and a.job() is mine
    assert b.known is None and b.job().requestId == "r2"


async def claimed_once_idle(queue: WorkQueue, consumer: str) -> list[Delivery]:
    """``claim_stale`` asked until the entry has been idle long enough (0.1 s) to be claimed."""
    got: list[Delivery] = []

    async def claim() -> bool:
        got[:] = await queue.claim_stale(consumer, min_idle_s=0.1)
        return bool(got)

    assert await eventually(claim, 5, interval_s=0.02)
    return got


async def dead_lettered_once_idle(queue: WorkQueue, consumer: str) -> None:
    """``claim_stale`` asked until it dead-letters the entry, never delivering it again."""

    async def dead() -> bool:
        assert await queue.claim_stale(consumer, min_idle_s=0.1) == []  # a further delivery would exceed N=3
        return bool(await queue.dead())

    assert await eventually(dead, 5, interval_s=0.02)


async def test_a_dead_consumers_entry_is_reclaimed_then_dead_lettered_after_n_deliveries(queue: WorkQueue) -> None:
    await queue.add(job(1))
    (first,) = await queue.read("dies", block_s=0.5)
    assert await queue.claim_stale("B", min_idle_s=5) == []  # not idle yet: a live consumer keeps it
    (again,) = await claimed_once_idle(queue, "B")
    assert again.id == first.id and again.deliveries == 2
    (third,) = await claimed_once_idle(queue, "C")
    assert third.deliveries == 3
    await dead_lettered_once_idle(queue, "B")
    (dead,) = await queue.dead()
    assert dead.deliveries == 3 and dead.originalId == first.id
    d = await queue.depth()
    assert (d.pending, d.dead) == (0, 1)
    # An operator retries it: it is a fresh entry, delivered once, a new run of the same job (same key, new
    # requestId: the workers' replay check drops an old requestId added again).
    assert await queue.retry(dead.id)
    assert await queue.dead() == []
    (back,) = await queue.read("B", block_s=0.5)
    assert back.job().requestId != "r1" and back.job().answerKey == job(1).answerKey and back.deliveries == 1
    await queue.ack(back.id)


async def test_touch_keeps_a_live_consumers_entry_from_being_reclaimed(queue: WorkQueue) -> None:
    await queue.add(job(2))
    (d,) = await queue.read("alive", block_s=0.5)
    for _ in range(3):
        await asyncio.sleep(0.1)
        await queue.touch("alive", [d.id])
    assert await queue.claim_stale("thief", min_idle_s=0.2) == []
    await queue.ack(d.id)


async def test_discard_drops_a_dead_letter_once(queue: WorkQueue) -> None:
    await queue.add(job(3))
    await queue.read("x", block_s=0.5)
    for _ in range(2):
        await claimed_once_idle(queue, "y")
    await dead_lettered_once_idle(queue, "y")
    (dead,) = await queue.dead()
    assert (await queue.discard(dead.id)) is not None
    assert await queue.discard(dead.id) is None and await queue.retry(dead.id) is None
    assert await queue.dead() == []


async def test_admission_hands_older_entries_with_whether_their_answer_is_stored_trusted_only_under_the_seal(redis_server: str, bus_prefix: str) -> None:
    """The admission script delivers an older entry to a free slot with its answer's EXISTS (field ``x`` for
    the key in field ``a``), for the replay check; a field outside the seal is believed only when the sealed
    job names the same answer key."""
    from nhigw.bus.seal import Sealer
    from nhigw.gateway.queue import Admission

    client = aioredis.Redis.from_url(redis_server)
    k = BusKeys(bus_prefix)
    q = RedisQueue(client, k.jobs, k.jobs_group, k.dead, box=Sealer(Sealer.new_key_b64().encode()[:32]), answer_prefix=k.answer(""))
    try:
        await q.start()

        jobs = {n: job(n) for n in range(7)}

        def admission(n: int, take: bool) -> Admission:
            return Admission(jobs[n], k.inflight(f"a{n}"), k.waiters(f"a{n}"), b"fp", 60.0, take=take)

        own = await q.admit("A", admission(0, True), None)  # type: ignore[arg-type]
        assert own.first and own.delivery is not None and own.delivery.known is jobs[0] and own.delivery.raw == b""
        await q.admit("A", admission(1, False), None)  # type: ignore[arg-type]
        await q.admit("A", admission(2, False), None)  # type: ignore[arg-type]
        # job 3's sealed entry added again by someone with write access to Redis, naming another answer key
        await client.xadd(k.jobs, {"job": q.box.seal(jobs[3].model_dump_json().encode(), q.aad), "a": "a-none"})
        await client.set(k.answer("a1"), b"stored")
        await client.set(k.answer("a3"), b"stored")
        got = [await q.admit("A", admission(n, True), None) for n in (4, 5, 6)]  # type: ignore[arg-type]
        older = [a.delivery for a in got]
        assert [d.job().requestId if d else None for d in older] == ["r1", "r2", "r3"]
        assert [d.answered if d else "-" for d in older] == [True, False, None]  # r3: not believed, its worker asks Redis itself
    finally:
        await q.close()  # the admission script's lean connection
        await client.aclose()
