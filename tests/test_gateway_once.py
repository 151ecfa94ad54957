"""Exactly once without the cloud's help, and a final answer for every accepted request (issue 17).

The simulator executes every write that carries a valid, unused signature (as the real NHI cloud
does; ``--dedupe-writes`` is off), and counts executions by content (``writesByContent``), so a
second execution shows as a second execution.

- A write the cloud executed and then answered 5xx: 9403 with its key, stored so (asked again:
  the same 9403, replayed), executed once.
- A landed write whose replica dies, with ``--max-deliveries 1``: dead-lettered by the replica that
  reclaims it; its HIS gets a final 9403 with the key (not 9408); the dead-letter view says it may
  have landed and how to check; a plain "retry" is refused naming the explicit resend path; the
  resend (``reconciled``) is audited with the reconciliation hint, and its answer becomes the key's.
- Dead letters are scoped by the operator's hospital (an ``allHospitals`` operator sees all; an ops
  client with neither is refused); an unreadable dead letter is kept on "retry" (1706, never a 500)
  and can be discarded.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from nhigw.bus.redis import RedisBus
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.cloud import Fault
from nhigw.gateway.auth import Clients
from nhigw.gateway.upstream import HandlerTransport, UpstreamResponse, UpstreamSettings
from tests.helpers import Proc, eventually, free_port, ok
from tests.stack import running_stack
from tests.test_gateway_service import HOSP, PASS_BODY, call, gateway_on

WRITE = "/api/v1/EmergentTel/Write"


async def test_a_write_executed_then_answered_5xx_is_9403_stored_and_executed_once() -> None:
    async with running_stack() as s:
        await s.ready()
        s.store.admin_enabled = True
        s.store.add_fault(Fault(route="EmergentTel/Write", status=500, phase="after", times=1))
        h = {"X-Workstation": "ws-01", "Idempotency-Key": "five-hundred", "Content-Type": "application/json"}
        st, body, _ = await call(s.http, "POST", s.gateway_url + WRITE, json={"tel": "0211112222"}, headers=h)
        assert (st, body["statusCode"], body["idempotencyKey"]) == (200, 9403, "five-hundred"), body
        assert "HTTP 500" in body["detail"]
        st, again, headers = await call(s.http, "POST", s.gateway_url + WRITE, json={"tel": "0211112222"}, headers=h)
        assert (st, again["statusCode"], headers.get("Idempotent-Replayed")) == (200, 9403, "true"), again
        assert list(s.store.writes_by_content.values()) == [1]  # executed once, never re-sent
        assert s.store.writes_by_key == {"five-hundred": 1}


@pytest.mark.redis
async def test_landed_write_dead_lettered_with_max_deliveries_1_is_answered_9403_and_only_an_explicit_resend_sends_it_again(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    key = os.urandom(32)
    bus = RedisBus(redis_server)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=key, max_deliveries=1, claim_idle_s=1.0, upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)) as s:
        await s.ready()
        s.store.admin_enabled = True
        procs: dict[str, Proc] = {}
        for name in ("gw0", "gw1"):  # the in-process gateway of the stack runs with max_deliveries=1 too
            port = free_port()
            p = Proc(name, ["gateway", "--port", str(port), "--cloud", s.sim_url, "--redis", redis_server, "--bus-key", base64.b64encode(key).decode(), "--bus-prefix", bus_prefix,
                                  "--claim-idle-s", "1", "--max-deliveries", "1", "--rate-per-s", "100000", "--rate-burst", "100000"], tmp_path)
            p.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
            procs[name] = p.wait_ready()
        g0, g1 = procs["gw0"].url, procs["gw1"].url  # type: ignore[attr-defined]
        try:
            for u in (g0, g1):

                async def online(u: str = u) -> bool:
                    return any(w["online"] for w in (await call(s.http, "GET", u + "/api/workstations"))[1]["workstations"])

                assert await eventually(online), f"{u} does not see the workstation online"
            # The write is executed, and its answer held for 30 s: the replica dies inside the call.
            s.store.add_fault(Fault(route="EmergentTel/Write", latency_ms=30000, phase="after", times=1))
            h = {"X-Workstation": "ws-01", "Idempotency-Key": "landed-1", "X-Deadline-Ms": "60000"}
            his = asyncio.create_task(call(s.http, "POST", g0 + WRITE, json={"tel": "0233334444"}, headers=h))
            await eventually(lambda: bool(s.store.writes_by_content), 10)
            assert list(s.store.writes_by_content.values()) == [1], "the write did not reach the simulator"
            procs["gw0"].stop(signal.SIGKILL)
            with pytest.raises(aiohttp.ClientError):
                await his
            # The entry is reclaimed after 1 s idle, past its one delivery: dead-lettered, and the key answered.
            deadline = time.monotonic() + 20
            answer: dict = {}
            while time.monotonic() < deadline:
                st, answer, _ = await call(s.http, "POST", g1 + WRITE, json={"tel": "0233334444"}, headers={**h, "X-Deadline-Ms": "1000"})
                if answer["statusCode"] != 9408:
                    break
            assert (st, answer["statusCode"], answer["idempotencyKey"]) == (200, 9403, "landed-1"), answer
            assert "dead-lettered" in answer["detail"] and "EmergentTel/Query" in answer["detail"]
            dead = (await call(s.http, "GET", g1 + "/api/ops/dead-letters"))[1]["deadLetters"]
            assert len(dead) == 1 and dead[0]["mayHaveLanded"] is True and dead[0]["actions"] == ["resend", "discard"], dead
            assert "EmergentTel/Query" in dead[0]["reconcile"]
            did = dead[0]["id"]
            # A plain retry is refused and names the explicit path; the entry stays.
            st, refused, _ = await call(s.http, "POST", g1 + f"/api/ops/dead-letters/{did}/retry")
            assert (st, refused["statusCode"], refused["resend"]) == (200, 9403, f"/api/ops/dead-letters/{did}/resend"), refused
            st, refused, _ = await call(s.http, "POST", g1 + f"/api/ops/dead-letters/{did}/resend", json={"reconciled": False})
            assert (st, refused["statusCode"]) == (200, 1706), refused
            assert len((await call(s.http, "GET", g1 + "/api/ops/dead-letters"))[1]["deadLetters"]) == 1
            assert list(s.store.writes_by_content.values()) == [1]  # nothing was sent again
            # The explicit resend: audited with the hint; its answer becomes the key's answer.
            st, body, _ = await call(s.http, "POST", g1 + f"/api/ops/dead-letters/{did}/resend", json={"reconciled": True, "note": "EmergentTel/Query showed the old number"})
            assert st == 200 and body["requeuedAs"], body
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                st, answer, _ = await call(s.http, "POST", g1 + WRITE, json={"tel": "0233334444"}, headers={**h, "X-Deadline-Ms": "1000"})
                if answer["statusCode"] != 9408:
                    break
            assert (st, answer["statusCode"]) == (200, 0), answer
            assert list(s.store.writes_by_content.values()) == [2]  # the operator's decision, and only it
            records = (await call(s.http, "GET", g1 + "/api/audit"))[1]["records"]
            resends = [r for r in records if r["route"] == "ops/dead-letters/resend"]
            assert len(resends) == 1 and resends[0]["idempotencyKey"] == "landed-1", resends
            assert "EmergentTel/Query" in resends[0]["note"] and "showed the old number" in resends[0]["note"]
            assert (await call(s.http, "GET", g1 + "/api/ops/dead-letters"))[1]["deadLetters"] == []
        finally:
            for p in procs.values():
                p.stop()
    await bus.close()


@pytest.mark.redis
async def test_dead_letters_are_scoped_by_the_operators_hospital_and_an_unreadable_one_is_kept(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    other = "9999999999"

    async def transport(base: str, req) -> UpstreamResponse:
        raise RuntimeError("unexpected failure inside the worker")

    f = tmp_path / "clients.json"
    his_a = Clients.add(f, "his-a", HOSP, ["*"])
    his_b = Clients.add(f, "his-b", other, ["*"])
    ops_a = Clients.add(f, "ops-a", HOSP, ["*"], ops=True)
    ops_all = Clients.add(f, "ops-all", None, ["*"], ops=True, all_hospitals=True)
    ops_none = Clients.add(f, "ops-none", None, ["*"], ops=True)
    bus = RedisBus(redis_server)
    async with gateway_on("http://cloud.invalid", bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), clients=Clients.load(f), transport=HandlerTransport(transport),
                          claim_idle_s=0.2, claim_every_s=0.05, max_deliveries=1) as (url, _gw), aiohttp.ClientSession() as http:
        def auth(k: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {k}"}

        for k, hosp, idem in ((his_a, HOSP, "a-1"), (his_b, other, "b-1")):
            st, body, _ = await call(http, "POST", url + "/api/v1/BasicData/Query", json={**PASS_BODY, "hospitalId": hosp}, headers={**auth(k), "Idempotency-Key": idem, "X-Deadline-Ms": "200"})
            assert body["statusCode"] in (9408, 9402), body  # still running, or already dead-lettered and answered
        dead: list = []

        async def both_dead() -> bool:
            dead[:] = (await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(ops_all)))[1]["deadLetters"]
            return len(dead) == 2

        await eventually(both_dead)
        assert {d["job"]["idempotencyKey"] for d in dead} == {"a-1", "b-1"}
        b_id = next(d["id"] for d in dead if d["job"]["idempotencyKey"] == "b-1")
        # A read that never got an answer: its key is answered (final), and it may be retried.
        st, body, _ = await call(http, "POST", url + "/api/v1/BasicData/Query", json={**PASS_BODY, "hospitalId": other}, headers={**auth(his_b), "Idempotency-Key": "b-1"})
        assert (st, body["statusCode"], body["idempotencyKey"]) == (200, 9402, "b-1") and "dead-lettered" in body["detail"], body
        mine = (await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(ops_a)))[1]["deadLetters"]
        assert [d["job"]["idempotencyKey"] for d in mine] == ["a-1"] and mine[0]["actions"] == ["retry", "discard"]
        for method, path in (("DELETE", f"/api/ops/dead-letters/{b_id}"), ("POST", f"/api/ops/dead-letters/{b_id}/retry")):
            assert (await call(http, method, url + path, headers=auth(ops_a)))[0] == 404  # another hospital's: not even shown
        assert (await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(ops_none)))[0] == 403
        assert (await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(his_a)))[0] == 403
        assert (await call(http, "GET", url + "/api/audit/verify", headers=auth(ops_a)))[0] == 403  # the chain holds every hospital
        assert len((await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(ops_all)))[1]["deadLetters"]) == 2
        # An unreadable dead letter (sealed under another key): retry is refused and keeps it; discard works, audited.
        r = aioredis.Redis.from_url(redis_server)
        keys = BusKeys(bus_prefix)
        bad_id = (await r.xadd(keys.dead, {"job": b"not a sealed job", "deliveries": "1", "originalId": "1-1"})).decode()
        await r.aclose()
        st, body, _ = await call(http, "POST", url + f"/api/ops/dead-letters/{bad_id}/retry", headers=auth(ops_all))
        assert (st, body["statusCode"]) == (200, 1706) and "discarded" in body["messageEn"] + body["detail"], body
        listed = (await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(ops_all)))[1]["deadLetters"]
        assert any(d["id"] == bad_id and d["job"] == {"unreadable": True} for d in listed)
        assert bad_id not in {d["id"] for d in (await call(http, "GET", url + "/api/ops/dead-letters", headers=auth(ops_a)))[1]["deadLetters"]}
        assert ok(await call(http, "DELETE", url + f"/api/ops/dead-letters/{bad_id}", headers=auth(ops_all)))
        assert ok(await call(http, "DELETE", url + f"/api/ops/dead-letters/{b_id}", headers=auth(ops_all)))
        records = (await call(http, "GET", url + "/api/audit", headers=auth(ops_all)))[1]["records"]
        assert [(r["route"], r["client"]) for r in records if r["eventType"] == "ops"] == [("ops/dead-letters/discard", "ops-all")] * 2
    await bus.close()


async def test_breaker_and_oldest_pending_metrics_move_without_traffic() -> None:
    """Issue 17 item 6: an idle replica's metrics follow time (no request has to pass to move them)."""
    release = asyncio.Event()

    async def transport(base: str, req) -> UpstreamResponse:
        if req.path.endswith("BasicData/Query"):
            return UpstreamResponse(503, b'{"statusCode": 9402}')
        await release.wait()  # a write held inside the cloud: its entry stays pending
        return UpstreamResponse(200, b'{"statusCode": 0}')

    settings = UpstreamSettings(backoff_base_s=0.001, breaker_failures=2, breaker_cooldown_s=0.5)
    async with gateway_on("http://cloud.invalid", transport=HandlerTransport(transport), upstream=settings) as (url, _gw), aiohttp.ClientSession() as http:

        async def metric(name: str) -> float:
            async with http.get(url + "/metrics") as r:
                text = await r.text()
            return float(next(ln.split()[-1] for ln in text.splitlines() if ln.startswith(name + " ")))

        held = asyncio.create_task(call(http, "POST", url + WRITE, json={**PASS_BODY, "tel": "0255556666"}, headers={"Idempotency-Key": "held-1"}))
        st, body, _ = await call(http, "POST", url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "down-1"})
        assert body["statusCode"] == 9402
        assert await metric("nhigw_gateway_breaker_state") == 1  # open

        async def half_open() -> bool:
            return await metric("nhigw_gateway_breaker_state") == 2

        assert await eventually(half_open, 5.0)  # past its cool-down, with no call in between: the next call probes
        first = await metric("nhigw_gateway_queue_oldest_pending_seconds")

        async def older() -> bool:
            return await metric("nhigw_gateway_queue_oldest_pending_seconds") > first > 0

        assert await eventually(older, 5.0)
        release.set()
        assert (await held)[1]["statusCode"] == 0


@pytest.mark.redis
async def test_a_replica_started_while_its_agent_is_online_answers_no_false_9400(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    """Issue 17 item 4: a burst the moment a new replica says it is up: none is told "workstation offline"."""
    key = os.urandom(32)
    bus = RedisBus(redis_server)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=key, upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)) as s:
        await s.ready()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        p = Proc("gw-new", ["gateway", "--port", str(port), "--cloud", s.sim_url, "--redis", redis_server, "--bus-key", base64.b64encode(key).decode(), "--bus-prefix", bus_prefix,
                            "--rate-per-s", "100000", "--rate-burst", "100000"], tmp_path)
        try:
            await asyncio.to_thread(p.wait_ready)
            h = {"X-Workstation": "ws-01", "X-Deadline-Ms": "10000"}
            readyz = asyncio.create_task(call(s.http, "GET", url + "/readyz"))
            burst = await asyncio.gather(*(call(s.http, "POST", url + "/api/v1/BasicData/Register", json={}, headers={**h, "Idempotency-Key": f"burst-{i}"}) for i in range(30)))
            answers = [b["statusCode"] for _st, b, _ in burst]
            assert 9400 not in answers, answers
            assert set(answers) <= {0, 9415}, answers  # done, or "not ready yet, retry" (never a false offline)
            assert answers.count(0) >= 1
            _, first, _ = await readyz
            assert "registry" in first["checks"], first

            async def ready() -> bool:
                return (await call(s.http, "GET", url + "/readyz"))[0] == 200

            assert await eventually(ready, 10.0)
            st, body, _ = await call(s.http, "POST", url + "/api/v1/BasicData/Register", json={}, headers={**h, "Idempotency-Key": "after"})
            assert (st, body["statusCode"]) == (200, 0), body
            st, body, _ = await call(s.http, "POST", url + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-99", "Idempotency-Key": "nobody"})
            assert body["statusCode"] == 9400, body  # caught up: a workstation nobody runs is offline, at once
        finally:
            p.stop()
        assert "Traceback" not in p.log(), p.log()[-3000:]
    await bus.close()


async def test_after_a_redis_restart_readiness_waits_for_the_registry_to_catch_up(tmp_path: Path) -> None:
    """Issue 17 item 4, the Redis half: while Redis is away and for the presence window after it is back,
    the replica's ``registry`` check fails (it cannot know who is online); then /readyz is 200 again."""
    from tests.conftest import start_redis

    proc, port = start_redis(tmp_path)
    bus = RedisBus(f"redis://127.0.0.1:{port}/0")
    try:
        async with gateway_on("http://cloud.invalid", bus=bus, gateway_key=os.urandom(32)) as (url, gw), aiohttp.ClientSession() as http:

            async def checks() -> dict[str, bool]:
                return (await call(http, "GET", url + "/readyz"))[1]["checks"]

            async def ready() -> bool:
                return (await call(http, "GET", url + "/readyz"))[0] == 200

            assert await eventually(ready, 10.0)
            proc.kill()
            proc.wait(5)

            async def registry_down() -> bool:
                return (await checks()).get("registry") is False

            assert await eventually(registry_down, 10.0)
            proc, _ = start_redis(tmp_path, port=port)

            async def reconnected() -> bool:
                return bus.live_since is not None

            assert await eventually(reconnected, 10.0)
            assert not gw.registry.caught_up()  # just back: it has not listened for a presence interval yet
            assert (await checks())["registry"] is False
            assert await eventually(ready, 10.0)
            assert gw.registry.caught_up()
    finally:
        await bus.close()
        proc.kill()
        proc.wait(5)


async def test_in_one_process_a_dead_lettered_request_is_answered_too() -> None:
    """``nhigw up`` (in-memory queue): the waiting HIS gets the dead-letter answer, not 9408 at its deadline."""

    async def transport(base: str, req) -> UpstreamResponse:
        raise RuntimeError("unexpected failure inside the worker")

    async with gateway_on("http://cloud.invalid", transport=HandlerTransport(transport), claim_idle_s=0.2, claim_every_s=0.05, max_deliveries=1) as (url, _gw), aiohttp.ClientSession() as http:
        st, body, _ = await call(http, "POST", url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "mem-1", "X-Deadline-Ms": "20000"})
        assert (body["statusCode"], body["idempotencyKey"]) == (9402, "mem-1") and "dead-lettered" in body["detail"], body
        st, again, headers = await call(http, "POST", url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "mem-1"})
        assert again == body and headers.get("Idempotent-Replayed") == "true"
        dead = (await call(http, "GET", url + "/api/ops/dead-letters"))[1]["deadLetters"]
        assert [d["job"]["idempotencyKey"] for d in dead] == ["mem-1"] and dead[0]["mayHaveLanded"] is False
