"""Fault drill: Redis SIGKILLed and restarted (AOF on, same port) under load.

The production set-up of ``test_e2e_processes.py`` (pcscd + vpcd cards, ``nhigw vcard``,
``agent --pcsc`` enrolled with a one-time token, ``gateway``, ``sim``) runs on this
module's own Redis: append-only file on, a fixed port, so it can be killed and started
again on the same port with the same data directory. An HIS sends one-call
registrations and writes every 100 ms, each with its own ``Idempotency-Key``, asking
again with the key after a dropped connection, a 5xx or a 202. Two calls are held in the
simulator (1.5 s) when Redis is SIGKILLed, so their queue entries are pending, not yet
acknowledged. Then:

- the gateway and the agent reconnect by themselves: ``/readyz`` is 200 again, the agent's
  presence comes back (online), a new one-call registration works;
- the queue entries written before the kill are still in the stream after the restart (AOF);
- every HIS request gets a final answer (none lost): done, 9403, or 9400/9401 for the
  calls that met the workstation offline while its presence could not reach the gateway;
  no write was executed twice.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync

from tests.conftest import start_redis
from tests.helpers import free_port, ok
from tests.test_e2e_processes import Urls, call, eventually, http, sam_verified_and_online, stack, ws03_online  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.pcsc, pytest.mark.redis]

# Final answers for the HIS: done, write outcome unknown (9403), and the workstation offline /
# silent (9400 / 9401: while Redis is away the agent's presence is too). Anything else (202,
# 9402 "bus unavailable", 9411 "not ready yet" while the registry catches up) is asked again.
FINAL = {0, 9403, 9400, 9401}


class AofRedis:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc, _ = start_redis(self.dir, appendonly=True, port=self.port)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def aof_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AofRedis]:
    r = AofRedis(tmp_path_factory.mktemp("redis-aof"))
    r.start()
    yield r
    r.stop()


@pytest.fixture
def redis_server(aof_redis: AofRedis) -> str:
    """Overrides the session Redis for this module: the stack runs on the Redis we kill."""
    return aof_redis.url


@pytest.fixture(autouse=True)
def sim_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NHIGW_SIM_ADMIN", "1")  # the simulator's fault API, to hold calls


def stream_entries(url: str, prefix: str) -> dict[str, list[bytes]]:
    """Every stream under the bus prefix -> its entry ids."""
    r = redis_sync.Redis.from_url(url)
    try:
        out = {}
        for k in r.scan_iter(match=f"{prefix}:*", count=1000):
            if r.type(k) == b"stream":
                out[k.decode()] = [e[0] for e in r.xrange(k)]
        return out
    finally:
        r.close()


async def test_redis_killed_and_restarted_under_load(stack: Urls, http: aiohttp.ClientSession, aof_redis: AofRedis, bus_prefix: str) -> None:  # noqa: F811
    g, sim = stack.gateway, stack.sim
    await sam_verified_and_online(http, stack)
    final: dict[str, tuple[int, int]] = {}
    last: dict[str, object] = {}  # the last non-final answer per key, for the failure message
    stop = asyncio.Event()

    async def his(i: int) -> None:
        write = i % 3 == 2
        path, body = ("/api/v1/EmergentTel/Write", {"tel": f"02{i:08d}"}) if write else ("/api/v1/BasicData/Register", {})
        key = f"redis-drill-{i:04d}"
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                async with http.post(g + path, json=body, headers={"X-Workstation": "ws-03", "Idempotency-Key": key, "X-Deadline-Ms": "3000"}) as r:
                    status, answer = r.status, await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last[key] = type(exc).__name__
                await asyncio.sleep(0.3)
                continue
            last[key] = (status, answer.get("statusCode"), answer.get("messageEn"))
            if status == 202 or answer.get("statusCode") not in FINAL:
                await asyncio.sleep(0.3)  # not answered yet, or the gateway could not take it (bus down): ask again
                continue
            final[key] = (status, answer.get("statusCode", -1))
            return

    tasks: list[asyncio.Task[None]] = []

    async def load() -> None:
        i = 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(his(i)))
            i += 1
            await asyncio.sleep(0.1)

    loader = asyncio.create_task(load())
    await asyncio.sleep(1.0)
    # Hold the next two registrations in the simulator, so their entries are pending at the kill.
    assert ok(await call(http, "POST", sim + "/test/v1/Faults", json={"route": "BasicData/Register", "latency_ms": 1500, "times": 2}))
    await asyncio.sleep(1.2)  # > 1 s: AOF (appendfsync everysec) has the entries on disk
    before = await asyncio.to_thread(stream_entries, aof_redis.url, bus_prefix)
    assert any(before.values()), f"no queue entries in Redis before the kill: {before}"
    aof_redis.kill()
    await asyncio.sleep(1.0)
    aof_redis.start()
    after = await asyncio.to_thread(stream_entries, aof_redis.url, bus_prefix)
    for stream, ids in before.items():
        assert set(ids) <= set(after.get(stream, [])), f"entries of {stream} lost in the restart"

    # Everything reconnects by itself.
    async def ready() -> bool:
        try:
            st, _ = await call(http, "GET", g + "/readyz")
        except aiohttp.ClientError:
            return False
        return st == 200

    assert await eventually(ready, 15.0)
    assert await eventually(lambda: ws03_online(http, g), 15.0)
    await asyncio.sleep(2.0)
    stop.set()
    await loader
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    lost = {k: v for k, v in last.items() if k not in final}
    assert len(final) == len(tasks), f"{len(tasks) - len(final)} requests never got a final answer: {lost}"
    assert sum(1 for v in final.values() if v == (200, 0)) >= len(tasks) // 2, final
    status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
    assert status == 200 and body["idCardNum"] == "Z299999929", body
    _, stats = await call(http, "GET", sim + "/test/v1/Stats")
    assert all(v == 1 for v in stats["writesByKey"].values()), stats["writesByKey"]
    assert stats["writesTwice"] == [], stats["writesTwice"]  # by content: the simulator does not deduplicate
    assert len(stats["writesByContent"]) == sum(stats["writesByKey"].values())
    assert len(tasks) >= 30
