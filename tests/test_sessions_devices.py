"""Device sessions: readerless devices use virtual HCs through a cloud-SAM agent (``nhigw.agent.sessions``,
``nhigw.gateway.sessions``).

One stack in the test's loop on real loopback HTTP: the simulator, a physical-card workstation
(``tests.stack``: in-process SAM + HC, one-call with ``X-Workstation``), two agents with no
reader at all (``NoReaderBackend``) holding cloud SAMs issued by the simulator, and the gateway,
on a real Redis (first test) or the in-memory bus (bounds test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nhigw.agent.buslink import BusLink
from nhigw.agent.core import Agent
from nhigw.agent.dc import DcClient
from nhigw.agent.sessions import NoReaderBackend, ServedSessions, SessionLink
from nhigw.bus import Bus, MemoryBus
from nhigw.bus.enrol import enrol
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import SignatureKind
from nhigw.gateway.audit import mask_patient
from nhigw.gateway.upstream import UpstreamSettings
from tests.helpers import eventually, ok
from tests.stack import Stack, running_stack

HOSPITAL = "3501200000"
HEADER = "X-Device-Session"


@pytest.fixture(autouse=True)
def _no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NHIGW_MASTER_KEY", raising=False)


@dataclass
class Devices:
    s: Stack
    agents: dict[str, Agent]
    sessions: dict[str, ServedSessions]
    bus: Bus
    keys: BusKeys

    async def gw(self, method: str, path: str, session: str | None = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        headers = {HEADER: session} if session else {}
        return await self.s.call(method, self.s.gateway_url + path, headers=headers, **kw)

    async def open(self, device: str, **kw: Any) -> dict[str, Any]:
        status, body = await self.gw("POST", "/api/sessions", json={"device": device, **kw})
        assert status == 200, body
        return body

    async def qr(self, card_no: str) -> str:
        status, body = await self.s.call("POST", self.s.sim_url + "/test/v1/VirtualHc/QrCode", json={"cardNo": card_no})
        assert status == 200, body
        return str(body["token"])

    async def business(self, route: str, session: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return await self.gw("POST", "/api/v1/" + route, session, json=body or {})


@contextlib.asynccontextmanager
async def devices_stack(tmp_path: Path, bus: Bus, prefix: str, **settings: Any) -> AsyncIterator[Devices]:
    settings.setdefault("upstream", UpstreamSettings(rate_per_s=1e6, rate_burst=1e6))
    async with running_stack(bus=bus, prefix=prefix, gateway_key=os.urandom(32), **settings) as s:
        await s.ready()
        keys = BusKeys(prefix)
        agents: dict[str, Agent] = {}
        sessions: dict[str, ServedSessions] = {}
        links: list[Any] = []
        try:
            for n, ws in enumerate(("dev-a", "dev-b")):
                # A virtual workstation: a cloud SAM from the simulator's test-card API, no reader at all.
                status, f = await s.call("POST", s.sim_url + "/test/v1/CloudSam/Issue", json={"hospitalId": HOSPITAL, "samId": f"90100000004{n}"})
                assert status == 200, f
                agent = Agent(backend=NoReaderBackend(), dc=DcClient(s.sim_url), workstation=ws, data_dir=tmp_path / ws)
                agent.cloud_sams.import_file(json.dumps(f).encode())
                await agent.initial(None)
                assert agent.cloud is not None and agent.sam_state == 2 and agent.readers_in_use == []
                ident = await enrol(bus, keys, ws, await s.gateway.agents.issue_token(ws), timeout_s=10)
                link = BusLink(agent, bus, keys, ident, interval_s=0.2)
                sessions[ws] = ServedSessions(agent)
                slink = SessionLink(sessions[ws], bus, keys, ident, sweep_s=0.2)
                await link.start()
                await slink.start()
                links += [slink, link]
                agents[ws] = agent
            assert await eventually(lambda: all(s.gateway.registry.online(w) for w in agents)), "the devices' agents are not online"
            yield Devices(s, agents, sessions, bus, keys)
        finally:
            for link in links:
                await link.stop()
            for agent in agents.values():
                await agent.stop()
                await agent.dc.close()


async def apply_test_cards(d: Devices, n: int) -> list[dict[str, Any]]:
    """``n`` new virtual test cards from the simulator's test-card API, applied with dev-a's cloud SAM."""
    d.s.store.test_cards_max = n
    cards = []
    for i in range(n):
        sig = await d.agents["dev-a"].sign(SignatureKind.SAM, "06")
        body = {**sig.model_dump(exclude={"statusCode"}, exclude_none=True), "sex": "MF"[i % 2], "birthday": f"0{80 + i}0101", "name": f"裝置病人{i:02d}"}
        status, card = await d.s.call("POST", d.s.sim_url + "/test/v1/ApplyVirtualHc/Apply", json=body)
        assert status == 200, card
        cards.append(card)
    return cards


async def test_twenty_device_sessions_each_its_own_patient_over_redis(tmp_path: Path, redis_server: str, bus_prefix: str) -> None:
    from nhigw.bus.redis import RedisBus

    async with RedisBus(redis_server) as bus, devices_stack(tmp_path, bus, bus_prefix) as d:
        gw = d.s.gateway
        # Every sealed message on the agents' session channels and the gateway's reply channel, raw.
        raw: list[bytes] = []
        taps = [await bus.subscribe(ch) for ch in (d.keys.sessions("dev-a"), d.keys.sessions("dev-b"), d.keys.replies(gw.sessions.rpc.node_id))]

        async def tap(sub: Any) -> None:
            async for _ch, data in sub:
                raw.append(data)

        tap_tasks = [asyncio.create_task(tap(t)) for t in taps]
        cards = await apply_test_cards(d, 20)
        assert len({c["idCardNum"] for c in cards}) == 20

        async def one_device(i: int, card: dict[str, Any]) -> dict[str, Any]:
            opened = await d.open(f"tablet-{i:02d}")
            tok = opened["token"]
            status, body = await d.gw("POST", "/api/sessions/hc/v1/Verification/VirtualHc", tok, json={"token": await d.qr(card["cardSn"])})
            assert status == 200 and body["states"]["hc"] == 2 and body["states"]["virtual"] is True, body
            reg = await d.business("BasicData/Register", tok)
            nxt = await d.business("SequelNumber/Next", tok, {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"})
            return {"opened": opened, "card": card, "reg": reg, "next": nxt}

        results = await asyncio.gather(*(one_device(i, c) for i, c in enumerate(cards)))

        # Every answer belongs to its own session's patient.
        served = {r["opened"]["workstation"] for r in results}
        assert served == {"dev-a", "dev-b"}  # spread over both virtual workstations
        seqs = set()
        for r in results:
            status, reg = r["reg"]
            assert status == 200 and reg["statusCode"] == 0, reg
            assert (reg["idCardNum"], reg["cardSn"], reg["name"]) == (r["card"]["idCardNum"], r["card"]["cardSn"], r["card"]["name"])
            status, nxt = r["next"]
            assert status == 200 and nxt["statusCode"] == 0 and nxt["sequenceNumber"].startswith("W"), nxt
            seqs.add(nxt["sequenceNumber"])
            # The sequence number was written to this session's patient, and to no one else.
            patient = d.s.store.patients_by_id[r["card"]["idCardNum"]]
            assert [t.treatmentNumber for t in patient.treatments] == [nxt["treatmentNumber"]]
        assert len(seqs) == 20

        # The agents' own workstation state is untouched: sessions live beside it.
        for agent in d.agents.values():
            assert agent.vhc is None and agent.hc_state == 0
        assert sum(len(s) for s in d.sessions.values()) == 20


        # The physical-card workstation works exactly as before, on the same gateway.
        status, reg = await d.s.gw("/api/v1/BasicData/Register", workstation=d.s.workstation)
        assert status == 200 and reg["cardSn"] == "000073898381", reg

        # Audit: every business record names its device session and serving agent, with that session's patient (masked).
        status, audit = await d.gw("GET", "/api/audit")
        by_session: dict[str, list[dict[str, Any]]] = {}
        for rec in audit["records"]:
            if rec.get("deviceSession"):
                by_session.setdefault(rec["deviceSession"], []).append(rec)
        for r in results:
            recs = by_session[r["opened"]["sessionId"]]
            business = [x for x in recs if x["eventType"] == "rest"]
            assert sorted(x["route"] for x in business) == ["BasicData/Register", "SequelNumber/Next"]
            assert {x["route"] for x in recs if x["eventType"] == "session"} == {"sessions/open", "sessions/verify"}
            for x in recs:
                assert x["workstation"] == r["opened"]["workstation"] and x["agentId"] == gw.agents.agent_id(x["workstation"]) and x["agentId"]
            assert {x["patient"] for x in business} == {mask_patient(r["card"]["idCardNum"])}
        status, verified = await d.gw("GET", "/api/audit/verify")
        assert status == 200 and verified["ok"] is True

        # The count in /metrics (every replica's sessions, through Redis), and one closed.
        async def device_sessions() -> float:
            async with d.s.http.get(d.s.gateway_url + "/metrics") as r:
                return next(float(line.split()[1]) for line in (await r.text()).splitlines() if line.startswith("nhigw_gateway_device_sessions "))

        assert await device_sessions() == 20
        status, _ = await d.gw("DELETE", "/api/sessions", results[0]["opened"]["token"])
        assert status == 200 and await device_sessions() == 19

        # Nothing personal in clear on the bus or in Redis: sealed envelopes, sealed session records.
        for t in tap_tasks:
            t.cancel()
        for sub in taps:
            await sub.close()
        assert len(raw) >= 20 * 4
        blob = b"\n".join(raw)
        values = []
        async for key in bus.client.scan_iter(match=f"{bus_prefix}:*"):
            if await bus.client.type(key) == b"string":
                values.append(await bus.client.get(key) or b"")
        stored = b"\n".join(values)
        for c in cards:
            for secret in (c["idCardNum"], c["cardSn"], c["name"]):
                assert secret.encode() not in blob and secret.encode() not in stored
        assert b"dst_" not in stored  # session tokens are kept as hashes only


async def test_closed_or_expired_session_cannot_sign_used_token_refused_and_transfer_moves_the_card(tmp_path: Path, bus_prefix: str) -> None:
    async with devices_stack(tmp_path, MemoryBus(), bus_prefix, sessions_per_device=2, sessions_per_hospital=6) as d:
        gw = d.s.gateway
        cards = await apply_test_cards(d, 3)
        x = await d.open("phone-1", workstation="dev-a")
        y = await d.open("phone-2", workstation="dev-b")
        assert (x["workstation"], y["workstation"]) == ("dev-a", "dev-b")

        qr = await d.qr(cards[0]["cardSn"])
        assert ok(await d.gw("POST", "/api/sessions/hc/v1/Verification/VirtualHc", x["token"], json={"token": qr}))
        status, body = await d.business("BasicData/Register", y["token"])
        assert status == 200 and body["statusCode"] == 1501, body  # y has no card: nothing leaked from x

        # Transfer across sessions and agents: x exports (logged out there), y on the other agent imports.
        status, code = await d.gw("GET", "/api/sessions/hc/v1/VirtualHc/Import", x["token"])
        assert status == 200 and code["token"], code
        status, body = await d.gw("POST", "/api/sessions/hc/v1/VirtualHc/Import", y["token"], json={"token": code["token"]})
        assert status == 200 and body["states"]["hc"] == 2, body
        status, reg = await d.business("BasicData/Register", y["token"])
        assert status == 200 and reg["idCardNum"] == cards[0]["idCardNum"], reg
        status, body = await d.business("BasicData/Register", x["token"])
        assert status == 200 and body["statusCode"] == 1501, body  # logged out where it was
        status, body = await d.gw("GET", "/api/sessions", x["token"])
        assert status == 200 and body["states"]["hc"] == 0
        _, body = await d.gw("POST", "/api/sessions/hc/v1/Verification/VirtualHc", x["token"], json={"token": qr})
        assert body["statusCode"] == 1525, body  # the card moved: its QR token logs in nowhere any more
        z = await d.open("phone-3")
        status, body = await d.gw("POST", "/api/sessions/hc/v1/VirtualHc/Import", z["token"], json={"token": code["token"]})
        assert status == 200 and body["statusCode"] == 3244, body  # a transfer code is single-use too

        # Closed: the token is dead at the gateway and the agent forgot the session's card.
        status, body = await d.gw("DELETE", "/api/sessions", y["token"])
        assert status == 200
        status, body = await d.business("SequelNumber/Next", y["token"], {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"})
        assert status == 200 and body["statusCode"] == 9410, body
        reply = await gw.sessions.rpc.session("dev-b", "sign", y["sessionId"], timeout_s=5, kind=SignatureKind.HC, serviceType="01")
        assert not reply.ok and reply.error is not None and reply.error.statusCode == 9410

        # Expired: idle past its timeout, at the gateway and on the agent alike.
        e = await d.open("phone-4", workstation="dev-a", idle_s=0.4)
        assert ok(await d.gw("POST", "/api/sessions/hc/v1/Verification/VirtualHc", e["token"], json={"token": await d.qr(cards[1]["cardSn"])}))
        assert ok(await d.business("BasicData/Register", e["token"]))
        await asyncio.sleep(0.7)
        status, body = await d.business("BasicData/Register", e["token"])
        assert status == 200 and body["statusCode"] == 9410, body
        reply = await gw.sessions.rpc.session("dev-a", "sign", e["sessionId"], timeout_s=5, kind=SignatureKind.HC, serviceType="01")
        assert not reply.ok and reply.error is not None and reply.error.statusCode == 9410

        # Bounds: two live sessions per device, six per hospital (x, z, and these).
        assert (await d.open("kiosk-1"))["sessionId"]
        assert (await d.open("kiosk-1"))["sessionId"]
        status, body = await d.gw("POST", "/api/sessions", json={"device": "kiosk-1"})
        assert status == 200 and body["statusCode"] == 9409, body
        assert (await d.open("kiosk-2"))["sessionId"]
        assert (await d.open("kiosk-3"))["sessionId"]
        status, body = await d.gw("POST", "/api/sessions", json={"device": "kiosk-4"})
        assert status == 200 and body["statusCode"] == 9409, body
        assert sum(len(s) for s in d.sessions.values()) == 6  # the refused ones were closed on the agent too

        # Another token, a forged one, or none: 9410, never another session's data.
        for bad in ("dst_forged", ""):
            status, body = await d.gw("GET", "/api/sessions", bad or None)
            assert status == 200 and body["statusCode"] == 9410

        # Audit names the session and the agent for the transfer and the close too.
        _, audit = await d.gw("GET", "/api/audit")
        ev = {(r["deviceSession"], r["route"]): r for r in audit["records"] if r.get("deviceSession")}
        assert ev[(x["sessionId"], "sessions/export")]["workstation"] == "dev-a"
        assert ev[(y["sessionId"], "sessions/import")]["workstation"] == "dev-b"
        assert ev[(y["sessionId"], "sessions/close")]["agentId"] == gw.agents.agent_id("dev-b")
        assert ev[(y["sessionId"], "BasicData/Register")]["patient"] == mask_patient(cards[0]["idCardNum"])


async def test_mobile_hca_login_belongs_to_its_session_only(tmp_path: Path, bus_prefix: str) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.test_agent_mobilehca import login, make_ca, make_leaf

    ca, ca_key = make_ca("NHIGW Test HCA CA")
    cert, key = make_leaf(ca, ca_key)
    async with devices_stack(tmp_path, MemoryBus(), bus_prefix) as d:
        trusted = tmp_path / "dev-a" / "hca" / "trusted"
        trusted.mkdir(parents=True)
        (trusted / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        doc = await d.open("ward-tablet", workstation="dev-a")
        other = await d.open("ward-tablet-2", workstation="dev-a")
        for sess, card in ((doc, "000073898381"), (other, "000073898382")):
            assert ok(await d.gw("POST", "/api/sessions/hc/v1/Verification/VirtualHc", sess["token"], json={"token": await d.qr(card)}))
        status, body = await d.gw("POST", "/api/sessions/hpc/v1/Verification/MobileHca", doc["token"], json=login(cert, key))
        assert status == 200 and body["states"]["hpc"] == 3 and body["states"]["mobile"] is True, body
        # A three-card (SAM + HCA + HC) route: the doctor's session signs, the other session on the same agent has no HCA.
        status, allergic = await d.business("AllergicMedicines/Query", doc["token"])
        assert status == 200 and allergic["statusCode"] == 0, allergic
        # An HC-signed write (as 6.0 HIS code signs it): no HCA fields sent, yet the audit names the session's HCA.
        _, seq = await d.business("SequelNumber/Next", doc["token"], {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"})
        _, wrote = await d.business("Treatment/WriteCodeFee", doc["token"], {"treatmentDateTime": seq["treatmentDateTime"], "mainCode": "J00"})
        assert wrote["statusCode"] == 0 and "hpcIdNo" not in wrote, wrote
        status, body = await d.business("AllergicMedicines/Query", other["token"])
        assert status == 200 and body["statusCode"] == 1402, body
        assert d.agents["dev-a"].hpc_state == 0  # the workstation's own HCA state is untouched
        status, body = await d.gw("POST", "/api/sessions/hpc/v1/Logout", doc["token"])
        assert status == 200 and body["states"]["hpc"] == 0
        status, body = await d.business("AllergicMedicines/Query", doc["token"])
        assert status == 200 and body["statusCode"] == 1402, body
        _, audit = await d.gw("GET", "/api/audit")
        signed = [r for r in audit["records"] if r.get("deviceSession") == doc["sessionId"] and r["route"] == "AllergicMedicines/Query" and r["statusCode"] == 0]
        assert len(signed) == 1 and signed[0]["hpc"] and signed[0]["agentId"] == d.s.gateway.agents.agent_id("dev-a")
        (write,) = [r for r in audit["records"] if r.get("deviceSession") == doc["sessionId"] and r["route"] == "Treatment/WriteCodeFee"]
        assert write["hpc"] == signed[0]["hpc"]
