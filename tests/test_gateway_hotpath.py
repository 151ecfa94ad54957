"""The gateway's hot path (issue 9): group commit of its Redis round trips, the admitting replica
running its own jobs, and ``done`` sent only to replicas that wait.

Counts, not timings: Redis scripts run per request (``INFO commandstats`` of a real redis-server),
messages on the replicas' ``done`` channels (a real pattern subscription), upstream calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from nhigw.bus.batch import GroupCommit
from nhigw.bus.redis import RedisBus
from nhigw.contracts.buskeys import BusKeys
from nhigw.gateway.auth import OPEN
from tests.helpers import eventually
from tests.test_gateway_service import PASS_BODY, call, gateway_on, server_timing, upstream

# ------------------------------------------------------------------ GroupCommit (pure logic)


async def test_group_commit_sends_at_once_when_idle_and_together_under_load() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def fn(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            await gate.wait()  # the first call stays in flight while the others arrive
        return [i * 10 for i in items]

    gc: GroupCommit[int, int] = GroupCommit(fn)
    first = asyncio.create_task(gc.submit(0))
    await asyncio.sleep(0)
    assert calls == [[0]]  # idle: sent by the submitter itself, alone, at once
    rest = [asyncio.create_task(gc.submit(i)) for i in range(1, 51)]
    await asyncio.sleep(0.01)
    assert len(calls) == 1  # one call in flight at a time
    gate.set()
    assert await first == 0 and await asyncio.gather(*rest) == [i * 10 for i in range(1, 51)]
    assert calls[1] == list(range(1, 51))  # everything that queued meanwhile, in order, in one call
    assert (gc.calls, gc.items) == (2, 51)


async def test_group_commit_a_failed_batch_fails_each_of_its_items_and_the_next_batch_runs() -> None:
    calls: list[list[str]] = []
    gate = asyncio.Event()

    async def fn(items: list[str]) -> list[str]:
        calls.append(items)
        if len(calls) == 1:
            await gate.wait()
        if "bad" in items:
            raise ConnectionError("redis went away")
        return [s.upper() for s in items]

    gc: GroupCommit[str, str] = GroupCommit(fn, max_batch=2)
    first = asyncio.create_task(gc.submit("a"))
    await asyncio.sleep(0)
    batch2 = [asyncio.create_task(gc.submit(s)) for s in ("b", "bad")]
    batch3 = [asyncio.create_task(gc.submit(s)) for s in ("c", "d")]
    await asyncio.sleep(0)
    gate.set()
    assert await first == "A"
    for t in batch2:
        with pytest.raises(ConnectionError):
            await t
    assert await asyncio.gather(*batch3) == ["C", "D"]
    assert calls == [["a"], ["b", "bad"], ["c", "d"]]  # max_batch respected


# ------------------------------------------------------------------ on a real Redis, real HTTP


def _slow_cloud(delay_s: float, seen: list[str]):
    async def handle(req: web.Request) -> web.Response:
        seen.append(req.headers["Idempotency-Key"])
        await asyncio.sleep(delay_s)
        return web.json_response({"statusCode": 0, "key": req.headers["Idempotency-Key"]})

    return upstream(handle)


@contextlib.asynccontextmanager
async def done_channels(r: aioredis.Redis, prefix: str) -> AsyncIterator[list[bytes]]:
    """The channels of every ``done`` message published on the replicas' channels, in order (a pattern subscription)."""
    seen: list[bytes] = []
    ps = r.pubsub()
    await ps.psubscribe(BusKeys(prefix).done("*"))

    async def listen() -> None:
        async for m in ps.listen():
            if m["type"] == "pmessage":
                seen.append(m["channel"])

    listener = asyncio.create_task(listen())
    try:
        yield seen
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await ps.aclose()


async def test_concurrent_requests_share_redis_round_trips_and_no_done_message_is_sent_for_nobody(redis_server: str, bus_prefix: str) -> None:
    """64 requests at once on one replica: every one answered from exactly one upstream call, in far
    fewer Redis scripts than two per request; no ``done`` message, since nobody waits elsewhere.
    With only 8 worker slots, most entries are not taken at admission: they wait until a job's end hands
    its slot the next one, in the same script (no read of their own)."""
    seen: list[str] = []
    r = aioredis.Redis.from_url(redis_server)
    bus = RedisBus(redis_server)
    try:
        async with done_channels(r, bus_prefix) as done_msgs, _slow_cloud(0.02, seen) as cloud, gateway_on(cloud, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), worker_concurrency=8) as (gw_url, gw), aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64)
        ) as http:
            await r.config_resetstat()
            results = await asyncio.gather(*[call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": f"hot-{i:02d}"}) for i in range(64)])
            stats = await r.info("commandstats")
            assert [(st, body["key"]) for st, body, _ in results] == [(200, f"hot-{i:02d}") for i in range(64)]
            assert sorted(seen) == [f"hot-{i:02d}" for i in range(64)]  # each exactly once
            scripts = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("eval", "evalsha"))
            assert 2 <= scripts < 64, stats  # admission + job end: 128 one by one; shared under load
            assert stats["cmdstat_xack"]["calls"] == 64 and stats["cmdstat_xadd"]["calls"] == 64
            assert gw.handed_over >= 64 - 8 - 16, gw.handed_over  # all but the first slots' jobs and a few the loop read
            await asyncio.sleep(0.2)
            assert done_msgs == []  # the replica that admitted each request ran it: answered in process
            assert len(await gw.audit.records()) == 64 and (await gw.audit.verify()).ok
    finally:
        await r.aclose()
        await bus.close()


async def test_a_request_joining_a_run_on_another_replica_gets_done_on_its_own_channel(redis_server: str, bus_prefix: str) -> None:
    """Replica A admits and runs a slow request; the same key at replica B joins that run. B's replica
    gets exactly one ``done`` message, on its own channel; A gets none (it ran the job itself)."""
    seen: list[str] = []
    r = aioredis.Redis.from_url(redis_server)
    key = os.urandom(32)
    bus_a, bus_b = RedisBus(redis_server), RedisBus(redis_server)
    try:
        async with done_channels(r, bus_prefix) as done_msgs, _slow_cloud(0.4, seen) as cloud, gateway_on(cloud, bus=bus_a, prefix=bus_prefix, gateway_key=key) as (url_a, gw_a), gateway_on(
            cloud, bus=bus_b, prefix=bus_prefix, gateway_key=key
        ) as (url_b, gw_b), aiohttp.ClientSession() as http:
            h = {"Idempotency-Key": "joined-1"}
            first = asyncio.create_task(call(http, "POST", url_a + "/api/v1/BasicData/Query", json=PASS_BODY, headers=h))
            await eventually(lambda: bool(seen), 2, interval_s=0.01)
            assert seen == ["joined-1"]  # A is inside the upstream call
            st_b, body_b, hdr_b = await call(http, "POST", url_b + "/api/v1/BasicData/Query", json=PASS_BODY, headers=h)
            st_a, body_a, hdr_a = await first
            assert st_a == st_b == 200 and body_a == body_b and hdr_a["X-Request-ID"] == hdr_b["X-Request-ID"]  # one run, one answer
            assert hdr_b["Idempotent-Replayed"] == "true" and seen == ["joined-1"]
            t_a, t_b = server_timing(hdr_a), server_timing(hdr_b)
            assert set(t_a) == {"queue", "cloud", "audit", "total"} and set(t_b) == {"queue", "total"}  # B did not run the job
            assert t_a["cloud"] >= 400 and t_a["total"] >= t_a["queue"] + t_a["cloud"] + t_a["audit"]  # the slow cloud, inside the total
            await eventually(lambda: bool(done_msgs), 2)
            assert done_msgs == [BusKeys(bus_prefix).done(gw_b.instance).encode()]
            assert gw_a.instance != gw_b.instance
            assert await r.exists(BusKeys(bus_prefix).waiters(gw_a.answer_key(OPEN, "joined-1"))) == 0  # told, then forgotten
    finally:
        await r.aclose()
        await bus_a.close()
        await bus_b.close()


async def test_redis_that_lost_its_data_gets_its_group_and_scripts_back_on_the_next_request(tmp_path, bus_prefix: str) -> None:
    """A Redis restarted without persistence has no stream, no consumer group and no scripts: the
    next admission recreates the group in its own script (NOGROUP) and both hot-path scripts are
    loaded again (NOSCRIPT); the request is answered, audited once more, nothing else needed."""
    from tests.conftest import start_redis

    seen: list[str] = []
    proc, port = start_redis(tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    r = aioredis.Redis.from_url(url)
    bus = RedisBus(url)
    try:
        async with _slow_cloud(0.0, seen) as cloud, gateway_on(cloud, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as (gw_url, gw), aiohttp.ClientSession() as http:
            st, _, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "before"})
            assert st == 200
            await r.flushall()
            await r.script_flush()
            st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "after"})
            assert (st, body["key"]) == (200, "after") and seen == ["before", "after"]
            groups = await r.xinfo_groups(BusKeys(bus_prefix).jobs)
            assert [g["name"] for g in groups] == [BusKeys(bus_prefix).jobs_group.encode()]
            assert [rec.idempotencyKey for rec in await gw.audit.records()] == ["after"]  # the chain starts again on the empty Redis
    finally:
        await bus.close()
        await r.aclose()
        proc.kill()
        proc.wait(5)


async def test_a_gateway_on_a_redis_unix_socket_runs_its_hot_path_there(tmp_path, bus_prefix: str) -> None:
    """``--redis unix:///path/redis.sock`` (Redis on the same host: cheaper round trips than loopback
    TCP): the bus, the queue and both hot-path scripts use the socket; the request is answered and audited."""
    from nhigw.bus.resp import LeanScript
    from tests.conftest import start_redis

    seen: list[str] = []
    sock = tmp_path / "redis.sock"
    proc, port = start_redis(tmp_path, unixsocket=sock)
    url = f"unix://{sock}?db=0"
    bus = RedisBus(url)
    r = aioredis.Redis.from_url(url)
    try:
        async with _slow_cloud(0.0, seen) as cloud, gateway_on(cloud, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as (gw_url, gw), aiohttp.ClientSession() as http:
            await r.config_resetstat()
            st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "over-unix"})
            assert (st, body["key"], seen) == (200, "over-unix", ["over-unix"])
            script = gw.queue._admit_script  # type: ignore[attr-defined]
            assert isinstance(script, LeanScript) and script.conn.path == str(sock)
            stats = await r.info("commandstats")
            evalsha = stats["cmdstat_evalsha"]
            assert evalsha["calls"] - evalsha["failed_calls"] == 2  # admission + job end on the socket's Redis (each NOSCRIPT once: a fresh Redis)
            assert [rec.idempotencyKey for rec in await gw.audit.records()] == ["over-unix"]
    finally:
        await bus.close()
        await r.aclose()
        proc.kill()
        proc.wait(5)
