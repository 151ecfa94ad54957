"""Issue 19 section 1: an agent whose card backend is the official 6.0 component (``nhigw.agent.bridge``).

Real parts: a real redis-server bus, the gateway and the simulator on loopback HTTP, the stand-in
component (``tests/standin_component.py``, written from the seed and the public facts only) on
loopback HTTPS with its own certificate, and, for the whole flow, ``nhigw agent --component`` as a
process. The same bridge then runs against this project's own agent as the component.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from nhigw.agent.app import create_app as agent_app
from nhigw.agent.bridge import ComponentBridge, ComponentTrust, RefusedSessions, normalise_signature, parse_states, status_code
from nhigw.agent.buslink import BusLink
from nhigw.agent.cardio import InProcessBackend
from nhigw.agent.core import Agent
from nhigw.agent.dc import DcClient
from nhigw.agent.sessions import SessionLink
from nhigw.bus.enrol import enrol
from nhigw.bus.redis import RedisBus
from nhigw.common.tls import server_context
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import CardStates
from nhigw.gateway.app import create_app as gateway_app
from nhigw.gateway.service import Gateway, GatewaySettings
from nhigw.sim.app import create_app as sim_app
from nhigw.sim.store import SimStore
from nhigw.vcard.bank import CardFactory, VirtualReaderBank
from nhigw.vcard.cards import SamCard
from nhigw.vcard.identities import Identities, KeyStore
from tests.helpers import Proc, eventually, free_port, insecure_ssl, site_url, start_site
from tests.standin_component import HC, HPC_PIN, Standin, self_signed

pytestmark = pytest.mark.redis

WS = "ws-07"
SAM_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the stand-in's SAM (slow to make: once)
_KEYS = KeyStore(None)



# ------------------------------------------------------------------ pure: reading the component's answers


def test_signature_fields_are_read_in_every_spelling_the_seed_shows() -> None:
    seed_hc_page = {"signature": "c2ln", "clientRandom": "cg==", "samid": "001000000103", "hospitalid": "3501200000", "serviceType": "01", "clientId": "000073898381", "hcIdNo": "Z299999929"}
    assert normalise_signature(seed_hc_page) == {"signature": "c2ln", "clientRandom": "cg==", "samId": "001000000103", "hospitalId": "3501200000", "serviceType": "01", "hcId": "000073898381", "hcIdNo": "Z299999929"}
    swagger = {"signature": "s", "clientRandom": "r", "samId": "1", "hospitalId": "2", "hpcId": "3", "hpcIdNo": "C1", "hcId": "4", "hcIdNo": "Z", "statusCode": 0}
    assert normalise_signature(swagger) == {k: v for k, v in swagger.items() if k != "statusCode"}
    assert normalise_signature({"signature": "", "samId": 12}) == {}  # empty and non-string values are not fields


def test_status_codes_and_states_are_read_tolerantly() -> None:
    assert status_code({"statusCode": 1501}) == 1501 and status_code({"StatusCode": "0000"}) == 0 and status_code({"signature": "x"}) == 0
    for bad in ([1], {"statusCode": None}, {"statusCode": "x"}, {"statusCode": True}):
        with pytest.raises(ValueError):
            status_code(bad)
    facts = {"status": {"initialized": True, "sam": {"status": 2}, "hpc": {"status": 3}, "hc": {"status": 0}}, "statusCode": 0}
    assert parse_states(facts) == CardStates(initialized=True, sam=2, hpc=3, hc=0)
    assert parse_states({"Initialized": True, "SAM": 2, "hpc": {"Status": "1"}, "hc": 2, "reader": "CASTLES EZ100PU 0"}) == CardStates(initialized=True, sam=2, hpc=1, hc=2, reader="CASTLES EZ100PU 0")
    assert parse_states({}) == CardStates()


# ------------------------------------------------------------------ the stack: sim + gateway on Redis + stand-in + bridge


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("standin"))


@dataclass
class Bridged:
    gw: Gateway
    gateway_url: str
    store: SimStore
    standin: Standin
    bridge: ComponentBridge | None
    http: aiohttp.ClientSession
    his: aiohttp.ClientSession  # the HIS on the workstation, calling the component directly (verify=False, as pyMedical)

    async def call(self, method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.request(method, url, **kw) as r:
            return r.status, await r.json(content_type=None)

    async def business(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return await self.call("POST", f"{self.gateway_url}/api/v1/{path}", json=body or {}, headers={"X-Workstation": WS})

    async def forward(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        kw: dict[str, Any] = {"json": body} if body is not None else {}
        return await self.call(method, f"{self.gateway_url}/api/workstations/{WS}/{path}", **kw)

    async def local(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.his.request(method, f"{self.standin.url}/api/{path}", json=body if body is not None else {}) as r:
            r.raise_for_status()
            data: dict[str, Any] = await r.json(content_type=None)
            return data

    async def seen(self) -> dict[str, Any] | None:
        """The workstation as the gateway (and its dashboard) sees it."""
        _, body = await self.call("GET", f"{self.gateway_url}/api/workstations")
        return next((w for w in body["workstations"] if w["workstation"] == WS), None)

    async def online_with(self, **states: int) -> bool:
        w = await self.seen()
        return bool(w and w["online"] and all(w["states"][k] == v for k, v in states.items()))

    async def offline(self) -> bool:
        w = await self.seen()
        return bool(w is None or not w["online"])


@contextlib.asynccontextmanager
async def bridged(redis_server: str, prefix: str, certs: tuple[Path, Path], *, in_process: bool = True, **settings: Any) -> AsyncIterator[tuple[Bridged, BusKeys, RedisBus]]:
    """Sim + gateway on Redis + the stand-in; with ``in_process`` the bridged agent runs here (fault tests), else the caller starts it."""
    store = SimStore.seeded()
    standin = Standin(certs[0], certs[1], SAM_KEY)
    store.register_sam("001000000103", "3501200000", standin.public_pem())  # what the NHI knows of the clinic's SAM
    await standin.start()
    runners = [await start_site(sim_app(store))]
    bus = RedisBus(redis_server)
    keys = BusKeys(prefix)
    gw = Gateway(bus, GatewaySettings(prefix=prefix, gateway_key=os.urandom(32), cloud_url=site_url(runners[0]), **settings))
    runners.append(await start_site(gateway_app(gw)))
    bridge = link = slink = None
    http = aiohttp.ClientSession()
    his = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure_ssl()))
    try:
        if in_process:
            bridge = ComponentBridge(standin.url, WS, ComponentTrust(standin.url, ca_file=certs[0]), poll_s=0.2, timeout_s=1.0)
            ident = await enrol(bus, keys, WS, await gw.agents.issue_token(WS), timeout_s=10)
            await bridge.start()
            link = BusLink(bridge, bus, keys, ident, interval_s=0.2, forward=bridge.forward)
            await link.start()
            slink = SessionLink(RefusedSessions(bridge), bus, keys, ident)
            await slink.start()
        yield Bridged(gw, site_url(runners[1]), store, standin, bridge, http, his), keys, bus
    finally:
        for x in (slink, link, bridge):
            if x is not None:
                await x.stop()
        await http.close()
        await his.close()
        await standin.stop()
        for r in reversed(runners):
            await r.cleanup()
        await bus.close()


async def _ready(s: Bridged) -> None:
    """The HIS's opening, forwarded from the LAN through the gateway: Initial (the cloud SAM verifies itself)."""
    assert await eventually(s.online_with, 10)
    status, body = await s.forward("POST", "common/v1/Initial", {})
    assert (status, body["statusCode"]) == (200, 0), body
    assert await eventually(lambda: s.online_with(sam=2, hc=2, hpc=2), 5)


# ------------------------------------------------------------------ the whole flow, with the agent as a process


async def test_one_call_through_the_official_component(redis_server: str, bus_prefix: str, certs: tuple[Path, Path], tmp_path: Path) -> None:
    """HIS -> gateway -> ``nhigw agent --component`` -> stand-in -> signature -> gateway -> simulator -> audit -> HIS."""
    async with bridged(redis_server, bus_prefix, certs, in_process=False) as (s, keys, _bus):
        token = await s.gw.agents.issue_token(WS)
        health = free_port()
        agent = Proc("bridge", ["agent", "--component", s.standin.url, "--component-ca", str(certs[0]), "--component-poll-s", "0.2", "--workstation", WS,
                                "--redis", redis_server, "--bus-prefix", bus_prefix, "--enrol-token", token, "--data-dir", str(tmp_path / "data"), "--port", str(health)], tmp_path)
        try:
            await asyncio.to_thread(agent.wait_ready)
            await _ready(s)
            status, body = await s.call("GET", f"http://127.0.0.1:{health}/readyz")
            assert status == 200 and body["checks"]["component"] is True, body

            # HC signature (the stand-in answers it in the seed's spellings: samid, hospitalid, clientId)
            status, body = await s.business("BasicData/Register")
            assert (status, body["statusCode"]) == (200, 0), body
            assert (body["cardSn"], body["name"], body["idCardNum"]) == (HC["cardId"], HC["name"], HC["idNo"])
            assert "POST /api/hc/v1/Signature/Hc" in s.standin.calls

            # the component's own codes reach the HIS unchanged: HPC signature before the PIN (1402), a wrong PIN (1410)
            status, body = await s.business("CriticalIllness/Query", {"format": "0"})
            assert (status, body["statusCode"]) == (200, 1402), body
            status, body = await s.forward("POST", "hpc/v1/Verification/Hpc", {"pin": "00000000"})
            assert (status, body["statusCode"]) == (200, 1410), body
            status, body = await s.forward("POST", "hpc/v1/Verification/Hpc", {"pin": HPC_PIN})
            assert (status, body["statusCode"]) == (200, 0), body
            assert await eventually(lambda: s.online_with(hpc=3), 5)  # the dashboard's live states: noticed after the call
            status, body = await s.business("CriticalIllness/Query", {"format": "0"})  # three-card signature
            assert (status, body["statusCode"]) == (200, 0), body
            status, body = await s.business("BasicData/Register")  # HC signature, the doctor verified: named in the audit
            assert (status, body["statusCode"]) == (200, 0), body
            status, body = await s.forward("GET", "hc/v1/Basic")  # a component call forwarded, answered by the component
            assert (status, body["statusCode"], body["cardId"]) == (200, 0, HC["cardId"]), body

            records = [r for r in await s.gw.audit.records() if r.workstation == WS]
            done = [(r.route, r.hpc) for r in records if r.statusCode == 0]
            assert done == [("BasicData/Register", None), ("CriticalIllness/Query", "0000****9470"), ("BasicData/Register", "0000****9470")], done
            assert all(r.agentId == s.gw.agents.agent_id(WS) for r in records)
            assert all(HC["idNo"] not in r.model_dump_json() for r in records)  # masked
            assert "--component-ca" not in agent.log() and "component_unavailable" not in agent.log()
        finally:
            agent.stop()


# ------------------------------------------------------------------ outcomes: stopped, slow, restarted, errors, the HIS in between


async def test_component_stopped_then_restarted(redis_server: str, bus_prefix: str, certs: tuple[Path, Path]) -> None:
    async with bridged(redis_server, bus_prefix, certs) as (s, _keys, _bus):
        await _ready(s)
        assert (await s.business("BasicData/Register"))[1]["statusCode"] == 0
        w = await s.seen()
        assert w is not None and w["states"]["reader"] == "official 6.0 component", w
        await s.standin.stop()
        assert await eventually(s.offline, 5)  # at once (presence "leaving"), not after the registry's silence
        w = await s.seen()
        assert w is not None and "not answering" in w["states"]["reader"], w  # the dashboard says why
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 9400), body
        status, body = await s.forward("GET", "common/v1/Status")
        assert (status, body["statusCode"]) == (200, 9400), body

        await s.standin.restart()  # a fresh component: not initialised
        assert await eventually(lambda: s.online_with(sam=0, hc=0), 5)
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 1000), body  # its own code, not a state the agent remembered
        await _ready(s)
        assert (await s.business("BasicData/Register"))[1]["statusCode"] == 0


async def test_component_slow_is_9401_then_hung_is_offline(redis_server: str, bus_prefix: str, certs: tuple[Path, Path]) -> None:
    async with bridged(redis_server, bus_prefix, certs) as (s, _keys, _bus):
        await _ready(s)
        s.standin.delay_s = 3.0  # the bridge waits 1 s
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 9401), body
        status, body = await s.forward("GET", "hc/v1/Basic")
        assert (status, body["statusCode"]) == (200, 9401), body
        # slow is not gone, but a component that lets three Status polls in a row go unanswered has stopped answering
        assert await eventually(s.offline, 10)
        w = await s.seen()
        assert w is not None and "not answering within 1 s" in w["states"]["reader"], w
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 9400), body
        s.standin.delay_s = 0.0
        assert await eventually(lambda: s.online_with(sam=2), 5)
        assert (await s.business("BasicData/Register"))[1]["statusCode"] == 0


async def test_component_answering_errors(redis_server: str, bus_prefix: str, certs: tuple[Path, Path]) -> None:
    async with bridged(redis_server, bus_prefix, certs) as (s, _keys, _bus):
        await _ready(s)
        s.standin.broken = True  # HTTP 500 and an HTML page, for every path
        assert await eventually(s.offline, 5)  # its Status is no 6.0 answer: no states to show
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 9400), body
        s.standin.broken = False
        assert await eventually(lambda: s.online_with(sam=2), 5)
        # Status fine, the signature not a 6.0 answer: 9416 (never a 500), the workstation stays online
        s.standin.broken_paths = {"/api/hc/v1/Signature/Hc"}
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 9416) and "HTTP 500" in body["detail"], body
        assert s.gw.registry.online(WS)
        s.standin.broken_paths = set()
        s.standin.answers["/api/hc/v1/Signature/Hc"] = {"statusCode": 0}  # "success" without a signature
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 9416) and "lacks signature" in body["detail"], body
        s.standin.answers["/api/hc/v1/Signature/Hc"] = {"statusCode": 1501, "message": "健保卡未就緒"}  # a 6.0 error: unchanged
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 1501), body
        s.standin.answers.clear()
        assert (await s.business("BasicData/Register"))[1]["statusCode"] == 0


async def test_the_his_changes_the_state_between_two_gateway_calls(redis_server: str, bus_prefix: str, certs: tuple[Path, Path]) -> None:
    async with bridged(redis_server, bus_prefix, certs) as (s, _keys, _bus):
        await _ready(s)
        other = {"cardId": "000073898382", "idNo": "A234567890", "name": "歐陽測試", "birthday": "1000101", "sex": "M", "identityStatus": "3"}
        s.standin.vhc_tokens["QR-1"] = other
        s.standin.remove("hc")
        # The HIS on the workstation verifies a virtual HC itself (verify=False, as pyMedical): the gateway's next call signs for it
        assert (await s.local("POST", "hc/v1/Verification/VirtualHc", {"token": "QR-1"}))["statusCode"] == 0
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"], body.get("idCardNum")) == (200, 0, other["idNo"]), body
        # ... and logs it out before its next read (facts 3.3a): the gateway's next one-call request gets the component's 1501
        assert (await s.local("DELETE", "hc/v1/Logout"))["statusCode"] == 0
        status, body = await s.business("BasicData/Register")
        assert (status, body["statusCode"]) == (200, 1501), body
        assert await eventually(lambda: s.online_with(hc=0), 5)  # and the dashboard shows it within a poll


async def test_device_sessions_are_refused_on_a_bridged_workstation(redis_server: str, bus_prefix: str, certs: tuple[Path, Path]) -> None:
    async with bridged(redis_server, bus_prefix, certs) as (s, _keys, _bus):
        await _ready(s)
        status, body = await s.call("POST", f"{s.gateway_url}/api/sessions", json={"device": "bed-12", "workstation": WS})
        assert body["statusCode"] == 9406 and "official 6.0 component" in body.get("detail", ""), (status, body)


async def test_a_changed_component_certificate_is_refused(redis_server: str, bus_prefix: str, certs: tuple[Path, Path], tmp_path: Path) -> None:
    """Pinned on first use; another certificate later (another key, same name) takes the workstation offline."""
    async with bridged(redis_server, bus_prefix, certs) as (s, keys, bus):
        assert s.bridge is not None
        await s.bridge.stop()
        trust = ComponentTrust(s.standin.url, pin_dir=tmp_path)
        s.bridge.trust = trust  # the same bridge, now trusting on first use
        await s.bridge.start()
        await _ready(s)
        assert s.standin.url.split("//")[1] in (tmp_path / "component-pins.json").read_text()
        other = self_signed(tmp_path)
        await s.standin.stop()
        s.standin.cert, s.standin.key_file = other
        with capture_logs() as logs:
            await s.standin.start()
            assert await eventually(s.offline, 5)
            status, body = await s.business("BasicData/Register")
            assert (status, body["statusCode"]) == (200, 9400), body
            assert s.bridge.problem == "certificate changed"
            polls = s.bridge.polls
            assert await eventually(lambda: s.bridge is not None and s.bridge.polls >= polls + 3, 5)  # refused again: logged once
        assert [e["event"] for e in logs].count("component_certificate_changed") == 1

        # A CA file that is not the component's: refused the same way, and said so
        await s.bridge.stop()
        s.bridge.trust = ComponentTrust(s.standin.url, ca_file=certs[0])
        s.bridge.problem = None
        await s.bridge.start()
        assert await eventually(lambda: s.bridge is not None and s.bridge.problem == "certificate not trusted", 5)
        status, body = await s.call("GET", f"{s.gateway_url}/api/workstations/{WS}/common/v1/Status")
        assert (status, body["statusCode"]) == (200, 9400), body


# ------------------------------------------------------------------ the same bridge against this project's own agent


async def test_the_bridge_agrees_with_this_projects_agent(redis_server: str, bus_prefix: str, certs: tuple[Path, Path], tmp_path: Path) -> None:
    """This project's agent (virtual cards, its own TLS) as the component: the bridge reports its states and signs through it."""
    factory = CardFactory(Identities.load(), _KEYS)
    bank = VirtualReaderBank()
    for reader, spec in zip(bank.names, factory.default_specs(), strict=False):
        bank.insert(reader, factory.make(spec))
    async with bridged(redis_server, bus_prefix, certs, in_process=False) as (s, keys, bus):
        sam = factory.make(f"sam:{next(iter(factory.identities.sams))}")
        assert isinstance(sam, SamCard)
        s.store.register_sam(sam.ident.samId, sam.ident.hospitalId, _KEYS.public_pem(sam.ident.samId))
        sim_url = s.gw.settings.cloud_url
        agent = Agent(backend=InProcessBackend(bank), dc=DcClient(sim_url), workstation="own")
        agent.start_monitor(0.05)
        runner = await start_site(agent_app(agent), ssl_context=server_context(tmp_path / "own", "own"))
        url = site_url(runner, "https")
        bridge = ComponentBridge(url, WS, ComponentTrust(url, pin_dir=tmp_path), poll_s=0.2, timeout_s=2.0)
        ident = await enrol(bus, keys, WS, await s.gw.agents.issue_token(WS), timeout_s=10)
        await bridge.start()
        link = BusLink(bridge, bus, keys, ident, interval_s=0.2, forward=bridge.forward)
        await link.start()
        def agree() -> bool:
            own = agent.card_states()
            return bridge.card_states() == own.model_copy(update={"reader": f"{own.reader} (official 6.0 component)" if own.reader else "official 6.0 component"})

        try:
            assert await eventually(s.online_with, 10)
            for path in ("common/v1/Initial", "sam/v1/Verification"):
                status, body = await s.forward("POST", path, {})
                assert (status, body["statusCode"]) == (200, 0), (path, body)
            assert await eventually(lambda: agree() and agent.sam_state == 2, 5)
            status, body = await s.business("BasicData/Register")
            assert (status, body["statusCode"], body["idCardNum"]) == (200, 0, "Z299999929"), body
            status, body = await s.forward("POST", "hpc/v1/Verification/Hpc", {"pin": "12345678"})
            assert (status, body["statusCode"]) == (200, 0), body
            assert await eventually(lambda: agree() and agent.hpc_state == 3, 5)
            status, body = await s.business("CriticalIllness/Query", {"format": "0"})
            assert (status, body["statusCode"]) == (200, 0), body
            bank.remove(bank.names[1])  # the HC is pulled out at the workstation
            assert await eventually(lambda: agent.hc_state == 0 and agree(), 5)
            status, body = await s.business("BasicData/Register")
            own_code = (await s.forward("POST", "hc/v1/Signature/Hc", {"serviceType": "01"}))[1]["statusCode"]
            assert body["statusCode"] == own_code != 0, body  # the agent's own refusal, unchanged through the bridge
        finally:
            await link.stop()
            await bridge.stop()
            await agent.stop()
            await runner.cleanup()


def test_the_command_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    """Plain http, a CA file that is not one, no gateway: each a clear exit, never a bridge that skips verification."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NHIGW_")}
        return subprocess.run([sys.executable, "-m", "nhigw", "agent", "--data-dir", str(tmp_path), *args], capture_output=True, text=True, timeout=60, env=env)

    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    cases = {
        ("--component", "http://127.0.0.1:5066", "--redis", "redis://127.0.0.1:1/0"): "https only",
        ("--component", "https://127.0.0.1:5066", "--component-ca", str(junk), "--redis", "redis://127.0.0.1:1/0"): "not a readable PEM certificate",
        ("--component", "https://127.0.0.1:5066"): "needs --redis",
    }
    for args, said in cases.items():
        res = run(*args)
        assert res.returncode != 0 and said in res.stderr, (args, res.returncode, res.stderr[-500:])
