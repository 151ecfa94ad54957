"""Helpers for the simulator's tests: a SAM key of the test's own and a running simulator.

``Signer`` signs business calls the way the agent does (``contracts.signing``) for any
card holder, so rule tests can reach patients that have no virtual card. Tests that need
signatures from real cards use ``tests/stack.py`` instead.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nhigw.contracts import signing
from nhigw.contracts.routes import lookup
from nhigw.sim.app import create_app
from nhigw.sim.persist import StateFile
from nhigw.sim.store import SimStore
from tests.helpers import serving

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SAM_ID = "001000099901"
HOSPITAL_ID = "3501299999"
DOCTOR = {"hpcId": "000000329470", "hpcIdNo": "C123456789"}
TEST10 = {"hcId": "000073898381", "hcIdNo": "Z299999929"}


@dataclass
class Signer:
    samId: str = SAM_ID
    hospitalId: str = HOSPITAL_ID
    key: rsa.RSAPrivateKey = field(default=_KEY)

    def public_pem(self) -> str:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, service_type: str, *, hc: dict[str, str] | None = None, hpc: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        rnd = base64.b64encode(os.urandom(16)).decode()
        ids = {**(hc or {}), **(hpc or {})}
        msg = signing.canonical_message(serviceType=service_type, clientRandom=rnd, samId=self.samId, hospitalId=self.hospitalId, **ids)
        sig = base64.b64encode(self.key.sign(msg, padding.PKCS1v15(), hashes.SHA256())).decode()
        return {"signature": sig, "clientRandom": rnd, "samId": self.samId, "hospitalId": self.hospitalId, **ids, **extra}

    def for_route(self, path: str, *, hc: dict[str, str] | None = TEST10, hpc: dict[str, str] | None = DOCTOR, **extra: Any) -> dict[str, Any]:
        """A signature of the kind and serviceType ``path`` needs (HC / HPC ids only where it needs them)."""
        r = lookup(path)
        assert r is not None, path
        kind = r.kind.value
        return self.sign(r.serviceType, hc=hc if "hc" in kind.replace("hpc", "") else None, hpc=hpc if "hpc" in kind else None, **extra)


@dataclass
class Sim:
    url: str
    store: SimStore
    http: aiohttp.ClientSession
    signer: Signer

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url + path, json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.url + path) as r:
            return r.status, await r.json(content_type=None)

    async def call(self, route: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        """A signed business call: keyword args go to ``Signer.for_route`` (``hc=``, ``hpc=``, route fields)."""
        return await self.post("/api/v1/" + route, self.signer.for_route(route, **kw), headers=headers)


@contextlib.asynccontextmanager
async def running_sim(store: SimStore | None = None, *, admin: bool = True, dedupe_writes: bool = False, state: StateFile | None = None) -> AsyncIterator[Sim]:
    """A simulator on loopback; with ``state`` it saves to that SQLite file as ``nhigw sim --state`` does."""
    store = store or SimStore.seeded()
    store.admin_enabled = admin
    store.dedupe_writes = dedupe_writes
    signer = Signer()
    store.register_sam(signer.samId, signer.hospitalId, signer.public_pem())
    async with serving(create_app(store, state)) as url, aiohttp.ClientSession() as http:
        yield Sim(url, store, http, signer)
