"""Issue 16 (bus): no bus message stops a receiver; replays are not run again; sealed values are bound to
their key; presence floods and replays do not move a workstation's state.

Real redis-server, the gateway and the agent (on in-process virtual cards) in the test's event loop, on
real loopback HTTP servers (``tests.stack``); the fuzz publishes through its own Redis connection as the
agents' ACL user would.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from nhigw.agent.sessions import ServedSessions, SessionLink
from nhigw.bus.guard import Drop, Drops, Seen, Supervisor, serve
from nhigw.bus.redis import RedisBus
from nhigw.bus.seal import Sealer, seal_envelope
from nhigw.common.health import Readiness
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import ComponentCall, Presence, QueuedJob
from nhigw.gateway.service import answer_aad
from tests.helpers import eventually
from tests.stack import running_stack

# ------------------------------------------------------------------ pure parts


async def test_seen_remembers_a_call_until_its_deadline_and_refuses_one_it_could_not_remember() -> None:
    seen = Seen(max_ahead_s=60)
    now = time.time()
    assert seen.first("a", now + 0.3)
    with pytest.raises(Drop, match="replayed"):
        seen.first("a", now + 0.3)
    with pytest.raises(Drop, match="expired"):
        seen.first("b", now - 1)
    with pytest.raises(Drop, match="deadline_too_far"):
        seen.first("c", now + 3600)
    assert await eventually(lambda: _after(now + 0.3), 3)
    seen._next_sweep = 0  # the next call sweeps: "a" is forgotten with its deadline, so memory stays bounded
    assert seen.first("d", time.time() + 5) and len(seen) == 1


async def _after(t: float) -> bool:
    return time.time() > t


async def test_drops_are_counted_by_reason_and_logged_once_per_interval() -> None:
    drops = Drops(log_every_s=60)
    with capture_logs() as logs:
        for _ in range(1000):
            drops.drop("presence", "forged")
        drops.drop("presence", "too_deep")
        drops.drop("calls", "oversized")
    assert drops.counts[("presence", "forged")] == 1000 and drops.total("presence") == 1001 and drops.total() == 1002
    lines = [entry for entry in logs if entry["event"] == "bus_messages_dropped"]
    assert [entry["receiver"] for entry in lines] == ["presence", "calls"]  # one line per receiver, not per message


async def test_a_task_that_dies_is_restarted_with_backoff_and_is_not_ready_until_it_runs_again() -> None:
    ready = Readiness()
    sup = Supervisor(ready, first_backoff_s=0.3, max_backoff_s=0.3)
    runs: list[float] = []
    release = asyncio.Event()

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 2:
            raise RuntimeError("a bug, not a message")
        await release.wait()
        await asyncio.Event().wait()

    with capture_logs() as logs:
        sup.start("flaky", flaky)
        assert await eventually(lambda: _check(ready, "task:flaky", False), 2)
        assert await eventually(lambda: _check(ready, "task:flaky", True), 3)
    assert len(runs) == 3 and sup.restarts["flaky"] == 2
    assert [entry["task"] for entry in logs if entry["event"] == "task_died"] == ["flaky", "flaky"]
    await sup.close()
    assert "task:flaky" not in ready.names


async def _check(ready: Readiness, name: str, want: bool) -> bool:
    return (await ready.run())[name] is want


async def test_the_agents_readyz_fails_while_a_bus_task_is_down_and_passes_once_it_runs_again() -> None:
    async with running_stack() as s:
        assert await eventually(lambda: _ready_code(s, 200), 5)
        st, body = await s.agent_call("GET", "/readyz")
        assert {"task:presence", "task:bus-calls"} <= set(body["checks"])
        link = s.link
        real = link.presence

        def broken(leaving: bool = False) -> Presence:
            raise RuntimeError("a bug in the heartbeat")

        link.supervisor.first_backoff_s = link.supervisor.max_backoff_s = 1.0
        with capture_logs() as logs:
            link.presence = broken  # type: ignore[method-assign]
            link._kick.set()
            assert await eventually(lambda: _ready_code(s, 503), 5)
            st, body = await s.agent_call("GET", "/readyz")
            assert body["checks"]["task:presence"] is False and body["checks"]["task:bus-calls"] is True
            link.presence = real  # type: ignore[method-assign]
            assert await eventually(lambda: _ready_code(s, 200), 5)
        assert link.supervisor.restarts["presence"] >= 1 and any(entry["event"] == "task_died" for entry in logs)
        assert await eventually(lambda: s.gateway.registry.online(s.workstation), 5)  # heartbeats again


async def _ready_code(s, want: int) -> bool:
    return (await s.agent_call("GET", "/readyz"))[0] == want


async def test_serve_drops_any_message_and_keeps_reading() -> None:
    from nhigw.bus import MemoryBus

    bus = MemoryBus()
    sub = await bus.subscribe("ch")
    drops = Drops()
    got: list[bytes] = []

    async def handle(_ch: str, data: bytes) -> None:
        import json

        json.loads(data.decode())  # stdlib json: RecursionError on deep nesting, as the registry's old code met it
        got.append(data)

    task = asyncio.create_task(serve(sub, "test", handle, drops, max_bytes=100_000))
    for msg in [b"[" * 50_000, b"\xff\xfe", b"x" * 200_000, b"{", b'"fine"']:
        await bus.publish("ch", msg)
    assert await eventually(lambda: got == [b'"fine"'], 2)
    assert drops.counts == Counter({("test", "too_deep"): 1, ("test", "bad_utf8"): 1, ("test", "oversized"): 1, ("test", "malformed"): 1})
    assert not task.done()
    task.cancel()
    await sub.close()



# ------------------------------------------------------------------ the fuzz (issue 16 item 1)

ROUNDS = 20  # x 7 channels x ~25 kinds: 3,500 messages, plus the stream's entries


def _junk(agent_key: bytes, channel: str, ws: str, agent_id: str) -> list[bytes]:
    """Malformed messages of every kind, some sealed with the real agent key around a malformed body."""
    deep = b"[" * 1000  # 1,000 nested '[' (the issue's 2 KB killer)
    sealed = lambda inner: seal_envelope(agent_key, channel, ws, inner)  # noqa: E731
    return [
        deep,
        b'{"type":"sealed","workstation":"' + ws.encode() + b'","payload":' + b"[" * 20000 + b"}",
        b'{"type":"sealed","workstation":"' + ws.encode() + b'","payload":"' + b"A" * 64 + b'","n":' + b"9" * 5000 + b"}",
        b'{"workstation":1e999999,"payload":-1e999999}',
        b'{"workstation":123,"payload":["x"]}',
        b"null", b'"a string"', b"[]", b"42", b"", b" ",
        b"\xff\xfe\xfd\x00\x80",
        b'{"type":"sealed","workstation":"\xff\xfe","payload":"AAAA"}',
        b'{"type":"sealed","workstation":"' + ws.encode() + b'","payload":"not base64!!"}',
        b'{"type":"sealed","workstation":"' + ws.encode() + b'","payload":"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}',
        seal_envelope(os.urandom(32), channel, ws, b"{}"),  # a key of its own
        sealed(deep),  # the right key around 1,000 nested '['
        sealed(b"[" * 100000),
        sealed(b'{"requestId":' + b"1" * 5000 + b"}"),
        sealed(b'{"requestId":["x"],"type":"sign"}'),
        sealed(b'{"type":"presence","workstation":"' + ws.encode() + b'","agentId":"x","version":"x","sentAt":"soon","interval_s":1}'),
        sealed(b"\xff\xfe\xfd"),
        sealed(b"{}"),
        # the agent's own key, its own name, a time that would block its next heartbeats if it were taken
        *[sealed(b'{"type":"presence","workstation":"' + ws.encode() + b'","agentId":"' + agent_id.encode() + b'","version":"x","sentAt":' + t + b',"interval_s":1}') for t in (b"1e999", b"NaN", b"99999999999")],
    ]


async def test_fuzz_every_channel_and_stream_the_services_read_kills_nothing(redis_server: str, bus_prefix: str) -> None:
    """A few thousand malformed messages of every kind on every channel and stream the gateway and the agent read;
    then registration works, every receiver is alive, drops are counted and each receiver logged at most a few lines."""
    gateway_key = os.urandom(32)
    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    pub = aioredis.Redis.from_url(redis_server)
    with capture_logs() as logs:
        async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=gateway_key) as s:
            await s.ready()
            gw, ws = s.gateway, s.workstation
            agent_key = s.link.identity.key
            slink = SessionLink(ServedSessions(s.agent), bus, keys, s.link.identity, sweep_s=0.2)
            await slink.start()
            try:
                channels = [keys.presence, keys.enrol, keys.replies(gw.rpc.node_id), keys.replies(gw.sessions.rpc.node_id), gw.done_channel, keys.calls(ws), keys.sessions(ws)]
                big = b"[" * 1_000_000  # 1 MB
                sent = 0
                for rnd in range(ROUNDS):
                    async with pub.pipeline(transaction=False) as p:
                        for ch in channels:
                            for msg in _junk(agent_key, ch, ws, s.link.agent_id):
                                p.publish(ch, msg)
                                sent += 1
                            if ch == gw.done_channel:
                                p.publish(ch, b"someanswerkey " + b"[" * 1000)
                                p.publish(ch, b"\xff\xfe \x00")
                            if rnd < 2:
                                p.publish(ch, big)
                                sent += 1
                        # the work stream: entries that do not open, a sealed one that does not parse, 1 MB, odd fields
                        p.xadd(keys.jobs, {"job": b"[" * 1000})
                        p.xadd(keys.jobs, {"job": Sealer(gateway_key).seal(b"[" * 1000, gw.queue.aad)})  # type: ignore[attr-defined]
                        p.xadd(keys.jobs, {"nojob": b"1"})
                        if rnd < 2:
                            p.xadd(keys.jobs, {"job": big})
                        await p.execute()
                assert sent >= 3000
                # Every receiver got through its share (each counts what it drops); the stream's entries reached a worker.
                drops = gw.drops
                assert await eventually(lambda: drops.total("presence") >= ROUNDS * 20 and drops.total("replies") >= ROUNDS * 20 and drops.total("enrol") >= ROUNDS * 15, 60)
                assert await eventually(lambda: s.link.drops.total("calls") >= ROUNDS * 20 and slink.drops.total("sessions") >= ROUNDS * 20, 60)
                assert await eventually(lambda: drops.total("jobs") >= ROUNDS, 30)
                assert drops.counts[("presence", "oversized")] >= 2 and s.link.drops.counts[("calls", "oversized")] >= 2 and drops.counts[("presence", "too_deep")] == 0
                assert drops.counts[("presence", "stale")] >= ROUNDS  # a sentAt far ahead, sealed by the agent itself: not taken
                # Nothing died: every supervised task runs, none was restarted; ready; registration works.
                for sup in (gw.supervisor, s.link.supervisor, slink.supervisor):
                    assert sup.restarts == Counter() and all(not t.done() for t in sup.tasks.values()), sup.tasks
                async def ready() -> bool:  # (the registry's own check waits out its warm-up after the bus connected)
                    return (await s.call("GET", s.gateway_url + "/readyz"))[0] == 200

                assert await eventually(ready, 10)
                st, body = await s.call("GET", s.gateway_url + "/readyz")
                assert st == 200 and {"bus", "registry", "task:registry", "task:replies", "task:done-listener", "task:enrolment", "task:worker"} <= set(body["checks"]), body
                assert gw.registry.online(ws)
                st, body = await s.gw("/api/v1/BasicData/Register", workstation=ws)
                assert st == 200 and body["name"] == "測試十", body
                reply = await gw.sessions.rpc.session(ws, "open", "ds-fuzz", timeout_s=5, device="d")  # the session receiver answers
                assert reply.requestId and reply.workstation == ws
                async with s.http.get(s.gateway_url + "/metrics") as r:
                    text = await r.text()
                n = drops.counts[("presence", "oversized")]
                assert f'nhigw_gateway_bus_messages_dropped_total{{reason="oversized",receiver="presence"}} {float(n)}' in text
            finally:
                await slink.stop()
    await pub.aclose()
    await bus.close()
    per_receiver = Counter(entry["receiver"] for entry in logs if entry["event"] == "bus_messages_dropped")
    assert per_receiver and max(per_receiver.values()) <= 10, per_receiver  # once per 10 s, not once per message
    assert not [entry for entry in logs if entry["event"] in ("task_died", "task_ended")]


async def test_forged_enrolment_replies_do_not_stop_an_agent_enrolling() -> None:
    """The agent's one-shot receiver: a refusal or a key not wrapped with its token, sent by whoever saw its
    request go by, is not the end; the gateway's real answer is."""
    from nhigw.bus import MemoryBus
    from nhigw.bus.enrol import enrol
    from nhigw.contracts.models import EnrolReply, EnrolRequest, ErrorBody
    from nhigw.gateway.service import Gateway, GatewaySettings

    bus = MemoryBus()
    keys = BusKeys("nhigw")
    gw = Gateway(bus, GatewaySettings(cloud_url="http://cloud.invalid", gateway_key=os.urandom(32)))
    token = await gw.agents.issue_token("ws-05")
    spy = await bus.subscribe(keys.enrol)
    forged_sent = asyncio.Event()

    async def forger() -> None:
        _ch, raw = await spy.get(5)
        req = EnrolRequest.model_validate_json(raw)
        err = ErrorBody(statusCode=9410, message="拒絕", messageEn="refused")
        for reply in (EnrolReply(workstation=req.workstation, agentId=req.agentId, ok=False, error=err), EnrolReply(workstation=req.workstation, agentId=req.agentId, ok=True, wrappedKey="AAAA"), b"[" * 5000):
            await bus.publish(keys.enrol_reply(req.agentId), reply if isinstance(reply, bytes) else reply.model_dump_json().encode())
        forged_sent.set()
        await gw.agents.start()  # the real gateway answers only after the forgeries

    task = asyncio.create_task(forger())
    ident = await enrol(bus, keys, "ws-05", token, timeout_s=5, resend_s=0.05)
    await task
    assert forged_sent.is_set() and ident.workstation == "ws-05" and (await gw.agents.get("ws-05")) == (ident.agentId, ident.key)
    await gw.agents.close()  # the one part started here
    await gw.close()
    await spy.close()


# ------------------------------------------------------------------ presence (issue 16 item 8)


async def test_thirty_thousand_forged_presences_do_not_take_a_workstation_offline(redis_server: str, bus_prefix: str) -> None:
    """Forged presences for ws-01 (sealed under keys of their own) cost no Redis round trip and no log line each:
    the genuine heartbeats behind them in the queue still arrive in time (today's code: ~9 s offline here)."""
    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    pub = aioredis.Redis.from_url(redis_server)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), offline_after_s=1.0) as s:
        gw, ws = s.gateway, s.workstation
        assert await eventually(lambda: gw.registry.online(ws), 5)
        p = Presence(workstation=ws, agentId=s.link.agent_id, version="x", sentAt=time.time() + 60, interval_s=1)
        forged = [seal_envelope(os.urandom(32), keys.presence, ws, p.model_dump_json().encode()) for _ in range(100)]
        offline_seen: list[float] = []
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                if not gw.registry.online(ws):
                    offline_seen.append(time.monotonic())
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        before = gw.registry.rejected
        for _ in range(30):  # 30,000
            async with pub.pipeline(transaction=False) as pl:
                for i in range(1000):
                    pl.publish(keys.presence, forged[i % 100])
                await pl.execute()
        assert await eventually(lambda: gw.registry.rejected - before >= 30_000, 60)
        done.set()
        await watcher
        assert offline_seen == []  # online the whole time
        assert gw.drops.counts[("presence", "forged")] >= 30_000 and gw.registry.online(ws)
    await pub.aclose()
    await bus.close()


async def test_a_replayed_presence_does_not_keep_a_frozen_agent_online(redis_server: str, bus_prefix: str) -> None:
    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), offline_after_s=0.6) as s:
        gw, ws = s.gateway, s.workstation
        sub = await bus.subscribe(keys.presence)
        _ch, captured = await sub.get(5)
        await sub.close()
        await s.link.supervisor.stop("presence")  # frozen: no heartbeat, no goodbye
        # Its latest heartbeat, published again and again by someone who captured it: refused each time.
        stop = asyncio.Event()

        async def replay() -> None:
            while not stop.is_set():
                await bus.publish(keys.presence, captured)
                await asyncio.sleep(0.05)

        task = asyncio.create_task(replay())
        try:
            assert await eventually(lambda: not gw.registry.online(ws), 5)
            assert await eventually(lambda: gw.drops.counts[("presence", "replayed")] >= 5, 5)
            assert not gw.registry.online(ws)
        finally:
            stop.set()
            await task
    await bus.close()


# ------------------------------------------------------------------ replays (issue 16 item 5)


async def test_a_captured_component_call_published_again_is_not_run_again(redis_server: str, bus_prefix: str) -> None:
    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as s:
        await s.ready()
        ws = s.workstation
        sub = await bus.subscribe(keys.calls(ws))
        st, body = await s.call("POST", s.gateway_url + f"/api/workstations/{ws}/hpc/v1/Verification/Hpc", json={"pin": "00000000"})
        assert body["statusCode"] == 1410  # a wrong PIN, counted by the card
        ch, captured = await sub.get(5)
        await sub.close()
        from nhigw.bus.seal import open_envelope

        _ws, plain = open_envelope(lambda w: s.link.identity.key, ch, captured)
        assert ComponentCall.model_validate_json(plain).path == "/api/hpc/v1/Verification/Hpc"
        runs = sum(1 for r in s.agent.records if "Verification/Hpc" in r.function or "Hpc" in r.function)
        assert runs >= 1
        await bus.publish(ch, captured)  # the same sealed call, again, before its deadline
        assert await eventually(lambda: s.link.drops.counts[("calls", "replayed")] == 1, 5)
        assert sum(1 for r in s.agent.records if "Verification/Hpc" in r.function or "Hpc" in r.function) == runs  # not run again
    await bus.close()


async def test_a_captured_session_call_published_again_is_not_run_again(redis_server: str, bus_prefix: str) -> None:
    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as s:
        ws = s.workstation
        sessions = ServedSessions(s.agent)
        handled: list[str] = []
        handle = sessions.handle

        async def spy(call):
            handled.append(call.requestId)
            return await handle(call)

        sessions.handle = spy  # type: ignore[method-assign]
        slink = SessionLink(sessions, bus, keys, s.link.identity)
        await slink.start()
        try:
            sub = await bus.subscribe(keys.sessions(ws))
            reply = await s.gateway.sessions.rpc.session(ws, "open", "ds-replay", timeout_s=5, device="bed-1")
            ch, captured = await sub.get(5)
            await sub.close()
            assert handled == [reply.requestId]
            await bus.publish(ch, captured)
            assert await eventually(lambda: slink.drops.counts[("sessions", "replayed")] == 1, 5)
            assert handled == [reply.requestId]  # not run again
        finally:
            await slink.stop()
    await bus.close()


async def test_a_job_added_to_the_stream_again_is_not_run_again_and_keeps_its_stored_answer(redis_server: str, bus_prefix: str) -> None:
    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    raw = aioredis.Redis.from_url(redis_server)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32)) as s:
        await s.ready()
        gw = s.gateway
        ran: list[QueuedJob] = []
        process = gw.process

        async def spy(job: QueuedJob, deliveries: int, phases=None):
            ran.append(job)
            return await process(job, deliveries, phases)

        gw.process = spy  # type: ignore[method-assign]
        h = {"X-Workstation": s.workstation, "Idempotency-Key": "replay-me"}
        st1, b1 = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=h)
        assert st1 == 200 and len(ran) == 1 and s.store.calls["BasicData/Register"] == 1
        stored = await raw.get(keys.answer(ran[0].answerKey))
        # The sealed job, as it stood in the stream, added again (twice: this replica remembers it ran; then a
        # replica that never saw it finds its answer stored).
        sealed = gw.queue.box.seal(ran[0].model_dump_json().encode(), gw.queue.aad)  # type: ignore[attr-defined]
        await raw.xadd(keys.jobs, {"job": sealed})
        assert await eventually(lambda: gw.drops.counts[("jobs", "replayed")] == 1, 5)
        gw._ran = type(gw._ran)()  # forget: as another replica would
        await raw.xadd(keys.jobs, {"job": sealed})
        assert await eventually(lambda: gw.drops.counts[("jobs", "replayed")] == 2, 5)
        assert len(ran) == 1 and s.store.calls["BasicData/Register"] == 1  # no second signature, no second upstream call
        assert await raw.get(keys.answer(ran[0].answerKey)) == stored  # the stored answer untouched
        st2, b2 = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=h)
        assert st2 == 200 and b2 == b1
        assert await eventually(lambda: _pending_zero(gw), 5)
    await raw.aclose()
    await bus.close()


def _pending_zero(gw) -> bool:
    return not gw._working


# ------------------------------------------------------------------ sealed values bound to their key (issue 16 item 6)


async def test_hospital_a_sealed_answer_copied_under_hospital_b_key_is_refused(redis_server: str, bus_prefix: str, tmp_path) -> None:
    from nhigw.gateway.auth import Clients

    bus = RedisBus(redis_server)
    keys = BusKeys(bus_prefix)
    raw = aioredis.Redis.from_url(redis_server)
    f = tmp_path / "clients.json"
    key_a = Clients.add(f, "his-a", "3501200000", ["ws-*"])
    key_b = Clients.add(f, "his-b", "3501209999", ["ws-*"])
    clients = Clients.load(f)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), clients=clients) as s:
        await s.ready()
        gw = s.gateway
        idem = "same-key-0001"
        st, body_a = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={"Authorization": f"Bearer {key_a}", "X-Workstation": s.workstation, "Idempotency-Key": idem})
        assert st == 200 and body_a["name"] == "測試十"
        by_name = {c.name: c for c in clients.clients}
        akey_a, akey_b = gw.answer_key(by_name["his-a"], idem), gw.answer_key(by_name["his-b"], idem)
        # Someone with write access to Redis copies A's sealed answer (and its in-flight marker) under B's key.
        await raw.set(keys.answer(akey_b), await raw.get(keys.answer(akey_a)))
        await raw.set(keys.inflight(akey_b), await raw.get(keys.inflight(akey_a)))
        assert await gw.stored_answer(akey_b) is None and await gw.stored_answer(akey_a) is not None
        h = {"Authorization": f"Bearer {key_b}", "X-Workstation": s.workstation, "Idempotency-Key": idem, "X-Deadline-Ms": "600"}
        async with s.http.post(s.gateway_url + "/api/v1/BasicData/Register", json={}, headers=h) as r:
            body_b = await r.json(content_type=None)
            assert r.headers.get("Idempotent-Replayed") is None
        assert r.status == 202 and body_b["statusCode"] == 9408 and "name" not in body_b  # not A's patient: no answer for B's key
        # A still gets its own answer.
        st, again = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={"Authorization": f"Bearer {key_a}", "X-Workstation": s.workstation, "Idempotency-Key": idem})
        assert st == 200 and again == body_a
        assert s.store.calls["BasicData/Register"] == 1
        # Device-session records are bound the same way.
        sealed = gw.box.seal(b"{}", answer_aad(akey_a))
        with pytest.raises(Exception, match="not sealed with this bus key"):
            gw.box.open(sealed, answer_aad(akey_b))
    await raw.aclose()
    await bus.close()
