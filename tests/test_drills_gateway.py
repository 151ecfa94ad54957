"""Fault drills of the gateway against the real simulator, every part a real process.

1. Replicas SIGKILLed again and again under load: two ``nhigw gateway`` replicas on one
   Redis in front of ``nhigw sim``; an HIS sends signed pass-through writes
   (``EmergentTel/Write``, each with its own ``Idempotency-Key``) to both, while one
   replica is SIGKILLed every 1.5 s and started again. The HIS behaves as a careful HIS
   does: on a dropped connection or a 202 (9408) it asks again with the same key. Every
   write gets a final answer (0 lost), and the simulator's own counters show no write
   executed twice, counted by content (the simulator executes whatever arrives with a valid
   signature, as the real cloud does: no deduplication by key to hide a second send).
2. The NHI cloud down, slow and resetting connections (the simulator's
   ``POST /test/v1/Faults``):
   - down: reads and writes answer 9402 (a write that provably never left is not 9403),
     consecutive failures open the breaker (``nhigw_gateway_breaker_state`` 1) and the
     gateway stops trying; the cloud back, the breaker closes after its cool-down;
   - slow (1.5 s) past the HIS's deadline (``X-Deadline-Ms``): 202 with 9408 and the key at
     the deadline, and the same key later gets the answer; the read was sent once;
   - reset on a read: retried, answered 200; reset on a write: 9403 "outcome unknown" with
     the key, never resent (asking again with the key answers 9403 again, the simulator
     saw it once and did not execute it).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from bench.common import SigMaker
from nhigw.bus.seal import Sealer
from tests.helpers import Proc, eventually, free_port, ok

pytestmark = [pytest.mark.redis]

WRITE = "/api/v1/EmergentTel/Write"
READ = "/api/v1/BasicData/Register"


class Sim:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.n = 0
        self.proc: Proc | None = None
        self.maker = SigMaker()

    def start(self) -> "Sim":
        self.n += 1
        self.proc = Proc(f"sim{self.n}", ["sim", "--port", str(self.port), "--admin"], self.tmp).wait_ready()
        self.maker.register(self.url)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def write_body(self) -> bytes:
        """A write of its own content (its own phone number): the simulator counts executions by content."""
        self.writes_made = getattr(self, "writes_made", 0) + 1
        return self.maker.body("02", tel=f"02{self.writes_made:08d}")

    def read_body(self) -> bytes:
        return self.maker.body("01")


async def get_json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as r:
        return await r.json(content_type=None)


async def post(http: aiohttp.ClientSession, url: str, body: bytes, key: str, deadline_ms: int = 10000) -> tuple[int, dict]:
    async with http.post(url, data=body, headers={"Content-Type": "application/json", "Idempotency-Key": key, "X-Deadline-Ms": str(deadline_ms)}) as r:
        return r.status, await r.json(content_type=None)


def gateway(name: str, port: int, sim: Sim, redis_url: str, prefix: str, key: str, tmp: Path) -> Proc:
    return Proc(
        name,
        ["gateway", "--port", str(port), "--cloud", sim.url, "--redis", redis_url, "--bus-key", key, "--bus-prefix", prefix,
         "--claim-idle-s", "1", "--rate-per-s", "100000", "--rate-burst", "100000"],
        tmp,
    ).wait_ready()


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_replicas_sigkilled_every_1_5_s_under_load_lose_nothing_and_send_nothing_twice(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    sim = Sim(tmp_path).start()
    key = Sealer.new_key_b64()
    ports = [free_port(), free_port()]
    gws = [gateway(f"gw{i}-0", ports[i], sim, redis_server, bus_prefix, key, tmp_path) for i in range(2)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    min_writes, max_writes = 160, 600  # at least 160, and on until 3 kills have happened (slow restarts on a loaded CI machine)
    bodies = [sim.write_body() for _ in range(max_writes)]
    final: dict[str, tuple[int, int]] = {}
    dropped = 0
    stop_killing = asyncio.Event()
    kills = 0

    async def killer() -> None:
        nonlocal kills
        i = 0
        while not stop_killing.is_set():
            await asyncio.sleep(1.5)
            if stop_killing.is_set():
                break
            victim = i % 2
            gws[victim].stop(signal.SIGKILL)
            kills += 1
            gws[victim] = await asyncio.to_thread(gateway, f"gw{victim}-{kills}", ports[victim], sim, redis_server, bus_prefix, key, tmp_path)
            i += 1

    async def his(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal dropped
        k = f"drill-{i:04d}"
        deadline = time.monotonic() + 60
        attempt = 0
        while time.monotonic() < deadline:
            url = urls[(i + attempt) % 2]
            attempt += 1
            try:
                status, body = await post(http, url + WRITE, bodies[i], k, deadline_ms=3000)
            except (aiohttp.ClientError, TimeoutError):
                dropped += 1
                await asyncio.sleep(0.2)
                continue
            if status == 202 and body.get("statusCode") == 9408:
                await asyncio.sleep(0.3)
                continue
            final[k] = (status, body.get("statusCode", -1))
            return

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            kill_task = asyncio.create_task(killer())
            tasks = []
            while len(tasks) < max_writes and (len(tasks) < min_writes or kills < 3):
                tasks.append(asyncio.create_task(his(len(tasks), http)))
                await asyncio.sleep(0.05)  # 20 writes/s
            n_writes = len(tasks)
            await asyncio.wait_for(asyncio.gather(*tasks), 100)
            stop_killing.set()
            await kill_task
            stats = await get_json(http, sim.url + "/test/v1/Stats")
            verify = await get_json(http, urls[0] + "/api/audit/verify")
    finally:
        stop_killing.set()
        for g in gws:
            g.stop()
        sim.stop()
    assert kills >= 3, f"only {kills} kills: the drill did not run under repeated failure"
    assert dropped > 0, "no HIS connection was ever cut: the kills missed the load"
    assert len(final) == n_writes, f"{n_writes - len(final)} writes never got a final answer"
    outcomes = set(final.values())
    assert outcomes <= {(200, 0), (200, 9403)}, f"unexpected answers: {outcomes - {(200, 0), (200, 9403)}}"
    by_key = stats["writesByKey"]
    assert all(v == 1 for v in by_key.values()), f"writes executed twice: {[k for k, v in by_key.items() if v > 1]}"
    assert stats["writesTwice"] == [], f"writes executed twice (by content; the simulator does not deduplicate): {stats['writesTwice']}"
    assert len(stats["writesByContent"]) == sum(by_key.values())
    ok = sum(1 for v in final.values() if v == (200, 0))
    assert sum(by_key.values()) >= ok  # every write the HIS was told succeeded was executed upstream
    assert sum(stats["writes"].values()) <= n_writes
    assert verify.get("ok") is True, verify


async def test_cloud_down_slow_and_resetting(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    sim = Sim(tmp_path).start()
    port = free_port()
    gw = gateway("gw", port, sim, redis_server, bus_prefix, Sealer.new_key_b64(), tmp_path)
    g = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def fault(**rule: object) -> None:
                async with http.post(sim.url + "/test/v1/Faults", json=rule) as r:
                    assert r.status == 200, await r.text()

            async def calls(route: str) -> int:
                return int((await get_json(http, sim.url + "/test/v1/Stats"))["calls"].get(route, 0))

            assert ok(await post(http, g + READ, sim.read_body(), "ok-1"))

            # Reset on a read: retried, answered; the simulator saw it twice.
            await fault(route="BasicData/Register", reset_connection=True, times=1)
            before = await calls("BasicData/Register")
            status, body = await post(http, g + READ, sim.read_body(), "reset-read")
            assert (status, body["statusCode"]) == (200, 0), body
            assert await calls("BasicData/Register") - before == 1  # the reset call is cut before the route counter

            # Reset on a write: 9403 with the key, never resent, not executed.
            await fault(route="EmergentTel/Write", reset_connection=True, times=1)
            status, body = await post(http, g + WRITE, sim.write_body(), "reset-write")
            assert (status, body["statusCode"], body.get("idempotencyKey")) == (200, 9403, "reset-write"), body
            status2, body2 = await post(http, g + WRITE, sim.write_body(), "reset-write")
            assert body2["statusCode"] in (9403, 1706), body2  # the stored answer (or: same key, other body)
            stats = await get_json(http, sim.url + "/test/v1/Stats")
            assert sum(stats["writes"].values()) == 0 and stats["writesByContent"] == {}

            # Slow past the HIS's deadline: 202 + 9408 with the key, then the answer under the same key.
            await fault(route="BasicData/Register", latency_ms=1500, times=1)
            body_slow = sim.read_body()
            t = time.monotonic()
            status, body = await post(http, g + READ, body_slow, "slow-read", deadline_ms=300)
            assert (status, body["statusCode"]) == (202, 9408) and time.monotonic() - t < 1.4, body

            async def slow_read_answered() -> bool:  # asked again under the same key until its answer is there
                status, body = await post(http, g + READ, body_slow, "slow-read")
                return bool((status, body["statusCode"]) == (200, 0))

            assert await eventually(slow_read_answered, 10)

            # Down: 9402 fast, the breaker opens and stays open while the cloud is away.
            sim.stop()
            answers = []
            for i in range(8):
                st, b = await post(http, g + READ, sim.read_body(), f"down-{i}")
                answers.append((st, b["statusCode"]))
            assert {c for _, c in answers} == {9402}, answers
            st, b = await post(http, g + WRITE, sim.write_body(), "down-write")
            assert b["statusCode"] == 9402, b  # refused or provably not sent: never "outcome unknown"
            assert await metric(http, g, "nhigw_gateway_breaker_state") == 1
            # Back: after the cool-down (5 s) a probe closes the breaker.
            sim.start()

            async def served_again() -> bool:
                return ok(await post(http, g + READ, sim.read_body(), f"back-{time.monotonic()}"))

            assert await eventually(served_again, 15, interval_s=0.5)
            assert await metric(http, g, "nhigw_gateway_breaker_state") == 0
    finally:
        gw.stop()
        sim.stop()
    log = gw.log()
    assert "Traceback" not in log, log[-3000:]
