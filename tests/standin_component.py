"""A stand-in for the NHI's official 6.0 component (https://localhost:5066), for the bridge's tests.

Written only from the NHI's manual (the seed, ``/work/shared/seeds/000_...txt``) and the public
facts about how HIS code calls the real component (``nhi-public-facts.md`` sections 3.2, 3.3a),
not from this project's agent: its paths, bodies, answers, codes and quirks are those sources'.

- Paths and bodies: facts 3.2 (``Status``, ``Initial``, ``Finalize``, ``sam/v1/Verification``,
  the four ``Signature`` endpoints with ``{"serviceType"}``, ``hpc/v1/Verification/Hpc {"pin"}``,
  ``hpc/v1/Logout``, ``hpc/v1/Basic`` (the seed's HCA page: CardId, IdNo, CName, EName), ``hc/v1/Basic``, ``hc/v1/Pin``, ``hc/v1/Logout``,
  ``hc/v1/Verification/VirtualHc {"token"}``, ``hc/v1/VirtualHc/ReadBasic {"token"}``).
- Status: ``{"status": {"initialized", "sam": {"status"}, "hpc": {"status"}, "hc": {"status"}}}``
  (facts 3.2: sam 2 = authenticated, hpc 3 = PIN verified, 0 = not inserted).
- States and what each function needs: the seed's tables (功能項目 初始化 SAM HCA HC): SAM
  verification 1 -> 2; HPC PIN 2 -> 3 (SAM 2), logout 3 -> 0; virtual HC 0 -> 2 (SAM 2), logout
  N -> 0; SAM signature SAM 2; HPC signature SAM 2 + HCA 3; HC signature SAM 2 + HC 2; three-card
  signature SAM 2 + HCA 3 + HC 2. A cloud SAM verifies itself at Initial (seed: 雲端安全模組會嘗試自動驗證).
- Codes (facts 3.4): 1000 not initialised, 1001 already initialised (on Initial), 1301 SAM not
  authenticated, 1402 insert the HPC and verify, 1410 HPC PIN verify failed, 1501 HC not ready,
  1520 virtual HC token; every coded answer is HTTP 200 (facts 3.3a).
- Quirks of the seed's examples, kept on purpose: the HC signature answers ``samid`` /
  ``hospitalid`` (the HC page's screenshot) and ``clientId`` for the card number (the business
  API page's example), with no ``statusCode``; the SAM, HPC and three-card signatures answer
  camelCase with ``statusCode: 0`` (the Swagger examples).

Its own TLS certificate (self-signed, ``localhost`` and 127.0.0.1), as the installer ships
``cshis6.crt``. It signs with its own SAM key; the test registers that key with the simulator
(``POST /test/v1/Sam/Register``), whose signature format (``nhigw.contracts.signing``) is the
one thing taken from this project: the real format is not public.

Test controls (not part of the 6.0 API): ``insert`` / ``remove`` cards, ``delay_s`` (answer
late), ``broken`` / ``broken_paths`` (HTTP 500 with an HTML page), ``answers`` (another JSON body), ``start`` / ``stop`` on a fixed port, ``calls``
(what it was asked).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from nhigw.contracts import signing

# The seed's own test identities (its screenshots)
SAM_ID, HOSPITAL_ID = "001000000103", "3501200000"
HC = {"cardId": "000073898381", "idNo": "Z299999929", "name": "測試十", "birthday": "0920315", "sex": "F", "identityStatus": "3", "dateIssue": "1050217"}
HPC = {"hpcId": "000000329470", "hpcIdNo": "C123456789"}
HPC_PIN = "12345678"


def self_signed(dir_: Path) -> tuple[Path, Path]:
    """The component's own certificate and key (PEM files in ``dir_``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt, pem = dir_ / "cshis6.crt", dir_ / "cshis6.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return crt, pem


@dataclass
class Standin:
    cert: Path
    key_file: Path
    sam_key: rsa.RSAPrivateKey
    port: int = 0  # 0: the kernel picks one at the first start; a restart binds the same again
    # cards in the readers
    sam_in: bool = True
    hpc_in: bool = True
    hc_in: bool = True
    vhc_tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    # states
    initialized: bool = False
    sam: int = 0
    hpc_verified: bool = False
    hpc_logged_out: bool = False
    vhc: dict[str, str] | None = None
    # test controls
    delay_s: float = 0.0
    broken: bool = False
    broken_paths: set[str] = field(default_factory=set)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> the JSON it answers instead (HTTP 200)
    calls: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def public_pem(self) -> str:
        return self.sam_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    # ------------------------------------------------------------------ states as the seed numbers them

    def sam_state(self) -> int:
        return self.sam if self.initialized and self.sam_in else 0

    def hpc_state(self) -> int:
        if not (self.initialized and self.hpc_in) or self.hpc_logged_out:
            return 0
        if self.hpc_verified:
            return 3
        return 2 if self.sam_state() == 2 else 1

    def hc_state(self) -> int:
        if not self.initialized:
            return 0
        if self.vhc is not None:
            return 2
        if not self.hc_in:
            return 0
        return 2 if self.sam_state() == 2 else 1

    def insert(self, kind: str) -> None:
        setattr(self, f"{kind}_in", True)
        if kind == "hpc":
            self.hpc_verified = self.hpc_logged_out = False

    def remove(self, kind: str) -> None:
        setattr(self, f"{kind}_in", False)
        if kind == "hpc":
            self.hpc_verified = False

    # ------------------------------------------------------------------ answers

    @staticmethod
    def coded(code: int, **fields: Any) -> web.Response:
        return web.json_response({**fields, "statusCode": code})  # HTTP 200 whatever the code (facts 3.3a)

    def _need(self, sam: int = 0, hpc: int = 0, hc: int = 0) -> web.Response | None:
        if not self.initialized:
            return self.coded(1000)
        if sam and self.sam_state() < sam:
            return self.coded(1301)
        if hpc and self.hpc_state() < hpc:
            return self.coded(1402)
        if hc and self.hc_state() < hc:
            return self.coded(1501)
        return None

    def _sign(self, service_type: str, hc: bool, hpc: bool) -> dict[str, str]:
        rnd = base64.b64encode(os.urandom(8)).decode()
        card = self.vhc or HC
        fields = {"serviceType": service_type, "clientRandom": rnd, "samId": SAM_ID, "hospitalId": HOSPITAL_ID,
                  "hcId": card["cardId"] if hc else None, "hcIdNo": card["idNo"] if hc else None,
                  "hpcId": HPC["hpcId"] if hpc else None, "hpcIdNo": HPC["hpcIdNo"] if hpc else None}
        sig = self.sam_key.sign(signing.canonical_message(**fields), padding.PKCS1v15(), hashes.SHA256())
        return {"signature": base64.b64encode(sig).decode(), **{k: v for k, v in fields.items() if v is not None}}

    @web.middleware
    async def _controls(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append(f"{request.method} {request.path}")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.path in self.answers:
            return web.json_response(self.answers[request.path])
        if self.broken or request.path in self.broken_paths:
            return web.Response(status=500, text="<html><body>Internal Server Error</body></html>", content_type="text/html")
        return await handler(request)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._controls])
        r = app.router

        async def status(_req: web.Request) -> web.Response:
            return self.coded(0, status={"initialized": self.initialized, "sam": {"status": self.sam_state()}, "hpc": {"status": self.hpc_state()}, "hc": {"status": self.hc_state()}})

        async def initial(_req: web.Request) -> web.Response:
            if self.initialized:
                return self.coded(1001)
            self.initialized = True
            self.sam = 2 if self.sam_in else 0  # a cloud SAM verifies itself
            return self.coded(0)

        async def finalize(_req: web.Request) -> web.Response:
            self.initialized, self.sam, self.hpc_verified, self.vhc = False, 0, False, None
            return self.coded(0)

        async def sam_verify(_req: web.Request) -> web.Response:
            if not self.initialized:
                return self.coded(1000)
            if not self.sam_in:
                return self.coded(1300)
            self.sam = 2
            return self.coded(0)

        async def hpc_verify(req: web.Request) -> web.Response:
            if (refused := self._need(sam=2, hpc=2)) is not None:
                return refused
            if (await self._body(req)).get("pin") != HPC_PIN:
                return self.coded(1410)
            self.hpc_verified = True
            return self.coded(0)

        async def hpc_logout(_req: web.Request) -> web.Response:
            if (refused := self._need(sam=2, hpc=3)) is not None:
                return refused
            self.hpc_verified, self.hpc_logged_out = False, True
            return self.coded(0)

        async def hpc_basic(_req: web.Request) -> web.Response:
            if (refused := self._need(sam=2, hpc=3)) is not None:
                return refused
            return self.coded(0, cardId=HPC["hpcId"], idNo=HPC["hpcIdNo"], cName="測試醫師", eName="")

        async def hc_basic(_req: web.Request) -> web.Response:
            if (refused := self._need(sam=2, hc=2)) is not None:
                return refused
            card = self.vhc or HC
            return self.coded(0, **card)

        async def hc_logout(_req: web.Request) -> web.Response:
            if not self.initialized:
                return self.coded(1000)
            self.vhc = None
            return self.coded(0)

        async def vhc(req: web.Request, verify: bool) -> web.Response:
            if (refused := self._need(sam=2)) is not None:
                return refused
            card = self.vhc_tokens.get(str((await self._body(req)).get("token", "")))
            if card is None:
                return self.coded(1520)
            if verify:
                self.vhc = card
                return self.coded(0)
            return self.coded(0, **{k: v for k, v in card.items() if k != "dateIssue"})

        async def vhc_verify(req: web.Request) -> web.Response:
            return await vhc(req, True)

        async def vhc_read(req: web.Request) -> web.Response:
            return await vhc(req, False)

        def signer(hc: bool, hpc: bool, quirky: bool = False) -> Any:
            async def handler(req: web.Request) -> web.Response:
                if (refused := self._need(sam=2, hpc=3 if hpc else 0, hc=2 if hc else 0)) is not None:
                    return refused
                st = str((await self._body(req)).get("serviceType", "01"))
                fields = self._sign(st, hc, hpc)
                if quirky:  # the seed's HC-signature examples: samid / hospitalid, clientId, no statusCode
                    return web.json_response({"signature": fields["signature"], "clientRandom": fields["clientRandom"], "samid": fields["samId"],
                                              "hospitalid": fields["hospitalId"], "serviceType": st, "clientId": fields["hcId"], "hcIdNo": fields["hcIdNo"]})
                return self.coded(0, **fields)

            return handler

        r.add_get("/api/common/v1/Status", status)
        r.add_post("/api/common/v1/Initial", initial)
        r.add_post("/api/common/v1/Finalize", finalize)
        r.add_post("/api/sam/v1/Verification", sam_verify)
        r.add_post("/api/sam/v1/Signature", signer(False, False))
        r.add_post("/api/hpc/v1/Verification/Hpc", hpc_verify)
        r.add_post("/api/hpc/v1/Signature", signer(False, True))
        r.add_delete("/api/hpc/v1/Logout", hpc_logout)
        r.add_get("/api/hpc/v1/Basic", hpc_basic)
        r.add_get("/api/hc/v1/Basic", hc_basic)
        r.add_delete("/api/hc/v1/Logout", hc_logout)
        r.add_post("/api/hc/v1/Verification/VirtualHc", vhc_verify)
        r.add_post("/api/hc/v1/VirtualHc/ReadBasic", vhc_read)
        r.add_post("/api/hc/v1/Signature/Hc", signer(True, False, quirky=True))
        r.add_post("/api/hc/v1/Signature/HpcHc", signer(True, True))
        return app

    # ------------------------------------------------------------------ process-like lifetime

    async def start(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key_file)
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=ctx, reuse_address=True).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        """Stopped and started again: a fresh process, not initialised."""
        await self.stop()
        self.initialized, self.sam, self.hpc_verified, self.hpc_logged_out, self.vhc = False, 0, False, False, None
        await self.start()
