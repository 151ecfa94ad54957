"""Dead letters (issue 21 item 2) on a real Redis with a real cloud on loopback: the history of every
delivery and attempt, bounded bulk retry, and no second cloud write without an operator's recorded decision.

Workers "crash" through a transport wrapper around the real HTTP client: a read dies in the worker
before it is sent; a write is sent, the cloud executes it, and the worker dies before the answer is
recorded (its outcome is unknown to the gateway). With ``max_deliveries=1`` each is dead-lettered by the
replica that reclaims it.

- 100 reads and 3 such writes dead-lettered; a bulk retry bounded at 10 retries exactly 10 (oldest
  first), lists the 3 writes as needing a decision, and the cloud sees exactly 10 more reads;
- a second, unbounded bulk retry puts back every read and still no write: the cloud has seen each
  write once; a plain retry of a write is refused (9403);
- only ``resend`` with ``reconciled`` (the operator's decision, an audit record with its note) sends
  one write again: the cloud sees it twice, the other two once;
- the history of a dead letter: the failed delivery (replica, error, phases), the write's send (from its
  ``attempted`` marker), the dead-lettering, the operator's retry, and the re-run's answer with the
  cloud's code and its upstream attempts.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from nhigw.bus.redis import RedisBus
from nhigw.gateway.auth import Clients, Role
from nhigw.gateway.upstream import AiohttpTransport, Transport, UpstreamRequest, UpstreamResponse, UpstreamSettings
from tests.helpers import eventually
from tests.test_gateway_service import HOSP, PASS_BODY, call, gateway_on, upstream

pytestmark = pytest.mark.redis

READ, WRITE = "/api/v1/BasicData/Query", "/api/v1/EmergentTel/Write"


class CrashingWorker(Transport):
    """Until ``healed``: a read's worker dies before sending; a write's after the cloud executed it."""

    def __init__(self) -> None:
        self.healed = False
        self.inner = AiohttpTransport(UpstreamSettings())

    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        if self.healed:
            return await self.inner.send(base_url, req)
        if req.write:
            await self.inner.send(base_url, req)
            raise RuntimeError("worker died after the cloud executed the write")
        raise RuntimeError("worker died before sending")

    async def close(self) -> None:
        await self.inner.close()


async def test_bulk_retry_is_bounded_and_a_write_that_may_have_landed_waits_for_a_recorded_decision(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    seen: Counter[tuple[str, str]] = Counter()  # (route, Idempotency-Key) the cloud executed

    async def cloud(req: web.Request) -> web.Response:
        seen[(req.match_info["path"], req.headers.get("Idempotency-Key", ""))] += 1
        return web.json_response({"statusCode": 0, "name": "測試十"})

    f = tmp_path / "clients.json"
    his = {"Authorization": f"Bearer {Clients.add(f, 'his-a', HOSP, ['*'])}"}
    op = {"Authorization": f"Bearer {Clients.add(f, 'it-desk', HOSP, ['*'], role=Role.OPERATOR)}"}
    transport = CrashingWorker()
    bus = RedisBus(redis_server)
    try:
        async with upstream(cloud) as cloud_url, gateway_on(
            cloud_url, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), clients=Clients.load(f), transport=transport,
            max_deliveries=1, claim_idle_s=0.2, claim_every_s=0.05, upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6, backoff_base_s=0.001),
        ) as (url, _gw), aiohttp.ClientSession() as http:

            async def send(path: str, key: str, body: dict[str, object]) -> dict[str, object]:
                return (await call(http, "POST", url + path, json=body, headers={**his, "Idempotency-Key": key, "X-Deadline-Ms": "100"}))[1]

            for i in range(3):  # the oldest dead letters: writes that landed
                await send(WRITE, f"w-{i}", {**PASS_BODY, "tel": f"02{i:08d}"})
            async def cloud_saw(n: int, route: str | None = None) -> bool:
                return sum(v for (r, _k), v in seen.items() if route is None or r == route) == n

            assert await eventually(lambda: cloud_saw(3), timeout_s=10)
            await asyncio.gather(*(send(READ, f"r-{i:03d}", PASS_BODY) for i in range(100)))

            async def dead() -> list[dict]:
                return (await call(http, "GET", url + "/api/ops/dead-letters", headers=op))[1]["deadLetters"]

            async def all_dead() -> bool:
                return len(await dead()) == 103

            assert await eventually(all_dead, timeout_s=30)
            letters = await dead()
            writes = [d["id"] for d in letters if d["job"]["write"]]
            assert len(writes) == 3 and all(d["mayHaveLanded"] and d["actions"] == ["resend", "discard"] for d in letters if d["job"]["write"])
            assert sum(seen.values()) == 3  # no read reached the cloud

            # The history of one read and one write, as the dead-letter view shows them.
            read_id = next(d["id"] for d in letters if not d["job"]["write"])
            hist = (await call(http, "GET", url + f"/api/ops/dead-letters/{read_id}", headers=op))[1]["history"]
            assert [h["event"] for h in hist] == ["failed", "dead-lettered"], hist
            assert hist[0]["detail"].startswith("RuntimeError: worker died before sending") and hist[0]["delivery"] == 1 and hist[0]["instance"] == _gw.instance
            assert "cloud" in hist[0]["phases"]
            whist = (await call(http, "GET", url + f"/api/ops/dead-letters/{writes[0]}", headers=op))[1]["history"]
            assert [h["event"] for h in whist] == ["sent", "failed", "dead-lettered"], whist
            assert whist[0]["instance"] == _gw.instance and whist[2]["statusCode"] == 9403
            # Retried while the worker still dies: the new dead letter's history continues the old one's.
            assert (await call(http, "POST", url + f"/api/ops/dead-letters/{read_id}/retry", headers=op))[1]["statusCode"] == 0

            async def dead_again() -> bool:
                return any(d["job"]["rerunOf"] == read_id for d in await dead())

            assert await eventually(dead_again, timeout_s=10)
            again = next(d["id"] for d in await dead() if d["job"]["rerunOf"] == read_id)
            hist = (await call(http, "GET", url + f"/api/ops/dead-letters/{again}", headers=op))[1]["history"]
            assert [h["event"] for h in hist] == ["failed", "dead-lettered", "retry", "failed", "dead-lettered"], hist
            assert hist[2]["client"] == "it-desk" and hist[3]["requestId"] != hist[0]["requestId"]
            letters = await dead()

            # Bounded: exactly 10 retried, oldest first; the writes are never in a bulk retry.
            transport.healed = True
            st, bulk, _ = await call(http, "POST", url + "/api/ops/dead-letters/bulk-retry", json={"max": 10}, headers=op)
            assert st == 200 and len(bulk["retried"]) == 10 and sorted(bulk["needDecision"]) == sorted(writes), bulk
            assert await eventually(lambda: cloud_saw(13), timeout_s=10)
            assert len(await dead()) == 93
            one = next(iter(bulk["retried"]))
            assert (await call(http, "GET", url + f"/api/ops/dead-letters/{one}", headers=op))[0] == 404  # put back: no longer a dead letter
            st, body, _ = await call(http, "POST", url + READ, json=PASS_BODY, headers={**his, "Idempotency-Key": next(d["job"]["idempotencyKey"] for d in letters if d["id"] == one)})
            assert body["statusCode"] == 0, body  # the re-run's answer is the key's answer

            # Unbounded: every read; still no write, and a plain retry of one is refused.
            st, bulk, _ = await call(http, "POST", url + "/api/ops/dead-letters/bulk-retry", json={"max": 1000}, headers=op)
            assert len(bulk["retried"]) == 90 and sorted(bulk["needDecision"]) == sorted(writes), bulk
            assert await eventually(lambda: cloud_saw(103), timeout_s=20)
            st, refused, _ = await call(http, "POST", url + f"/api/ops/dead-letters/{writes[0]}/retry", headers=op)
            assert (st, refused["statusCode"]) == (200, 9403) and refused["resend"].endswith("/resend"), refused

            async def nothing_in_flight() -> bool:  # no worker holds an entry that could still send a write
                return (await _gw.queue.depth()).pending == 0

            assert await eventually(nothing_in_flight, timeout_s=10)
            assert [n for (route, _k), n in seen.items() if route == "EmergentTel/Write"] == [1, 1, 1]

            # The recorded decision sends one write again, and only it.
            st, body, _ = await call(http, "POST", url + f"/api/ops/dead-letters/{writes[0]}/resend", json={"reconciled": True, "note": "EmergentTel/Query showed no new number"}, headers=op)
            assert st == 200 and body["requeuedAs"], body
            assert await eventually(lambda: cloud_saw(4, "EmergentTel/Write"), timeout_s=10)
            assert sorted(n for (route, _k), n in seen.items() if route == "EmergentTel/Write") == [1, 1, 2]
            records = (await call(http, "GET", url + "/api/audit?limit=1000", headers=op))[1]["records"]
            resends = [r for r in records if r["route"] == "ops/dead-letters/resend"]
            assert len(resends) == 1 and resends[0]["client"] == "it-desk" and "showed no new number" in resends[0]["note"]
            assert len([r for r in records if r["route"] == "ops/dead-letters/retry"]) == 101  # 1 + 10 + 90, each its own record
            assert sorted(d["id"] for d in await dead()) == sorted(writes[1:])
    finally:  # on a failure too: an open client left to the collector fails a later test
        await transport.close()
        await bus.close()


async def test_a_writes_send_comes_before_what_its_delivery_recorded_in_the_same_millisecond() -> None:
    """The ``sent`` entry (from the write's marker, a key of its own) sits before the failure its delivery
    pushed in the same millisecond, and after what came before that millisecond: timestamps alone tie."""
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.store import MemoryKV
    from nhigw.gateway.trail import SentMarker, Trail, TrailEntry

    kv, keys = MemoryKV(), BusKeys("t")
    trail = Trail(kv, keys, ttl_s=60)
    at = "2026-12-04T02:11:52.697+00:00"
    await trail.add("k", TrailEntry(at="2026-12-04T02:11:52.100+00:00", event="redelivered", instance="a", requestId="r", delivery=2))
    await trail.add("k", TrailEntry(at=at, event="failed", instance="a", requestId="r", delivery=2))
    await trail.add("k", TrailEntry(at="2026-12-04T02:11:52.900+00:00", event="dead-lettered", instance="a", requestId="r", delivery=2))
    await kv.set(keys.attempted("k"), SentMarker(at=at, instance="a", requestId="r", delivery=2).model_dump_json().encode())
    assert [e.event for e in await trail.entries("k", write=True)] == ["redelivered", "sent", "failed", "dead-lettered"]
    assert [e.event for e in await trail.entries("k", write=False)] == ["redelivered", "failed", "dead-lettered"]
