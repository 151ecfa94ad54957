"""Sim + agent (in-process virtual cards or real PC/SC) on loopback HTTP, for the agent's own tests.

No gateway and no bus: the component API is tested on its own, and business calls go
straight to the simulator (the same paths the gateway forwards).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from nhigw.agent.app import create_app as agent_app
from nhigw.agent.cardio import InProcessBackend, ReaderBackend
from nhigw.agent.core import Agent
from nhigw.agent.dc import DcClient
from nhigw.agent.mobilehca import MobileHcaVerifier
from nhigw.sim.app import create_app as sim_app
from nhigw.sim.dc import VHC, VhcAuthority
from nhigw.sim.store import SimStore
from nhigw.vcard.bank import CardFactory, VirtualReaderBank
from nhigw.vcard.identities import Identities, KeyStore
from tests.helpers import site_url, start_site

KEYS = KeyStore(None)  # RSA key generation is slow: one key store for the whole session
SAM = "sam:001000000103"
HC = "hc:000073898381"
HC_PIN = "hc:000073898383"  # PIN 1234
HPC = "hpc:000000329470"  # PIN 12345678, PUK 87654321


@dataclass
class AgentStack:
    sim_url: str
    agent_url: str
    store: SimStore
    vhc: VhcAuthority
    agent: Agent
    bank: VirtualReaderBank
    factory: CardFactory
    http: aiohttp.ClientSession

    async def call(self, method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.request(method, url, **kw) as r:
            return r.status, await r.json(content_type=None)

    async def a(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        if body is not None:
            kw["json"] = body
        elif method in ("POST", "PUT"):  # as HIS code sends them (the agent refuses other content types)
            kw.setdefault("headers", {}).setdefault("Content-Type", "application/json")
        return await self.call(method, self.agent_url + path, **kw)

    async def code(self, method: str, path: str, body: Any = None) -> int:
        return int((await self.a(method, path, body))[1]["statusCode"])

    async def sim(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        return await self.call("POST", self.sim_url + path, json=body)

    async def ready(self, name: str | None = None) -> None:
        assert await self.code("POST", "/api/common/v1/Initial", {"name": name} if name else {}) == 0
        if self.agent.sam_state == 1:
            assert await self.code("POST", "/api/sam/v1/Verification", {}) == 0

    async def qr(self, card_no: str = "000073898381", **kw: Any) -> str:
        status, body = await self.sim("/test/v1/VirtualHc/QrCode", {"cardNo": card_no, **kw})
        assert status == 200, body
        return str(body["token"])

    def insert(self, reader_index: int, spec: str) -> None:
        self.bank.insert(self.bank.names[reader_index], self.factory.make(spec))

    def remove(self, reader_index: int) -> None:
        self.bank.remove(self.bank.names[reader_index])


@contextlib.asynccontextmanager
async def agent_stack(
    cards: list[str] | None = None,
    *,
    data_dir: Path | None = None,
    hca: MobileHcaVerifier | None = None,
    backend: ReaderBackend | None = None,
    monitor_s: float | None = 0.05,
) -> AsyncIterator[AgentStack]:
    factory = CardFactory(Identities.load(), KEYS)
    store = SimStore.seeded()
    bank = VirtualReaderBank(names=[f"nhigw Virtual Reader {i}" for i in range(4)])
    for i, spec in enumerate(cards if cards is not None else [SAM, HC, HPC]):
        if spec:
            bank.insert(bank.names[i], factory.make(spec))
    store.register_sam("001000000103", "3501200000", KEYS.public_pem("001000000103"))
    sapp = sim_app(store)
    runners = [await start_site(sapp)]
    sim_url = site_url(runners[0])
    agent = Agent(backend=backend or InProcessBackend(bank), dc=DcClient(sim_url), workstation="ws-t", data_dir=data_dir, hca_verifier=(lambda: hca) if hca else None)
    runners.append(await start_site(agent_app(agent)))
    if monitor_s:
        agent.start_monitor(monitor_s)
    http = aiohttp.ClientSession()
    try:
        yield AgentStack(sim_url, site_url(runners[1]), store, sapp[VHC], agent, bank, factory, http)
    finally:
        await http.close()
        await agent.stop()
        for r in reversed(runners):
            await r.cleanup()
