"""The gateway's promises through real HTTP servers in one process: the simulator, an agent on
in-process virtual cards, the gateway (MemoryBus or a real Redis), and small upstreams of our
own where a failure must be exact (accept-then-drop, 5xx)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from nhigw.bus import MemoryBus
from nhigw.bus.enrol import enrol
from nhigw.bus.redis import RedisBus
from nhigw.bus.seal import open_envelope, seal_envelope
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.cloud import Fault
from nhigw.contracts.models import CardStates, Presence, SignatureKind, SignatureObject, SignCall, SignReply
from nhigw.gateway.app import create_app
from nhigw.gateway.auth import Clients
from nhigw.gateway.service import Gateway, GatewaySettings
from nhigw.gateway.upstream import AiohttpTransport, HandlerTransport, UpstreamResponse, UpstreamSettings
from tests.helpers import eventually, free_port, ok, serving
from tests.stack import running_stack

HOSP = "3501200000"


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: object) -> tuple[int, dict, dict]:
    async with http.request(method, url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.json(content_type=None), dict(r.headers)


@contextlib.asynccontextmanager
async def gateway_on(cloud_url: str, bus=None, **settings: object) -> AsyncIterator[tuple[str, Gateway]]:
    """A gateway alone (pass-through mode needs no agent) on a port of the kernel's choice."""
    bus = bus or MemoryBus()
    gw = Gateway(bus, GatewaySettings(cloud_url=cloud_url, **settings))  # type: ignore[arg-type]
    async with serving(create_app(gw)) as url:
        yield url, gw


@contextlib.asynccontextmanager
async def upstream(handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/v1/{path:.+}", handler)
    async with serving(app) as url:
        yield url


@contextlib.asynccontextmanager
async def accept_then_drop() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A cloud that reads the whole request and closes the connection without an answer."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next((ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")), b"0"))
        seen.append(head + await reader.readexactly(length))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


def server_timing(headers: dict) -> dict[str, float]:
    """``Server-Timing: queue;dur=0.412, ..., total;dur=3.100`` as {name: ms}."""
    out = {}
    for part in headers["Server-Timing"].split(","):
        name, _, dur = part.strip().partition(";dur=")
        out[name] = float(dur)
    return out


PASS_BODY = {"signature": "x" * 16, "clientRandom": "r", "samId": "001000000103", "hospitalId": HOSP, "hcId": "000073898381", "hcIdNo": "Z299999929"}


# ------------------------------------------------------------------ idempotency


async def test_a_retried_request_gets_the_stored_answer_with_exactly_one_upstream_call() -> None:
    async with running_stack() as s:
        await s.ready()
        h = {"X-Workstation": "ws-01", "Idempotency-Key": "his-req-0001"}
        st1, b1, h1 = await call(s.http, "POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=h)
        st2, b2, h2 = await call(s.http, "POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=h)
        assert st1 == st2 == 200 and b1 == b2 and b1["name"] == "測試十"
        assert h1["Idempotency-Key"] == h2["Idempotency-Key"] == "his-req-0001"
        assert "Idempotent-Replayed" not in h1 and h2["Idempotent-Replayed"] == "true"
        assert s.store.calls["BasicData/Register"] == 1
        # Where the time went: the run has every phase (the agent's signature included), the replay only its own.
        assert set(server_timing(h1)) == {"queue", "sign", "cloud", "audit", "total"} and set(server_timing(h2)) == {"queue", "total"}
        # The same key for another request is refused, not answered with the wrong patient's data.
        st3, b3, _ = await call(s.http, "POST", s.gateway_url + "/api/v1/BasicData/Query", json={}, headers=h)
        assert st3 == 200 and b3["statusCode"] == 1706
        # Without a key the gateway makes one and says which.
        st4, _, h4 = await call(s.http, "POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-01"})
        assert st4 == 200 and len(h4["Idempotency-Key"]) == 32
        assert s.store.calls["BasicData/Register"] == 2


async def test_concurrent_duplicates_join_one_job() -> None:
    async with running_stack() as s:
        await s.ready()
        h = {"X-Workstation": "ws-01", "Idempotency-Key": "dup-1"}
        results = await asyncio.gather(*[call(s.http, "POST", s.gateway_url + "/api/v1/BasicData/Query", json={}, headers=h) for _ in range(5)])
        assert {r[0] for r in results} == {200} and len({json.dumps(r[1]) for r in results}) == 1
        assert s.store.calls["BasicData/Query"] == 1


# ------------------------------------------------------------------ writes: outcome unknown, never repeated


async def test_write_accepted_then_dropped_is_answered_9403_and_not_repeated() -> None:
    async with accept_then_drop() as (url, seen), gateway_on(url) as (gw_url, gw), aiohttp.ClientSession() as http:
        st, body, hdr = await call(http, "POST", gw_url + "/api/v1/EmergentTel/Write", json={**PASS_BODY, "tel": "0912345678"}, headers={"Idempotency-Key": "w-1"})
        assert st == 200 and body["statusCode"] == 9403 and body["idempotencyKey"] == "w-1" == hdr["Idempotency-Key"]
        assert len(seen) == 1 and b"Idempotency-Key: w-1" in seen[0]
        # The HIS asks again with the same key: the stored answer, still nothing sent again.
        st2, body2, hdr2 = await call(http, "POST", gw_url + "/api/v1/EmergentTel/Write", json={**PASS_BODY, "tel": "0912345678"}, headers={"Idempotency-Key": "w-1"})
        assert (st2, body2["statusCode"], hdr2["Idempotent-Replayed"]) == (200, 9403, "true")
        assert len(seen) == 1
        # A read that meets the same upstream is retried, bounded: 3 attempts.
        st3, body3, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert st3 == 200 and body3["statusCode"] == 9402 and len(seen) == 4
        (rec_w, rec_r) = await gw.audit.records()
        assert [a.outcome for a in rec_w.attempts] == ["MaybeSent"] and len(rec_r.attempts) == 3


async def test_one_call_write_on_the_real_simulator_reset_mid_call_is_9403_and_not_repeated() -> None:
    async with running_stack() as s:
        await s.ready()
        s.store.admin_enabled = True
        s.store.add_fault(Fault(route="EmergentTel/Write", reset_connection=True, times=1))
        h = {"X-Workstation": "ws-01", "Idempotency-Key": "tel-1"}
        st, body, _ = await call(s.http, "POST", s.gateway_url + "/api/v1/EmergentTel/Write", json={"tel": "0912345678"}, headers=h)
        assert st == 200 and body["statusCode"] == 9403
        assert s.store.calls.get("EmergentTel/Write", 0) == 0 and s.store.writes.get("EmergentTel/Write", 0) == 0
        # A new request (new key) goes through: one call, one write.
        st, body, _ = await call(s.http, "POST", s.gateway_url + "/api/v1/EmergentTel/Write", json={"tel": "0912345678"}, headers={**h, "Idempotency-Key": "tel-2"})
        assert st == 200, body
        assert s.store.calls["EmergentTel/Write"] == 1 and s.store.writes_by_key == {"tel-2": 1}


async def test_write_to_a_refused_port_is_retried_because_it_never_left() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    fast = UpstreamSettings(backoff_base_s=0.01)
    async with gateway_on(dead, upstream=fast) as (gw_url, gw), aiohttp.ClientSession() as http:
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/EmergentTel/Write", json={**PASS_BODY, "tel": "1"})
        assert st == 200 and body["statusCode"] == 9402 and "not sent" in body["detail"]
        (rec,) = await gw.audit.records()
        assert [a.outcome for a in rec.attempts] == ["NotSent"] * 3


# ------------------------------------------------------------------ reads, breaker, rate limit


async def test_reads_retry_on_5xx_at_most_three_times_then_the_breaker_opens_and_half_opens() -> None:
    hits: list[str] = []
    healthy = asyncio.Event()

    async def flaky(req: web.Request) -> web.Response:
        hits.append(req.match_info["path"])
        if healthy.is_set():
            return web.json_response({"statusCode": 0, "ok": True})
        return web.json_response({"statusCode": 9402}, status=503)

    settings = UpstreamSettings(backoff_base_s=0.005, breaker_failures=5, breaker_cooldown_s=0.3)
    async with upstream(flaky) as url, gateway_on(url, upstream=settings) as (gw_url, gw), aiohttp.ClientSession() as http:
        now = [time.monotonic()]
        gw.cloud.breaker.clock = lambda: now[0]  # the cool-down passes when the test moves this clock
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert st == 200 and body["statusCode"] == 9402 and len(hits) == 3  # 3 attempts, the cloud's last answer
        await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert len(hits) == 5 and gw.cloud.breaker.state == gw.cloud.breaker.OPEN  # 5 consecutive failures
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert (st, body["statusCode"], len(hits)) == (200, 9402, 5) and "circuit open" in body["detail"]
        metrics = await (await http.get(gw_url + "/metrics")).text()
        assert "nhigw_gateway_breaker_state 1.0" in metrics
        now[0] += 0.2
        assert gw.cloud.breaker.current() == gw.cloud.breaker.OPEN  # not yet cooled down
        now[0] += 0.2  # cool-down over: one probe goes through (half-open), it fails, open again
        await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert len(hits) == 6 and gw.cloud.breaker.state == gw.cloud.breaker.OPEN
        healthy.set()
        now[0] += 0.4
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert st == 200 and len(hits) == 7 and gw.cloud.breaker.state == gw.cloud.breaker.CLOSED


async def test_retry_budget_keeps_retries_near_ten_percent_of_calls() -> None:
    n = {"calls": 0}

    async def fail_first(req: web.Request) -> web.Response:
        n["calls"] += 1
        return web.json_response({}, status=503) if n["calls"] % 2 else web.json_response({"statusCode": 0})

    settings = UpstreamSettings(backoff_base_s=0.0, budget_min=2, budget_ratio=0.1, breaker_failures=10_000)
    async with upstream(fail_first) as url, gateway_on(url, upstream=settings) as (gw_url, gw), aiohttp.ClientSession() as http:
        for _ in range(40):
            await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
        assert gw.cloud.retries <= 2 + 0.1 * 40
        assert gw.cloud.retries >= 2


async def test_rate_limit_is_per_client_and_a_claimed_hospitalId_does_not_escape_it() -> None:
    async with gateway_on("http://127.0.0.1:9", upstream=UpstreamSettings(rate_per_s=0.001, rate_burst=2)) as (gw_url, gw), aiohttp.ClientSession() as http:
        codes = [(await call(http, "POST", gw_url + "/api/v1/Icd/Encode", json={**PASS_BODY, "hospitalId": HOSP}, headers={"X-Deadline-Ms": "100"}))[1]["statusCode"] for _ in range(3)]
        assert codes[2] == 9407 and 9407 not in codes[:2]
        # the bucket is the client's (here the open gateway's one client): another hospitalId in the body is no way out
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/Icd/Encode", json={**PASS_BODY, "hospitalId": "1111111111"}, headers={"X-Deadline-Ms": "100"})
        assert body["statusCode"] == 9407
        # and every endpoint spends from it, not only business routes
        st, body, _ = await call(http, "GET", gw_url + "/api/workstations")
        assert body["statusCode"] == 9407


# ------------------------------------------------------------------ HIS clients, scopes


async def test_api_keys_scope_clients_to_their_hospital_and_workstations(tmp_path: Path) -> None:
    f = tmp_path / "clients.json"
    key_a = Clients.add(f, "his-a", HOSP, ["ws-0*"])
    key_b = Clients.add(f, "his-b", "9999999999", ["ws-9*"])
    key_ops = Clients.add(f, "ops", None, ["*"], ops=True, all_hospitals=True)
    async with running_stack(clients=Clients.load(f)) as s:
        await s.ready()
        url = s.gateway_url + "/api/v1/BasicData/Register"
        a, b = {"Authorization": f"Bearer {key_a}"}, {"X-Api-Key": key_b}
        assert (await call(s.http, "POST", url, json={}, headers={"X-Workstation": "ws-01"}))[1]["statusCode"] == 9404  # no key: 401
        assert (await call(s.http, "POST", url, json={}, headers={"X-Workstation": "ws-01", "Authorization": "Bearer nope"}))[0] == 401
        st, body, _ = await call(s.http, "POST", url, json={}, headers={"X-Workstation": "ws-01", **a})
        assert st == 200 and body["name"] == "測試十"
        # Clinic B cannot reach clinic A's workstation, nor post for A's hospital, nor see A's audit.
        assert (await call(s.http, "POST", url, json={}, headers={"X-Workstation": "ws-01", **b}))[0] == 403
        _, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        assert (await call(s.http, "POST", url, json=sig, headers=b))[0] == 403
        assert (await call(s.http, "GET", s.gateway_url + "/api/audit", headers=b))[1]["records"] == []
        assert len((await call(s.http, "GET", s.gateway_url + "/api/audit", headers=a))[1]["records"]) == 1
        assert (await call(s.http, "GET", s.gateway_url + "/api/workstations", headers=b))[1]["workstations"] == []
        assert (await call(s.http, "GET", s.gateway_url + "/api/workstations/ws-01/common/v1/Status", headers=b))[0] == 403
        assert (await call(s.http, "GET", s.gateway_url + "/api/ops/dead-letters", headers=a))[0] == 403
        assert ok(await call(s.http, "GET", s.gateway_url + "/api/ops/dead-letters", headers={"Authorization": f"Bearer {key_ops}"}))
    assert key_a not in f.read_text()  # only hashes are stored


# ------------------------------------------------------------------ agents: enrolment, forgeries, offline


async def test_forged_presence_and_forged_replies_are_ignored() -> None:
    bus = MemoryBus()
    keys = BusKeys("nhigw")
    async with running_stack(bus=bus, sign_timeout_s=2.0) as s:
        await s.ready()
        gw = s.gateway
        # An unenrolled "agent" announces ws-07 (plain, and sealed with a key of its own): not online.
        p = Presence(workstation="ws-07", agentId="evil", version="x", sentAt=time.time(), interval_s=1, states=CardStates(sam=2, hc=2))
        await bus.publish(keys.presence, p.model_dump_json().encode())
        await bus.publish(keys.presence, seal_envelope(os.urandom(32), keys.presence, "ws-07", p.model_dump_json().encode()))
        # ws-02 is a real enrolled agent; it claims to be ws-01 in a presence sealed with its own key.
        ws2 = await enrol(bus, keys, "ws-02", await gw.agents.issue_token("ws-02"))
        fake01 = p.model_copy(update={"workstation": "ws-01", "agentId": ws2.agentId})
        await bus.publish(keys.presence, seal_envelope(ws2.key, keys.presence, "ws-02", fake01.model_dump_json().encode()))
        assert await eventually(lambda: gw.registry.rejected >= 3), gw.registry.rejected
        assert not gw.registry.online("ws-07")
        assert [w["workstation"] for w in gw.registry.snapshot()] == ["ws-01"]
        # A token is good once.
        token = await gw.agents.issue_token("ws-08")
        await enrol(bus, keys, "ws-08", token)
        with pytest.raises(Exception, match="no gateway answered"):
            await enrol(bus, keys, "ws-08", token, timeout_s=0.5, resend_s=0.1)

        # Replies: ws-03 is enrolled but its agent is ours and slow; while the gateway waits, ws-02 (and an
        # unenrolled host) answer for ws-03 with the right requestId. Neither counts; ws-03's own reply does.
        ws3 = await enrol(bus, keys, "ws-03", await gw.agents.issue_token("ws-03"))
        calls = await bus.subscribe(keys.calls("ws-03"))
        pending = asyncio.create_task(gw.rpc.sign("ws-03", SignatureKind.HC, "01", timeout_s=3))
        ch, raw = await calls.get(2)
        _, plain = open_envelope(lambda w: ws3.key if w == "ws-03" else None, ch, raw)
        sign_call = SignCall.model_validate_json(plain)
        forged = SignReply(requestId=sign_call.requestId, workstation="ws-03", ok=True, signature=SignatureObject(signature="forged", clientRandom="r", samId="s", hospitalId=HOSP))
        before = gw.rpc.rejected
        await bus.publish(sign_call.replyTo, seal_envelope(ws2.key, sign_call.replyTo, "ws-02", forged.model_dump_json().encode()))
        await bus.publish(sign_call.replyTo, forged.model_dump_json().encode())
        await bus.publish(sign_call.replyTo, seal_envelope(os.urandom(32), sign_call.replyTo, "ws-03", forged.model_dump_json().encode()))
        assert await eventually(lambda: gw.rpc.rejected == before + 3), gw.rpc.rejected - before
        assert not pending.done()
        real = forged.model_copy(update={"signature": forged.signature.model_copy(update={"signature": "genuine"})})  # type: ignore[union-attr]
        await bus.publish(sign_call.replyTo, seal_envelope(ws3.key, sign_call.replyTo, "ws-03", real.model_dump_json().encode()))
        reply = await pending
        assert reply.signature is not None and reply.signature.signature == "genuine"
        await calls.close()


async def test_workstation_gone_is_answered_9400_at_once() -> None:
    async with running_stack(offline_after_s=0.6) as s:
        await s.ready()
        assert ok(await s.gw("/api/v1/BasicData/Register", workstation="ws-01"))
        # Silence (a crashed agent sends no goodbye): the heartbeat stops, nothing else.
        link_tasks = [t for t in asyncio.all_tasks() if t.get_name() in ("presence", "bus-calls")]
        for t in link_tasks:
            t.cancel()
        assert await eventually(lambda: not s.gateway.registry.online("ws-01"), 3)  # past offline_after_s
        t0 = time.monotonic()
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        assert status == 200 and body["statusCode"] == 9400
        assert time.monotonic() - t0 < 1.0  # no waiting for a timeout
        ws = (await s.call("GET", s.gateway_url + "/api/workstations"))[1]["workstations"]
        assert ws[0]["workstation"] == "ws-01" and ws[0]["online"] is False
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-99")
        assert status == 200 and body["statusCode"] == 9400


# ------------------------------------------------------------------ component calls, audit, metrics


async def test_component_calls_are_forwarded_to_the_workstations_agent() -> None:
    async with running_stack() as s:
        await s.ready()
        g = s.gateway_url + "/api/workstations/ws-01"
        st, body, _ = await call(s.http, "GET", g + "/common/v1/Status")
        assert st == 200 and body["status"]["sam"]["status"] == 2
        st, body, _ = await call(s.http, "POST", g + "/hpc/v1/Verification/Hpc", json={"pin": "00000000"})
        assert body["statusCode"] == 1410
        st, body, _ = await call(s.http, "POST", g + "/hpc/v1/Verification/Hpc", json={"pin": "12345678"})
        assert st == 200 and body["statusCode"] == 0
        assert s.agent.hpc_state == 3
        # and then a three-card business call in one HTTP request
        st, body, _ = await call(s.http, "POST", s.gateway_url + "/api/v1/Treatment/NeedHPC", json={}, headers={"X-Workstation": "ws-01"})
        assert st == 200, body


async def test_audit_records_every_business_request_masked_and_chained(tmp_path: Path) -> None:
    async with running_stack(audit_path=tmp_path / "audit.jsonl", site="clinic-t") as s:
        await s.ready()
        await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        _, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        await s.gw("/api/v1/BasicData/Register", sig)
        await s.gw("/api/v1/BasicData/Register", sig)  # replayed signature: 3245, audited as a failure
        st, body, _ = await call(s.http, "GET", s.gateway_url + "/api/audit/verify")
        assert st == 200 and body["ok"] and body["count"] == 3
        recs = (await call(s.http, "GET", s.gateway_url + "/api/audit"))[1]["records"]
        assert [(r["route"], r["outcome"], r["statusCode"]) for r in recs] == [("BasicData/Register", 0, 0)] * 2 + [("BasicData/Register", 4, 3245)]
        assert recs[0]["workstation"] == "ws-01" and recs[0]["agentId"] and recs[1]["workstation"] is None
        assert all(r["patient"] == "Z29*****29" and r["site"] == "clinic-t" and r["client"] == "local" for r in recs)
        text = (tmp_path / "audit.jsonl").read_text()
        assert "Z299999929" not in text and sig["signature"][:20] not in text
        metrics = await (await s.http.get(s.gateway_url + "/metrics")).text()
        assert 'nhigw_gateway_requests_total{route="BasicData/Register",statusCode="0"} 2.0' in metrics
        assert "nhigw_gateway_agents_online 1.0" in metrics and "nhigw_gateway_queue_pending 0.0" in metrics
        # what the alert rules read (deploy/prometheus/nhigw-rules.yml): per workstation, the cloud, the audit check
        assert 'nhigw_gateway_workstation_online{workstation="ws-01"} 1.0' in metrics
        assert 'nhigw_gateway_workstation_sam_state{workstation="ws-01"} 2.0' in metrics
        assert "nhigw_gateway_cloud_up 1.0" in metrics and "nhigw_gateway_breaker_opened_total 0.0" in metrics
        assert "nhigw_gateway_audit_chain_ok 1.0" in metrics and "nhigw_gateway_audit_chain_records 3.0" in metrics
        assert (await s.http.get(s.gateway_url + "/readyz")).status == 200


# ------------------------------------------------------------------ dead letters (real Redis)


@pytest.mark.redis
async def test_poison_job_is_dead_lettered_after_n_deliveries_then_retried_or_discarded_by_ops(redis_server: str, bus_prefix: str) -> None:
    broken = {"on": True}

    async def transport(base: str, req) -> UpstreamResponse:
        if broken["on"]:
            raise RuntimeError("unexpected failure inside the worker")
        return UpstreamResponse(200, b'{"statusCode": 0, "hello": "again"}')

    bus = RedisBus(redis_server)
    key = os.urandom(32)
    async with gateway_on("http://cloud.invalid", bus=bus, prefix=bus_prefix, gateway_key=key, transport=HandlerTransport(transport), claim_idle_s=0.2, claim_every_s=0.05, max_deliveries=3) as (
        gw_url,
        gw,
    ), aiohttp.ClientSession() as http:
        for idem in ("poison-1", "poison-2"):
            st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": idem, "X-Deadline-Ms": "200"})
            assert st == 202 and body["statusCode"] == 9408 and body["idempotencyKey"] == idem
        dead: list[dict] = []

        async def both_dead() -> bool:
            # The failure metric is written beside the job's end, off its critical path: wait for both.
            dead[:] = (await call(http, "GET", gw_url + "/api/ops/dead-letters"))[1]["deadLetters"]
            return len(dead) == 2 and gw.metrics.job_failures._value.get() == 6

        assert await eventually(both_dead), (dead, gw.metrics.job_failures._value.get())
        assert {d["deliveries"] for d in dead} == {3}
        assert {d["job"]["idempotencyKey"] for d in dead} == {"poison-1", "poison-2"}
        broken["on"] = False
        by_key = {d["job"]["idempotencyKey"]: d["id"] for d in dead}
        assert ok(await call(http, "POST", gw_url + f"/api/ops/dead-letters/{by_key['poison-1']}/retry"))
        assert ok(await call(http, "DELETE", gw_url + f"/api/ops/dead-letters/{by_key['poison-2']}"))
        assert (await call(http, "DELETE", gw_url + f"/api/ops/dead-letters/{by_key['poison-2']}"))[0] == 404
        assert (await call(http, "DELETE", gw_url + "/api/ops/dead-letters/not-an-id"))[1]["statusCode"] == 9405
        assert (await call(http, "POST", gw_url + "/api/ops/dead-letters/99999999999999999999999-1/retry"))[0] == 404
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "poison-1", "X-Deadline-Ms": "5000"})
        assert st == 200 and body["hello"] == "again"
        st, body, _ = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": "poison-2", "X-Deadline-Ms": "5000"})
        assert st == 200 and body["statusCode"] == 9402 and "discarded" in body["detail"]
        assert (await call(http, "GET", gw_url + "/api/ops/dead-letters"))[1]["deadLetters"] == []
        ops = [(r.eventType, r.route, r.idempotencyKey) for r in await gw.audit.records() if r.eventType == "ops"]
        assert ops == [("ops", "ops/dead-letters/retry", "poison-1"), ("ops", "ops/dead-letters/discard", "poison-2")]
        assert (await gw.audit.verify()).ok
    await bus.close()


async def test_real_simulator_down_then_slow_then_back() -> None:
    """Faults injected in the simulator itself (``/test/v1/Faults``): 503s open the breaker, a slow cloud
    makes reads retry and writes answer 9403, and once it is healthy the breaker closes again."""
    settings = UpstreamSettings(backoff_base_s=0.005, breaker_failures=3, breaker_cooldown_s=0.3, total_timeout_s=0.3)
    async with running_stack(upstream=settings) as s:
        await s.ready()
        s.store.admin_enabled = True
        br = s.gateway.cloud.breaker
        now = [time.monotonic()]
        br.clock = lambda: now[0]  # the cool-down passes when the test moves this clock
        # Down: every call answers 503.
        s.store.add_fault(Fault(status=503))
        st, body = await s.gw("/api/v1/BasicData/Query", workstation="ws-01")
        assert (st, body["statusCode"]) == (200, 9402) and br.state == br.OPEN  # 3 attempts, 3 failures
        st, body = await s.gw("/api/v1/BasicData/Query", workstation="ws-01")
        assert "circuit open" in body["detail"]
        # Slow: every call takes longer than the gateway waits.
        s.store.faults.clear()
        s.store.add_fault(Fault(latency_ms=1000))
        now[0] += settings.breaker_cooldown_s + 0.1
        st, body = await s.gw("/api/v1/EmergentTel/Write", {"tel": "0912345678"}, workstation="ws-01")
        assert (st, body["statusCode"]) == (200, 9403)  # the half-open probe was a write that may have landed
        assert br.state == br.OPEN
        # Back: healthy again; after the cool-down one probe closes the breaker.
        s.store.faults.clear()
        now[0] += settings.breaker_cooldown_s + 0.1
        st, body = await s.gw("/api/v1/BasicData/Query", workstation="ws-01")
        assert st == 200 and body["statusCode"] == 0 and br.state == br.CLOSED
        await asyncio.sleep(1.1)  # let the slow calls the gateway gave up on finish in the simulator
        assert s.store.writes.get("EmergentTel/Write", 0) <= 1  # the write was sent once at most


@pytest.mark.redis
async def test_gateway_rides_out_a_redis_restart(tmp_path: Path, bus_prefix: str) -> None:
    from tests.conftest import start_redis

    async def answer_ok(_req: web.Request) -> web.Response:
        return web.json_response({"statusCode": 0})

    proc, port = start_redis(tmp_path, appendonly=True)
    bus = RedisBus(f"redis://127.0.0.1:{port}/0")
    try:
        async with upstream(answer_ok) as url, gateway_on(url, bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as (gw_url, gw), aiohttp.ClientSession() as http:
            assert ok(await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY))
            proc.kill()
            proc.wait(5)
            st, body, hdr = await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY)
            assert (st, body["statusCode"]) == (200, 9402)  # refused at once, nothing sent upstream
            assert body["idempotencyKey"] == hdr["Idempotency-Key"] and len(body["idempotencyKey"]) == 32  # the key to retry with
            assert (await http.get(gw_url + "/readyz")).status == 503
            proc, _ = start_redis(tmp_path, appendonly=True, port=port)
            retry = {"Idempotency-Key": body["idempotencyKey"], "X-Deadline-Ms": "2000"}

            async def answered() -> bool:  # as an HIS retries: with the key the 9402 gave, so a try that landed is not run again
                return ok(await call(http, "POST", gw_url + "/api/v1/BasicData/Query", json=PASS_BODY, headers=retry))

            assert await eventually(answered, 60, interval_s=0.1)

            async def ready() -> bool:  # once its registry has caught up with the agents (1.5 s after the bus is back)
                return (await http.get(gw_url + "/readyz")).status == 200

            assert await eventually(ready, 10.0)
            assert (await gw.audit.verify()).count == 2
    finally:
        await bus.close()
        proc.kill()
        proc.wait(5)


async def test_every_business_route_is_routed_one_call_with_the_signature_its_row_names() -> None:
    """Each supported row of ``routes.py``, one call at ws-01 with an empty body: the gateway asks the agent
    for the row's signature kind and serviceType and the request reaches the simulator (an audit record
    with an upstream attempt). The simulator checks signatures: no route comes back 3100."""
    from nhigw.contracts.routes import ROUTES

    async with running_stack(upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)) as s:
        await s.ready()
        assert (await s.agent_call("POST", "/api/hpc/v1/Verification/Hpc", json={"pin": "12345678"}))[1]["statusCode"] == 0
        routes = [r for r in ROUTES.values() if r.supported]
        answers = {}
        for r in routes:
            st, body = await s.gw(f"/api/v1/{r.path}", workstation="ws-01")
            answers[r.path] = (st, body.get("statusCode"))
        recs = await s.gateway.audit.records()
        assert len(recs) == len(routes) and all(len(x.attempts) == 1 for x in recs), answers
        assert not [p for p, (_st, code) in answers.items() if code in (3100, 9405, 9400, 9401)], answers
        assert {x.action for x in recs if x.route == "SeqNumber/Next"} == {"C"} and {x.action for x in recs if x.route == "BasicData/Query"} == {"R"}
        st, body = await s.gw("/api/v1/OrganDonate/Write", workstation="ws-01")
        assert body["statusCode"] == 9406  # the seed marks it 不支援: refused without a call


async def test_refusals_that_never_reached_the_cloud_are_not_kept_for_the_key(redis_server: str, bus_prefix: str) -> None:
    """Issue 9 follow-up: an answer the gateway made before anything reached the cloud (an agent
    refusal, 9400 from the worker as after a Redis restart) is given to the waiting request but not
    stored for the Idempotency-Key: a retry with the key runs again. The cloud's answer is kept."""
    from nhigw.contracts.routes import lookup
    from nhigw.gateway.auth import OPEN

    bus = RedisBus(redis_server)
    try:
        async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as s:
            url = s.gateway_url + "/api/v1/BasicData/Register"
            h = {"X-Workstation": "ws-01", "Idempotency-Key": "his-retry-0001"}
            # The SAM is not verified yet: the agent refuses to sign; nothing goes upstream.
            st, refused, _ = await call(s.http, "POST", url, json={}, headers=h)
            assert st == 200 and refused["statusCode"] not in (0, 9403), refused
            assert s.store.calls.get("BasicData/Register", 0) == 0
            assert await s.gateway.stored_answer(s.gateway.answer_key(OPEN, "his-retry-0001")) is None
            await s.ready()
            st, b1, h1 = await call(s.http, "POST", url, json={}, headers=h)
            assert st == 200 and b1["statusCode"] == 0 and "Idempotent-Replayed" not in h1
            st, b2, h2 = await call(s.http, "POST", url, json={}, headers=h)
            assert (st, b2, h2["Idempotent-Replayed"]) == (200, b1, "true")  # the cloud's answer is kept
            assert s.store.calls["BasicData/Register"] == 1

            # 9400 from the worker (admission saw the workstation online, the worker does not).
            route = lookup("/api/v1/BasicData/Register")
            assert route is not None
            kw = {"client": OPEN, "route": route, "path": "/api/v1/BasicData/Register", "body": b"{}", "idem_key": "his-retry-0002", "deadline_s": 10.0, "hospital": None}
            a1, replayed1, _ = await s.gateway.submit(workstation="ws-gone", **kw)  # type: ignore[arg-type]
            assert a1 is not None and json.loads(a1.body)["statusCode"] == 9400 and not replayed1
            a2, replayed2, _ = await s.gateway.submit(workstation="ws-gone", **kw)  # type: ignore[arg-type]
            assert a2 is not None and not replayed2 and a2.requestId != a1.requestId  # ran again, not replayed
            assert len(await s.gateway.audit.records()) == 4  # every run is audited
    finally:
        await bus.close()


async def test_each_part_of_the_gateway_runs_while_the_app_runs_and_stops_with_it(redis_server: str, bus_prefix: str) -> None:
    """Every part (``Gateway.lifetimes``) is a cleanup_ctx of the app: its tasks run while the app serves, and
    stopping the app ends every one of them and closes the bus subscriptions and the cloud sessions."""
    bus = RedisBus(redis_server)
    gw = Gateway(bus, GatewaySettings(cloud_url="http://127.0.0.1:9", prefix=bus_prefix, gateway_key=os.urandom(32), audit_check_every_s=60.0))
    app = create_app(gw)
    assert len(app.cleanup_ctx) == len(gw.lifetimes()) == 8
    before = set(asyncio.all_tasks())
    try:
        async with serving(app) as url, aiohttp.ClientSession() as http:
            async with http.get(url + "/readyz") as r:
                checks = (await r.json())["checks"]
            assert {"task:worker", "task:worker-keepalive", "task:done-listener", "task:audit-check"} <= set(checks)
            assert {"worker", "worker-keepalive", "done-listener", "audit-check"} <= set(gw.supervisor.tasks)
            started = {t for t in asyncio.all_tasks() if t not in before and not t.done()}
            assert started
        assert gw.supervisor.tasks == {}  # each part stopped what it started
        # Only the bus's own reader is left: the bus is the caller's (it closes it).
        assert [t.get_name() for t in started if not t.done()] == ["redis-bus-reader"]
        transport = gw.cloud.transport
        assert isinstance(transport, AiohttpTransport) and transport.closed
    finally:
        await bus.close()
    assert all(t.done() for t in started)
