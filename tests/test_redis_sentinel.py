"""Redis Sentinel (issue 22): every Redis user on a ``redis+sentinel://`` URL, following a promotion,
and replica waiting (``WAIT``) after the gateway's writes, on a real primary, replica and three sentinels."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync
from aiohttp import web

from nhigw.bus.base import BusError
from nhigw.bus.redis import RedisBus
from nhigw.bus.redisurl import SentinelURL, is_sentinel, redis_client
from nhigw.bus.resp import LeanScript, ReplicaTimeout, ReplicaWait, WaitedScript, lean_script
from nhigw.gateway.app import create_app
from nhigw.gateway.service import Gateway, GatewaySettings
from nhigw.gateway.store import RedisKV
from tests.helpers import eventually, ok, serving
from tests.sentinel import SentinelSet
from tests.test_gateway_service import PASS_BODY, call, gateway_on, upstream

pytestmark = pytest.mark.redis


def test_sentinel_urls_parse_with_defaults_and_refuse_what_they_cannot_mean() -> None:
    s = SentinelURL("redis+sentinel://app:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:26379/mymaster/3?sentinel_password=sp")
    assert s.sentinels == [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26379)]
    assert (s.service, s.db, s.username, s.password, s.sentinel_password, s.tls) == ("mymaster", 3, "app", "s@cret", "sp", False)
    t = SentinelURL("rediss+sentinel://:pw@h:1/svc?ssl_ca_certs=/etc/ca.pem")
    assert (t.db, t.username, t.password, t.tls, t.tls_kwargs) == (0, None, "pw", True, {"ssl_ca_certs": "/etc/ca.pem"})
    for bad in ("redis+sentinel://h:1/", "redis+sentinel://h:1/svc/x", "redis+sentinel://h:port/svc", "redis://h:1/0"):
        with pytest.raises(ValueError):
            SentinelURL(bad)
    assert is_sentinel("redis+sentinel://h/s") and not is_sentinel("redis://h:1/0") and not is_sentinel(None)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    s = SentinelSet(tmp_path).start()
    yield s
    s.stop()


async def test_the_bus_and_the_hot_path_follow_a_promotion_and_never_write_to_the_old_primary(sentinels: SentinelSet) -> None:
    old = sentinels.primary_port
    bus = RedisBus(sentinels.url)
    script = lean_script(bus.client, "return redis.call('INCR', KEYS[1])", ReplicaWait(1, 2000))
    assert isinstance(script, WaitedScript)  # under Sentinel the lean connection is bypassed for redis-py's
    try:
        sub = await bus.subscribe("ch")
        assert await script(keys=["n"], args=[]) == 1  # on the primary, and confirmed by the replica
        with redis_sync.Redis(port=sentinels.replica_port) as one:
            assert one.get("n") == b"1"
        sentinels.kill(old)
        new = sentinels.wait_promoted(old)
        assert new == sentinels.replica_port

        async def writes() -> bool:
            try:
                return bool(await bus.client.set("after", "1"))
            except Exception:  # noqa: BLE001 -- the old primary's connections fail until the client follows
                return False

        assert await eventually(writes, 20.0)  # the client asked the sentinels again, by itself
        with redis_sync.Redis(port=new) as one:
            assert one.get("after") == b"1"

        async def heard() -> bool:  # re-subscribed on the new primary (pub/sub: a message sent meanwhile may be lost)
            await bus.publish("ch", b"hello")
            with contextlib.suppress(TimeoutError):
                return await sub.get(0.2) == ("ch", b"hello")
            return False

        assert await eventually(heard, 10.0)
        # The old primary comes back as a replica of the new one: nothing is written to it.
        sentinels.procs[old] = sentinels._replica(old, sentinels.tmp / "p")
        await bus.client.set("later", "2")
        with redis_sync.Redis(port=new) as one:
            assert one.get("later") == b"2"
        # WAIT counts replicas of the *new* primary: none linked yet at once, or the returned old one.
        with pytest.raises(ReplicaTimeout):
            await lean_script(bus.client, "return redis.call('INCR', KEYS[1])", ReplicaWait(2, 200))(keys=["n"], args=[])
    finally:
        await bus.close()


async def test_replica_waiting_on_a_single_redis_connection_and_through_redis_py(sentinels: SentinelSet) -> None:
    direct = redis_client(f"redis://127.0.0.1:{sentinels.primary_port}/0")
    behind = redis_client(sentinels.url)
    src = "return redis.call('INCR', KEYS[1])"
    try:
        lean = lean_script(direct, src, ReplicaWait(1, 2000))
        assert isinstance(lean, LeanScript)
        assert await lean(keys=["w"], args=[]) == 1
        with redis_sync.Redis(port=sentinels.primary_port) as one:
            one.script_flush()
        assert await lean(keys=["w"], args=[]) == 2  # NOSCRIPT: loaded again, waited again
        assert await WaitedScript(behind, src, ReplicaWait(1, 2000))(keys=["w"], args=[]) == 3
        assert await RedisKV(behind, wait=ReplicaWait(1, 2000)).set("k", b"v", nx=True)
        with redis_sync.Redis(port=sentinels.replica_port) as one:
            assert one.get("w") == b"3"
        # Two replicas asked for, one there: each way fails in time (the write is on the primary only).
        lean.wait = ReplicaWait(2, 100)
        with pytest.raises(ReplicaTimeout):
            await lean(keys=["w"], args=[])
        with pytest.raises(ReplicaTimeout):
            await WaitedScript(behind, src, ReplicaWait(2, 100))(keys=["w"], args=[])
        with pytest.raises(BusError, match="replica"):
            await RedisKV(behind, wait=ReplicaWait(2, 100)).set("k2", b"v")
    finally:
        await direct.aclose()
        await behind.aclose()
        await lean.aclose()


async def test_a_gateway_under_sentinel_waits_for_its_replica_and_answers_9402_when_it_does_not_confirm(sentinels: SentinelSet, bus_prefix: str) -> None:
    """The default under Sentinel: WAIT 1. With the replica stopped, admission is not confirmed: the HIS
    gets 9402 with its Idempotency-Key, as when Redis does not answer; with it back, the same key runs."""
    hits: list[bytes] = []

    async def answer_ok(req: web.Request) -> web.Response:
        hits.append(await req.read())
        return web.json_response({"statusCode": 0})

    bus = RedisBus(sentinels.url)
    try:
        async with upstream(answer_ok) as url, gateway_on(url, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), replica_wait_ms=300) as (gw_url, gw), aiohttp.ClientSession() as http:
            assert gw.queue._admit_script.wait == ReplicaWait(1, 300)  # type: ignore[attr-defined]
            assert ok(await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY))
            sentinels.procs[sentinels.replica_port].send_signal(19)  # SIGSTOP: the replica stops confirming
            try:
                st, body, hdr = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "sentinel-0001"})
                assert (st, body["statusCode"], body["idempotencyKey"]) == (200, 9402, "sentinel-0001")
                assert len(hits) == 1  # not confirmed, not answered as done
            finally:
                sentinels.procs[sentinels.replica_port].send_signal(18)  # SIGCONT

            async def again() -> bool:
                st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "sentinel-0001", "X-Deadline-Ms": "3000"})
                return ok((st, body))

            assert await eventually(again, 15.0)
            assert (await gw.audit.verify()).ok
    finally:
        await bus.close()


async def test_a_jobs_end_the_replicas_did_not_confirm_is_not_given_to_the_his_by_any_replica(sentinels: SentinelSet, bus_prefix: str) -> None:
    """The job's end waits too: the request is admitted on replica A (no workers) and run on B; the
    replica stops confirming while the cloud answers. Neither B (its WAIT fails) nor A (B's ``done``
    is sent only after the WAIT; A's read of the stored answer is confirmed first) gives the HIS that
    answer: it gets 9402 with its key. With the replica back, the same key gets the answer, run once."""
    replica = sentinels.procs[sentinels.replica_port]
    hits: list[bytes] = []

    async def answer_then_lose_the_replica(req: web.Request) -> web.Response:
        hits.append(await req.read())
        replica.send_signal(19)  # SIGSTOP: admission was confirmed, the job's end will not be
        return web.json_response({"statusCode": 0, "n": len(hits)})

    key = os.urandom(32)
    bus_a, bus_b = RedisBus(sentinels.url), RedisBus(sentinels.url)
    try:
        async with upstream(answer_then_lose_the_replica) as url, gateway_on(url, bus=bus_b, prefix=bus_prefix, gateway_key=key, replica_wait_ms=300) as (_, gw_b):
            gw_a = Gateway(bus_a, GatewaySettings(cloud_url=url, prefix=bus_prefix, gateway_key=key, replica_wait_ms=300))
            async with serving(create_app(gw_a, workers=False)) as url_a, aiohttp.ClientSession() as http:
                try:
                    st, body, _ = await call(http, "POST", url_a + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "end-0001", "X-Deadline-Ms": "5000"})
                    assert (st, body["statusCode"], body.get("idempotencyKey")) == (200, 9402, "end-0001"), body
                    assert len(hits) == 1
                finally:
                    replica.send_signal(18)  # SIGCONT

                async def answered() -> bool:
                    st, body, hdr = await call(http, "POST", url_a + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "end-0001"})
                    return st == 200 and body.get("n") == 1 and hdr.get("Idempotent-Replayed") == "true"

                assert await eventually(answered, 15.0)
                assert len(hits) == 1 and (await gw_b.audit.verify()).ok
    finally:
        await bus_a.close()
        await bus_b.close()


async def test_two_deliveries_of_one_write_at_once_send_it_once_and_an_unconfirmed_marker_is_not_sent_and_not_9403(sentinels: SentinelSet, bus_prefix: str) -> None:
    """A stalled replica's entry reclaimed while it still runs: two deliveries of one write at once.
    Only the one that places the ``attempted`` marker (SET NX) sends; the other sends nothing and
    answers nothing. And a marker the replicas do not confirm: not sent, answered 9402, the marker
    removed by the job's end, so the next delivery sends it (rather than answering 9403 for it)."""
    import asyncio
    import uuid

    from nhigw.contracts.models import QueuedJob
    from nhigw.gateway.service import HeldElsewhere

    hits: list[bytes] = []
    release = asyncio.Event()

    async def slow_ok(req: web.Request) -> web.Response:
        hits.append(await req.read())
        await release.wait()
        return web.json_response({"statusCode": 0})

    bus = RedisBus(sentinels.url)
    try:
        async with upstream(slow_ok) as url, gateway_on(url, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), replica_wait_ms=300) as (_, gw):
            def job(key: str) -> QueuedJob:
                return QueuedJob(requestId=uuid.uuid4().hex, idempotencyKey=key, answerKey=uuid.uuid4().hex,
                                 path="/api/v1/EmergentTel/Write", body=json.dumps(PASS_BODY), client="local", write=True, enqueuedAt=0.0, deadline=9e9)

            j = job("twice-0001")
            # The reclaimed delivery (2) got going first and sends; the stalled one (1) resumes after
            # (a first delivery does not look for a marker: its key was free when it was queued).
            first = asyncio.create_task(gw.process(j, 2))
            assert await eventually(lambda: _true(len(hits) == 1), 5.0)
            with pytest.raises(HeldElsewhere):  # the marker is the other delivery's: not sent again
                await gw.process(j, 1)
            release.set()
            ans, final, _, _ = await first
            assert (json.loads(ans.body)["statusCode"], final, len(hits)) == (0, True, 1)

            # The replicas stop confirming: the marker is on the primary only; the write is not sent.
            j2 = job("unconfirmed-0001")
            sentinels.procs[sentinels.replica_port].send_signal(19)  # SIGSTOP
            try:
                ans, final, rec, phases = await gw.process(j2, 1)
                assert (json.loads(ans.body)["statusCode"], final, len(hits)) == (9402, False, 1), ans.body
                with redis_sync.Redis(port=sentinels.primary_port) as one:
                    assert one.exists(f"{bus_prefix}:attempted:{j2.answerKey}")
            finally:
                sentinels.procs[sentinels.replica_port].send_signal(18)  # SIGCONT
            await gw._finish("0-1", j2, ans, final, rec, phases, 1)  # the job's end removes this delivery's own marker
            with redis_sync.Redis(port=sentinels.primary_port) as one:
                assert not one.exists(f"{bus_prefix}:attempted:{j2.answerKey}")
            ans, final, _, _ = await gw.process(j2, 2)  # the next delivery sends it: 0, not 9403
            assert (json.loads(ans.body)["statusCode"], final, len(hits)) == (0, True, 2)
    finally:
        await bus.close()


async def _true(v: bool) -> bool:
    return v


async def test_a_dead_letters_answer_is_announced_only_once_the_replicas_have_it(sentinels: SentinelSet, bus_prefix: str) -> None:
    """With replica waiting, dead-lettering announces the final answer to the waiting replica only after
    ``WAIT`` confirmed it, as a job's end does (else that replica could give its HIS an answer a
    failover takes back); unconfirmed, it is stored on the primary and not announced."""
    import asyncio
    import uuid

    from nhigw.contracts.models import QueuedJob
    from nhigw.gateway.queue import DeadAnswer, RedisQueue

    class Hook:
        async def answer(self, raw: bytes, entry_id: str, deliveries: int) -> DeadAnswer:
            return DeadAnswer(f"{bus_prefix}:answer:{entry_id}", b"sealed", 60.0, f"{bus_prefix}:done:a", entry_id.encode(), False)

        async def deliver(self, a: DeadAnswer) -> None:
            raise AssertionError("a Redis queue stores and announces itself")

    bus = RedisBus(sentinels.url)
    q = RedisQueue(bus.client, f"{bus_prefix}:jobs", "g", f"{bus_prefix}:dead", max_deliveries=1, wait=ReplicaWait(1, 200))
    q.dead_hook = Hook()
    sub = await bus.subscribe(f"{bus_prefix}:done:a")
    primary = redis_sync.Redis(port=sentinels.primary_port)

    async def dead_letter_one() -> str:
        job = QueuedJob(requestId=uuid.uuid4().hex, idempotencyKey="k", answerKey=uuid.uuid4().hex, path="/api/v1/EmergentTel/Write", body="{}", client="c", write=True, enqueuedAt=0.0, deadline=9e9)
        eid = await q.add(job)
        assert [d.id for d in await q.read("c1", count=1, block_s=0.1)] == [eid]  # delivery 1
        assert await q.claim_stale("c2", min_idle_s=0) == []  # delivery 2 > max_deliveries: dead-lettered
        assert primary.exists(f"{bus_prefix}:answer:{eid}") and primary.xlen(f"{bus_prefix}:dead") >= 1
        return eid

    try:
        await q.start()
        sentinels.procs[sentinels.replica_port].send_signal(19)  # SIGSTOP: the replica confirms nothing
        try:
            await dead_letter_one()
            with pytest.raises(asyncio.TimeoutError):
                await sub.get(0.5)  # not announced
        finally:
            sentinels.procs[sentinels.replica_port].send_signal(18)  # SIGCONT
        eid = await dead_letter_one()
        assert await sub.get(5.0) == (f"{bus_prefix}:done:a", eid.encode())  # confirmed: announced
    finally:
        await sub.close()
        await q.close()
        primary.close()
        await bus.close()
