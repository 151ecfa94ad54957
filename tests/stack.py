"""The whole stack in the test's own event loop, on real loopback HTTP servers.

Sim, agent (in-process virtual cards in a ``VirtualReaderBank``) and gateway, on a
``MemoryBus`` or a real Redis bus. Used by tests that drive the APIs quickly; the
process-level tests (``test_e2e_processes.py``) prove the same on real PC/SC.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from nhigw.agent.app import create_app as agent_app
from nhigw.agent.buslink import BusLink
from nhigw.agent.cardio import InProcessBackend
from nhigw.agent.core import Agent
from nhigw.agent.dc import DcClient
from nhigw.bus import Bus, MemoryBus
from nhigw.bus.enrol import enrol
from nhigw.contracts.buskeys import BusKeys
from nhigw.gateway.app import create_app as gateway_app
from nhigw.gateway.service import Gateway, GatewaySettings
from nhigw.sim.app import create_app as sim_app
from nhigw.sim.store import SimStore
from nhigw.vcard.bank import CardFactory, VirtualReaderBank
from nhigw.vcard.cards import SamCard
from nhigw.vcard.identities import Identities, KeyStore
from tests.helpers import eventually, site_url, start_site

_KEYS = KeyStore(None)  # RSA key generation is slow: one key store for the whole test session


@dataclass
class Stack:
    sim_url: str
    agent_url: str
    gateway_url: str
    store: SimStore
    agent: Agent
    bank: VirtualReaderBank
    factory: CardFactory
    http: aiohttp.ClientSession
    workstation: str
    gateway: Gateway
    link: BusLink

    async def call(self, method: str, url: str, **kw: object) -> tuple[int, dict]:
        async with self.http.request(method, url, **kw) as r:  # type: ignore[arg-type]
            return r.status, await r.json(content_type=None)

    async def agent_call(self, method: str, path: str, **kw: object) -> tuple[int, dict]:
        if method in ("POST", "PUT") and "json" not in kw:  # as HIS code sends them (the agent refuses other content types)
            kw["headers"] = {"Content-Type": "application/json", **kw.get("headers", {})}  # type: ignore[dict-item]
        return await self.call(method, self.agent_url + path, **kw)

    async def gw(self, path: str, body: object = None, workstation: str | None = None, **kw: object) -> tuple[int, dict]:
        headers = {"X-Workstation": workstation} if workstation else {}
        return await self.call("POST", self.gateway_url + path, json=body if body is not None else {}, headers=headers, **kw)

    async def ready(self) -> None:
        """Initial + SAM verification, as an HIS does first."""
        assert (await self.agent_call("POST", "/api/common/v1/Initial", json={}))[1]["statusCode"] == 0
        assert (await self.agent_call("POST", "/api/sam/v1/Verification", json={}))[1]["statusCode"] == 0


_site = start_site  # by this name: test_proto_drift patches it to see every app the stack serves


@contextlib.asynccontextmanager
async def running_stack(
    *, bus: Bus | None = None, prefix: str = "nhigw", gateway_key: bytes | None = None, workstation: str = "ws-01", cards: list[str] | None = None, **settings: object
) -> AsyncIterator[Stack]:
    """``settings`` are extra ``GatewaySettings`` fields (e.g. ``clients``, ``upstream``)."""
    factory = CardFactory(Identities.load(), _KEYS)
    store = SimStore.seeded()
    bank = VirtualReaderBank()
    for reader, spec in zip(bank.names, cards if cards is not None else factory.default_specs(), strict=False):
        card = factory.make(spec)
        bank.insert(reader, card)
    sam = factory.make(f"sam:{next(iter(factory.identities.sams))}")
    assert isinstance(sam, SamCard)
    store.register_sam(sam.ident.samId, sam.ident.hospitalId, _KEYS.public_pem(sam.ident.samId))
    bus = bus or MemoryBus()
    keys = BusKeys(prefix)
    runners = [await _site(sim_app(store))]
    sim_url = site_url(runners[0])
    agent = Agent(backend=InProcessBackend(bank), dc=DcClient(sim_url), workstation=workstation)
    runners.append(await _site(agent_app(agent)))
    agent_url = site_url(runners[1])
    settings.setdefault("cloud_url", sim_url)
    gw = Gateway(bus, GatewaySettings(prefix=prefix, gateway_key=gateway_key, **settings))  # type: ignore[arg-type]
    runners.append(await _site(gateway_app(gw)))
    agent.start_monitor(0.05)
    # Enrolment as in production: the gateway issues a one-time token, the agent trades it for its key.
    ident = await enrol(bus, keys, workstation, await gw.agents.issue_token(workstation), timeout_s=10)
    link = BusLink(agent, bus, keys, ident, interval_s=0.2, component_url=agent_url)
    await link.start()

    async def online() -> bool:
        return gw.registry.online(workstation)

    assert await eventually(online), f"{workstation} did not come online at the gateway"
    http = aiohttp.ClientSession()
    try:
        yield Stack(sim_url, agent_url, site_url(runners[2]), store, agent, bank, factory, http, workstation, gw, link)
    finally:
        await http.close()
        await link.stop()
        await agent.stop()
        for r in reversed(runners):
            await r.cleanup()
