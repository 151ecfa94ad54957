"""Gateway replicas as real processes (``nhigw gateway``) on one real Redis.

- A replica SIGKILLed while its worker is inside an upstream call: another replica reclaims the
  entry (XAUTOCLAIM) and finishes it; the HIS, retrying with the same Idempotency-Key, gets that
  answer. A read is run again; a write is never sent twice (9403 instead).
- 1,000 writes through two replicas, one SIGKILLed mid-run: none lost, none sent twice (counted by
  a stand-in cloud, and again on the real simulator by its own per-key counts, with one-call
  signatures from a real agent).
- An agent SIGKILLed: one-call requests for its workstation get 9400 at once, the registry shows it
  offline within its 3 s window, and the agent comes back with its kept identity (no new token).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from nhigw.bus.seal import Sealer
from tests.helpers import Proc, eventually, free_port, serving

pytestmark = [pytest.mark.redis]

BODY = {"signature": "x" * 16, "clientRandom": "r", "samId": "001000000103", "hospitalId": "3501200000", "hcId": "000073898381", "hcIdNo": "Z299999929"}


class Cloud:
    """A stand-in cloud that records who called with which key, and can hold calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (instance, path, idempotency key)
        self.hold_first = False
        self.first_seen = asyncio.Event()
        self.delay_s = 0.0

    async def handle(self, req: web.Request) -> web.Response:
        self.calls.append((req.headers.get("X-Nhigw-Instance", ""), req.match_info["path"], req.headers.get("Idempotency-Key", "")))
        if self.hold_first and len(self.calls) == 1:
            self.first_seen.set()
            await asyncio.sleep(3600)  # held until the caller dies
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.json_response({"statusCode": 0, "n": len(self.calls)})


@contextlib.asynccontextmanager
async def cloud_server(cloud: Cloud) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/v1/{path:.+}", cloud.handle)
    async with serving(app, shutdown_timeout=0.1) as url:
        yield url


def replicas(n: int, cloud_url: str, redis_url: str, prefix: str, key: str, tmp: Path) -> dict[str, Proc]:
    out = {}
    for i in range(n):
        port = free_port()
        p = Proc(f"gw{i}", ["gateway", "--port", str(port), "--cloud", cloud_url, "--redis", redis_url, "--bus-key", key, "--bus-prefix", prefix, "--claim-idle-s", "1", "--rate-per-s", "100000", "--rate-burst", "100000"], tmp)
        p.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        out[p.name] = p
    for p in out.values():
        p.wait_ready()
    return out


def by_instance(procs: dict[str, Proc], instance: str) -> Proc:
    pid = int(re.match(r".*-(\d+)-[0-9a-f]{4}$", instance).group(1))  # type: ignore[union-attr]
    return next(p for p in procs.values() if p.proc.pid == pid)


async def post(http: aiohttp.ClientSession, url: str, path: str, key: str, deadline_ms: int = 30000) -> tuple[int, dict]:
    async with http.post(url + path, json=BODY, headers={"Idempotency-Key": key, "X-Deadline-Ms": str(deadline_ms)}) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("route", ["BasicData/Query", "EmergentTel/Write"])
async def test_replica_killed_inside_an_upstream_call_its_entry_is_finished_by_the_other(route: str, redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    cloud = Cloud()
    cloud.hold_first = True
    write = route.endswith("Write")
    async with cloud_server(cloud) as url, aiohttp.ClientSession() as http:
        procs = replicas(2, url, redis_server, bus_prefix, Sealer.new_key_b64(), tmp_path)
        try:
            g0, g1 = procs["gw0"], procs["gw1"]
            his = asyncio.create_task(post(http, g0.url, f"/api/v1/{route}", "his-key-1"))  # type: ignore[attr-defined]
            await asyncio.wait_for(cloud.first_seen.wait(), 10)
            victim = by_instance(procs, cloud.calls[0][0])
            survivor = g1 if victim is g0 else g0
            victim.stop(signal.SIGKILL)
            if victim is g0:  # the HIS's own connection died with it: it retries at the other replica, same key
                with pytest.raises(aiohttp.ClientError):
                    await his
                status, body = await post(http, survivor.url, f"/api/v1/{route}", "his-key-1")  # type: ignore[attr-defined]
            else:
                status, body = await his
            if write:
                assert (status, body["statusCode"], body["idempotencyKey"]) == (200, 9403, "his-key-1")
                assert len(cloud.calls) == 1  # never sent twice
            else:
                assert (status, body["statusCode"]) == (200, 0)
                assert len(cloud.calls) == 2 and cloud.calls[1][0] != cloud.calls[0][0]
                assert by_instance(procs, cloud.calls[1][0]) is survivor
            # Only the survivor wrote an audit record, and the chain is whole.
            async with http.get(survivor.url + "/api/audit") as r:  # type: ignore[attr-defined]
                recs = (await r.json())["records"]
            assert len(recs) == 1 and recs[0]["idempotencyKey"] == "his-key-1"
            async with http.get(survivor.url + "/api/audit/verify") as r:  # type: ignore[attr-defined]
                assert (await r.json())["ok"] is True
        finally:
            for p in procs.values():
                p.stop()


async def test_a_thousand_writes_through_two_replicas_one_killed_none_lost_none_twice(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    cloud = Cloud()
    cloud.delay_s = 0.005
    async with cloud_server(cloud) as url, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        procs = replicas(2, url, redis_server, bus_prefix, Sealer.new_key_b64(), tmp_path)
        urls = [p.url for p in procs.values()]  # type: ignore[attr-defined]
        answers: dict[str, tuple[int, int]] = {}
        killed = asyncio.Event()

        async def one(i: int) -> None:
            key = f"w-{i:04d}"
            target = urls[i % 2]
            for _ in range(20):
                if killed.is_set() and target == urls[0]:
                    target = urls[1]
                try:
                    status, body = await post(http, target, "/api/v1/EmergentTel/Write", key, deadline_ms=5000)
                except aiohttp.ClientError:
                    target = urls[1]  # the HIS retries at the other replica with the same key
                    await asyncio.sleep(0.05)
                    continue
                if status == 202:  # still queued at its deadline: ask again with the same key
                    continue
                answers[key] = (status, body["statusCode"])
                return

        async def killer() -> None:
            assert await eventually(lambda: len(cloud.calls) >= 300, 60, interval_s=0.01), len(cloud.calls)
            procs["gw0"].stop(signal.SIGKILL)
            killed.set()

        try:
            sem = asyncio.Semaphore(64)

            async def bounded(i: int) -> None:
                async with sem:
                    await one(i)

            t0 = time.monotonic()
            await asyncio.wait_for(asyncio.gather(killer(), *[bounded(i) for i in range(1000)]), 100)
            elapsed_s = time.monotonic() - t0
        finally:
            for p in procs.values():
                p.stop()
        assert len(answers) == 1000  # none lost: every request has a final answer
        per_key = Counter(k for _i, _p, k in cloud.calls)
        assert max(per_key.values()) == 1  # no write reached the cloud twice
        ok = {k for k, v in answers.items() if v == (200, 0)}
        unknown = {k for k, v in answers.items() if v[1] == 9403}
        assert ok | unknown == set(answers), Counter(answers.values())  # each answered: done, or honestly "outcome unknown"
        assert all(per_key[k] == 1 for k in ok)
        assert len(unknown) <= 64  # only writes that were in flight on the killed replica
        print(f"1000 writes in {elapsed_s:.1f} s through 2 replicas (one SIGKILLed): {len(ok)} done, {len(unknown)} outcome unknown, {len(cloud.calls)} upstream calls")


async def test_killed_agent_is_offline_at_once_and_comes_back_with_its_kept_identity(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    key = Sealer.new_key_b64()
    ports = {n: free_port() for n in ("sim", "gw", "agent")}
    sim_url, gw = f"http://127.0.0.1:{ports['sim']}", f"http://127.0.0.1:{ports['gw']}"
    bus = ["--redis", redis_server, "--bus-prefix", bus_prefix]
    procs: dict[str, Proc] = {}

    def agent() -> Proc:
        return Proc("agent", ["agent", "--virtual", "--no-tls", "--auto-init", "--port", str(ports["agent"]), "--workstation", "ws-05",
                              "--cloud", sim_url, "--data-dir", str(tmp_path / "agent-data"), *bus, *(["--enrol-token", token] if token else [])], tmp_path).wait_ready()

    async def workstation(http: aiohttp.ClientSession) -> dict:
        async with http.get(gw + "/api/workstations") as r:
            return next((w for w in (await r.json())["workstations"] if w["workstation"] == "ws-05"), {})

    async def register(http: aiohttp.ClientSession) -> tuple[int, dict]:
        async with http.post(gw + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-05"}) as r:
            return r.status, await r.json()

    async def agent_status(http: aiohttp.ClientSession) -> tuple[int, dict]:
        """A component call forwarded over the bus to the agent (its virtual SAM is unknown to this
        simulator, so business calls end at the agent with 1301: the round trip is what counts)."""
        async with http.get(gw + "/api/workstations/ws-05/common/v1/Status") as r:
            return r.status, await r.json()

    async def until(pred: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
        """Seconds until ``pred`` holds (at most ``timeout_s``)."""
        t0 = time.monotonic()
        assert await eventually(pred, timeout_s)
        return time.monotonic() - t0

    try:
        procs["sim"] = Proc("sim", ["sim", "--port", str(ports["sim"])], tmp_path).wait_ready()
        procs["gw"] = Proc("gw", ["gateway", "--port", str(ports["gw"]), "--cloud", sim_url, "--bus-key", key, *bus], tmp_path).wait_ready()
        argv = [sys.executable, "-m", "nhigw", "gateway", "enrol-token", "--workstation", "ws-05", "--bus-key", key, *bus]
        token = (await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=True)).stdout.strip()
        procs["agent"] = agent()
        async with aiohttp.ClientSession() as http:
            await until(lambda: _online(workstation(http)), 5)
            st, body = await agent_status(http)
            assert st == 200 and body["status"]["initialized"] is True
            assert (await register(http))[1]["statusCode"] == 1301  # signed by the agent's own rules
            procs["agent"].stop(signal.SIGKILL)
            t0 = time.monotonic()
            status, body = await register(http)
            assert (status, body["statusCode"]) == (200, 9400) and time.monotonic() - t0 < 1.0  # at once, no timeout
            gone_after_s = await until(lambda: _offline(workstation(http)), 5)
            print(f"registry offline {gone_after_s:.2f} s after SIGKILL")
            # The agent restarts with no token: it uses the identity it kept (sealed) in its data directory.
            token = ""
            procs["agent"] = agent()
            await until(lambda: _online(workstation(http)), 5)
            st, body = await agent_status(http)
            assert st == 200 and body["status"]["initialized"] is True
            assert "bus-identity" in "".join(os.listdir(tmp_path / "agent-data" / "agent"))
    finally:
        for p in reversed(list(procs.values())):
            p.stop()


async def _online(ws) -> bool:
    return bool((await ws).get("online"))


async def _offline(ws) -> bool:
    w = await ws
    return bool(w) and not w.get("online")


async def test_writes_on_the_real_simulator_through_two_replicas_one_killed_none_twice_by_its_counts(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    """The same drill on the real simulator with one-call writes signed by a real agent (in-process
    cards, enrolled on the same Redis): the simulator's own counts (executed writes per
    Idempotency-Key, and replays of a key it had already seen) show no write arrived twice."""
    import base64

    from nhigw.bus.redis import RedisBus
    from nhigw.gateway.upstream import UpstreamSettings
    from tests.stack import running_stack

    key = os.urandom(32)
    bus = RedisBus(redis_server)
    n = 1000
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=key, upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)) as s:
        await s.ready()
        procs = replicas(2, s.sim_url, redis_server, bus_prefix, base64.b64encode(key).decode(), tmp_path)
        urls = [p.url for p in procs.values()]  # type: ignore[attr-defined]
        answers: dict[str, tuple[int, int]] = {}
        killed = asyncio.Event()
        try:
            for u in urls:  # each replica has heard ws-01's presence

                async def online(u: str = u) -> bool:
                    async with s.http.get(u + "/api/workstations") as r:
                        return any(w["online"] for w in (await r.json())["workstations"])

                assert await eventually(online), f"{u} has not heard ws-01's presence"

            async def one(i: int) -> None:
                k, target = f"sim-w-{i:04d}", urls[i % 2]
                for _ in range(20):
                    if killed.is_set():
                        target = urls[1]
                    try:
                        async with s.http.post(target + "/api/v1/EmergentTel/Write", json={"tel": f"09{i:08d}"},
                                               headers={"X-Workstation": "ws-01", "Idempotency-Key": k, "X-Deadline-Ms": "5000"}) as r:
                            status, body = r.status, await r.json()
                    except aiohttp.ClientError:
                        target = urls[1]
                        await asyncio.sleep(0.05)
                        continue
                    if status == 202:
                        continue
                    answers[k] = (status, body["statusCode"])
                    return

            async def killer() -> None:
                assert await eventually(lambda: len(s.store.writes_by_key) >= n // 3, 60, interval_s=0.01), len(s.store.writes_by_key)
                procs["gw0"].stop(signal.SIGKILL)
                killed.set()

            sem = asyncio.Semaphore(32)

            async def bounded(i: int) -> None:
                async with sem:
                    await one(i)

            await asyncio.wait_for(asyncio.gather(killer(), *[bounded(i) for i in range(n)]), 100)
        finally:
            for p in procs.values():
                p.stop()
        assert len(answers) == n
        assert s.store.replays == {}  # the simulator never saw a key a second time
        assert set(s.store.writes_by_key.values()) == {1}
        assert set(s.store.writes_by_content.values()) == {1} and len(s.store.writes_by_content) == len(s.store.writes_by_key)  # by content too
        ok = {k for k, v in answers.items() if v == (200, 0)}
        assert ok <= set(s.store.writes_by_key)
        assert {v for k, v in answers.items() if k not in ok} <= {(200, 9403)}, Counter(answers.values())
        print(f"{n} one-call writes on the simulator: {len(ok)} done, {n - len(ok)} outcome unknown, {len(s.store.writes_by_key)} executed")
    await bus.close()
