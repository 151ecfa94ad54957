"""The simulated NHI data centre (DC) and test-card API. Protocol: ``proto/dc-protocol.md``.

DC (what an agent calls):

- ``/dc/v1/SamAuth/Challenge`` and ``/Verify``: SAM verification (challenge-response).
- ``/dc/v1/VirtualHc/Verify``: resolve a virtual HC QR token (or transfer code) to the card's
  data. Authenticated by the SAM (``DcSamSigned``: a signature over ``signing.dc_message``).
  A QR token is good for ``MAX_VERIFICATIONS`` (10) resolutions (``VirtualHc/ReadBasic`` and
  ``Verification/VirtualHc`` alike) within its lifetime, all at the institution it was first
  shown to: 6.0 HIS code logs the virtual HC out before every HC read and verifies the one
  scanned token again for each step of a visit (public facts 3.3a), and the 6.0 error table
  has 1525 「Token 已超過驗證次數」 for the bound. Beyond it 1525; after its expiry 1018; at
  another institution 3244 (used there). Once the card was transferred away (below), the QR
  token is finished too (1525). A transfer code is used once (3244 on reuse). A malformed
  token is 1521, a forged one 1522. Every successful use opens a DC-side *session* for the
  virtual HC.
- ``/dc/v1/VirtualHc/Transfer``: the workstation holding a virtual HC session asks for its
  transfer code (a new single-use token); the session is closed (1525 afterwards).
- ``GET /dc/v1/ServerDateTime``: the DC's clock (a cloud SAM's ``ServerDateTime``).

Test-card API (the seed's 測試卡 API, here for the simulator's own test institutions):

- ``/test/v1/Sam/Register``: provision a virtual SAM's public key.
- ``/test/v1/CloudSam/Issue``: issue a cloud SAM file (a fresh RSA key; its public key is registered).
- ``/test/v1/VirtualHc/QrCode``: a QR token for a test patient (by ``cardNo`` or ``idNo``, checked
  against ``birthday`` when given), single use, 5-minute expiry by default (the press: 5 minutes).
  The seed's options 是否有PIN / 是否驗PIN are ``hasPin`` / ``verifyPin``: the token stands for a
  card with a PIN set, entered (or not) when the holder opened the virtual card in the app; the
  DC's ``VirtualHc/Verify`` answers them as ``pinSet`` / ``pinVerified``, and the agent's card
  status shows them for the virtual HC.

Token format (opaque to agents and HIS; only this DC parses it): ``NHIVHC1.<b64url(jti 16 |
exp 8 | kind 1)>.<b64url(HMAC-SHA256(key, body)[:16])>``. The card it stands for is kept on
the DC side, so the QR code carries no personal data. The HMAC key is this simulator's own.

The VHC state lives in ``VhcAuthority`` under ``app[VHC]`` (not in ``SimStore``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nhigw.common.http import json_response, parse_body
from nhigw.common.roctime import roc_datetime
from nhigw.contracts import signing
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    CloudSamFile,
    CloudSamIssueRequest,
    DcSamSigned,
    DcServerDateTimeResponse,
    SamAuthChallengeRequest,
    SamAuthChallengeResponse,
    SamAuthVerifyRequest,
    SamAuthVerifyResponse,
    SamRegistration,
    VirtualHcQrRequest,
    VirtualHcQrResponse,
    VirtualHcTransferRequest,
    VirtualHcVerifyRequest,
    VirtualHcVerifyResponse,
)
from nhigw.sim.checks import note, refuse
from nhigw.sim.store import Institution, Patient, SimStore

STORE = web.AppKey("store", SimStore)

TOKEN_PREFIX = "NHIVHC1"
KIND_QR, KIND_TRANSFER = b"q", b"t"


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


MAX_VERIFICATIONS = 10  # per QR token, at one institution, within its lifetime


@dataclass
class _Token:
    cardSn: str
    exp: float
    uses: int = 0
    hospitalId: str | None = None  # where it was first shown
    closed: bool = False  # the card was transferred away
    pinSet: bool = False  # test-card QR option 是否有PIN
    pinVerified: bool = False  # test-card QR option 是否驗PIN


@dataclass
class _Session:
    cardSn: str
    samId: str
    token: bytes = b""  # the QR token's jti the session was opened with
    transferred: bool = False


@dataclass
class VhcAuthority:
    """Issues and resolves virtual HC tokens; keeps the DC-side sessions of verified virtual HCs."""

    key: bytes = field(default_factory=lambda: os.urandom(32))
    clock: Callable[[], float] = time.time
    tokens: dict[bytes, _Token] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    max_tokens: int = 100_000
    max_verifications: int = MAX_VERIFICATIONS

    def issue(self, card_sn: str, ttl_s: float, kind: bytes = KIND_QR, *, pin: tuple[bool, bool] = (False, False)) -> tuple[str, float]:
        now = self.clock()
        if len(self.tokens) >= self.max_tokens:  # drop expired ones first
            for k in [k for k, t in self.tokens.items() if t.exp < now]:
                del self.tokens[k]
        jti = os.urandom(16)
        exp = now + ttl_s
        body = jti + struct.pack(">d", exp) + kind
        mac = hmac.new(self.key, body, hashlib.sha256).digest()[:16]
        self.tokens[jti] = _Token(card_sn, exp, pinSet=pin[0], pinVerified=pin[0] and pin[1])
        return f"{TOKEN_PREFIX}.{_b64u(body)}.{_b64u(mac)}", exp

    def take(self, token: str, hospital_id: str) -> tuple[str, bytes]:
        """The card number a token stands for and the token's id; one verification is counted
        (a transfer code is used up). Raises the matching StatusError."""
        parts = token.strip().split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise StatusError(Code.VHC_FORMAT, "not a virtual HC QR code of this DC")
        try:
            body, mac = _unb64u(parts[1]), _unb64u(parts[2])
        except (ValueError, TypeError) as exc:
            raise StatusError(Code.VHC_FORMAT, "QR code is not base64url") from exc
        if len(body) != 25 or not hmac.compare_digest(hmac.new(self.key, body, hashlib.sha256).digest()[:16], mac):
            raise StatusError(Code.VHC_SIGNATURE, "QR code signature does not verify")
        jti, (exp,), kind = body[:16], struct.unpack(">d", body[16:24]), body[24:]
        entry = self.tokens.get(jti)
        if entry is None:
            raise StatusError(Code.VHC_TOKEN, "QR code unknown to the DC")
        limit = 1 if kind == KIND_TRANSFER else self.max_verifications
        if entry.uses and entry.hospitalId != hospital_id:
            raise StatusError(Code.VHC_QR_USED, "QR code already used at another institution")
        if entry.uses and kind == KIND_TRANSFER:
            raise StatusError(Code.VHC_QR_USED, "transfer code already used")
        if exp < self.clock():
            raise StatusError(Code.QRCODE_EXPIRED, "QR code expired")
        if entry.closed:
            raise StatusError(Code.VHC_TOKEN_COUNT, "this virtual HC was transferred to another device; scan a new QR code")
        if entry.uses >= limit:
            raise StatusError(Code.VHC_TOKEN_COUNT, f"QR code verified {entry.uses} times (at most {limit}); scan a new one")
        entry.uses += 1
        entry.hospitalId = hospital_id
        return entry.cardSn, jti

    def open_session(self, card_sn: str, sam_id: str, token: bytes = b"") -> str:
        sid = secrets.token_urlsafe(18)
        self.sessions[sid] = _Session(card_sn, sam_id, token)
        return sid

    def transfer(self, session_id: str, sam_id: str, ttl_s: float = 300.0) -> tuple[str, float]:
        s = self.sessions.get(session_id)
        if s is None or s.samId != sam_id:
            raise StatusError(Code.VHC_TOKEN, "no such virtual HC session for this SAM")
        if s.transferred:
            raise StatusError(Code.VHC_TOKEN_COUNT, "this virtual HC was already transferred")
        s.transferred = True
        origin = self.tokens.get(s.token)
        if origin is not None:  # the card moved: its QR token logs in nowhere any more
            origin.closed = True
        return self.issue(s.cardSn, ttl_s, KIND_TRANSFER, pin=(origin.pinSet, origin.pinVerified) if origin else (False, False))


VHC = web.AppKey("vhc", VhcAuthority)


def unknown_sam(sam_id: str, hospital_id: str | None = None) -> str:
    """Say what failed when the data centre does not know a SAM (not "1300 SAM must be in state 1",
    which points at the card): e.g. a simulator started separately from the virtual SAM's process."""
    where = f" for institution {hospital_id}" if hospital_id else ""
    return f"unknown SAM {sam_id} at the data centre{where}: its key is not registered there (simulator: POST /test/v1/Sam/Register, or start it with the virtual cards)"


def check_sam_signed(st: SimStore, body: DcSamSigned, kind: str, *fields: str) -> None:
    """A DC request must come from a registered SAM of an institution in contract (3100 / 130x);
    each check is noted for the developer console as ``auth.check_signature``'s are."""
    entry = st.sam_keys.get(body.samId)
    if entry is None or entry[0] != body.hospitalId:
        raise refuse("sam", StatusError(Code.SIGNATURE_INVALID, "unknown SAM for this institution"))
    note("sam", True, f"{body.samId} @ {body.hospitalId}")
    inst = st.institutions.get(body.hospitalId)
    if inst and inst.contract != "active":
        raise refuse("contract", StatusError({"over": Code.SAM_CONTRACT_OVER, "suspended": Code.SAM_SUSPENDED, "cancelled": Code.SAM_CANCELLED}[inst.contract]))
    note("contract", True)
    if not signing.verify(entry[1], signing.dc_message(kind, *fields, body.clientRandom, body.samId, body.hospitalId), body.signature):
        raise refuse("signature", StatusError(Code.SIGNATURE_INVALID, "SAM signature of the DC request does not verify"))
    note("signature", True)
    if not st.use_random(body.clientRandom):
        raise refuse("clientRandom", StatusError(Code.SIGNATURE_REUSED, "this clientRandom was used before: a signature is good for one call"))
    note("clientRandom", True)


def _patient_by_card(st: SimStore, card_sn: str) -> Patient:
    for p in st.patients_by_id.values():
        if p.cardSn == card_sn:
            return p
    raise StatusError(Code.CARD_CANCELLED, "no insured person with this card")


def _new_cloud_sam(req: CloudSamIssueRequest) -> CloudSamFile:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    sam_id = req.samId or "9010" + "".join(secrets.choice("0123456789") for _ in range(8))
    return CloudSamFile(
        samId=sam_id, hospitalId=req.hospitalId, hospitalName=req.hospitalName, hospitalShortName=req.hospitalShortName,
        privateKeyPem=pem, issuedAt=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


async def sam_challenge(req: web.Request) -> web.Response:
    body = await parse_body(req, SamAuthChallengeRequest, empty_ok=False)
    st = req.app[STORE]
    if body.samId not in st.sam_keys:
        raise StatusError(Code.SIGNATURE_INVALID, unknown_sam(body.samId))
    return json_response(SamAuthChallengeResponse(challenge=st.new_challenge(body.samId)))


async def sam_verify(req: web.Request) -> web.Response:
    body = await parse_body(req, SamAuthVerifyRequest, empty_ok=False)
    st = req.app[STORE]
    entry = st.sam_keys.get(body.samId)
    if entry is None or entry[0] != body.hospitalId:
        raise refuse("sam", StatusError(Code.SIGNATURE_INVALID, unknown_sam(body.samId, body.hospitalId)))
    note("sam", True, f"{body.samId} @ {body.hospitalId}")
    if not st.take_challenge(body.challenge, body.samId):
        raise refuse("challenge", StatusError(Code.SIGNATURE_INVALID, "the SAM's challenge is unknown or expired at the data centre: verify again"))
    note("challenge", True)
    raw = base64.b64decode(body.challenge)
    # The SAM signed sha256(challenge) with INTERNAL AUTHENTICATE: verify over the challenge itself.
    if not signing.verify(entry[1], raw, body.signature):
        raise refuse("signature", StatusError(Code.SIGNATURE_INVALID, "SAM authentication failed"))
    note("signature", True)
    inst = st.institutions[body.hospitalId]
    if inst.contract != "active":
        code = {"over": Code.SAM_CONTRACT_OVER, "suspended": Code.SAM_SUSPENDED, "cancelled": Code.SAM_CANCELLED}[inst.contract]
        raise refuse("contract", StatusError(code))
    note("contract", True)
    return json_response(SamAuthVerifyResponse(hospitalName=inst.hospitalName, hospitalShortName=inst.hospitalShortName, serverDateTime=roc_datetime(st.now())))


async def vhc_verify(req: web.Request) -> web.Response:
    body = await parse_body(req, VirtualHcVerifyRequest, empty_ok=False)
    st, vhc = req.app[STORE], req.app[VHC]
    check_sam_signed(st, body, "VirtualHc/Verify", body.purpose, body.token)
    card_sn, jti = vhc.take(body.token, body.hospitalId)
    p = _patient_by_card(st, card_sn)
    tok = vhc.tokens[jti]
    return json_response(VirtualHcVerifyResponse(
        cardId=p.cardSn, idNo=p.idCardNum, name=p.name, birthday=p.birthday, sex=p.sex, identityStatus=p.identityStatus,
        sessionId=vhc.open_session(p.cardSn, body.samId, jti), pinSet=tok.pinSet, pinVerified=tok.pinVerified,
    ))


async def vhc_transfer(req: web.Request) -> web.Response:
    body = await parse_body(req, VirtualHcTransferRequest, empty_ok=False)
    st, vhc = req.app[STORE], req.app[VHC]
    check_sam_signed(st, body, "VirtualHc/Transfer", body.sessionId)
    token, exp = vhc.transfer(body.sessionId, body.samId)
    return json_response(VirtualHcQrResponse(token=token, expiresAt=exp))


async def server_date_time(req: web.Request) -> web.Response:
    return json_response(DcServerDateTimeResponse(serverDateTime=roc_datetime(req.app[STORE].now())))


async def test_register_sam(req: web.Request) -> web.Response:
    body = await parse_body(req, SamRegistration, empty_ok=False)
    req.app[STORE].register_sam(body.samId, body.hospitalId, body.publicKeyPem)
    return json_response({"statusCode": 0})


async def test_issue_cloud_sam(req: web.Request) -> web.Response:
    body = await parse_body(req, CloudSamIssueRequest, empty_ok=False)
    st = req.app[STORE]
    inst = st.institutions.get(body.hospitalId)
    if inst is not None:  # a known institution: its names go into the file
        body = body.model_copy(update={"hospitalName": body.hospitalName or inst.hospitalName, "hospitalShortName": body.hospitalShortName or inst.hospitalShortName})
    else:
        st.institutions[body.hospitalId] = Institution(body.hospitalId, body.hospitalName, body.hospitalShortName)
    f = await asyncio.to_thread(_new_cloud_sam, body)
    key = serialization.load_pem_private_key(f.privateKeyPem.encode(), password=None)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    st.register_sam(f.samId, f.hospitalId, pub)
    return json_response(f)


async def test_vhc_qrcode(req: web.Request) -> web.Response:
    body = await parse_body(req, VirtualHcQrRequest, empty_ok=False)
    st = req.app[STORE]
    if body.idNo:
        p = st.patients_by_id.get(body.idNo)
    elif body.cardNo:
        p = next((x for x in st.patients_by_id.values() if x.cardSn == body.cardNo), None)
    else:
        raise StatusError(Code.PARAM_MISSING, "cardNo or idNo required")
    if p is None or (body.cardNo and p.cardSn != body.cardNo) or (body.birthday and body.birthday != p.birthday):
        raise StatusError(Code.PARAM_VALUE, "no test patient with this card number / ID and birthday")
    if body.verifyPin and not body.hasPin:
        raise StatusError(Code.PARAM_VALUE, "verifyPin needs hasPin (a PIN can only be verified when the card has one)")
    token, exp = req.app[VHC].issue(p.cardSn, body.ttl_s, pin=(body.hasPin, body.verifyPin))
    return json_response(VirtualHcQrResponse(token=token, expiresAt=exp))


ROUTES: list[web.RouteDef] = [
    web.post("/dc/v1/SamAuth/Challenge", sam_challenge),
    web.post("/dc/v1/SamAuth/Verify", sam_verify),
    web.post("/dc/v1/VirtualHc/Verify", vhc_verify),
    web.post("/dc/v1/VirtualHc/Transfer", vhc_transfer),
    web.get("/dc/v1/ServerDateTime", server_date_time),
    web.post("/test/v1/Sam/Register", test_register_sam),
    web.post("/test/v1/CloudSam/Issue", test_issue_cloud_sam),
    web.post("/test/v1/VirtualHc/QrCode", test_vhc_qrcode),
]


def add_dc_routes(app: web.Application) -> None:
    if VHC not in app:
        app[VHC] = VhcAuthority()
    app.router.add_routes(ROUTES)
