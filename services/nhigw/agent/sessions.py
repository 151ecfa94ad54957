"""Device sessions: one agent with a cloud SAM serves many readerless devices at once.

A bedside tablet, a home-care phone or a registration kiosk has no reader and no local
component. It opens a *device session* at the gateway (``nhigw.gateway.sessions``); the
gateway picks an agent that holds a verified cloud SAM (typically ``nhigw agent --no-pcsc``
beside the gateway: a "virtual workstation" with no PC/SC at all) and from then on forwards
that session's card operations to it over the bus, sealed under the agent's key
(``SessionCall`` / ``SessionReply`` on ``BusKeys.sessions(workstation)``).

Per-session card state (``DeviceCards``): each session has its own virtual HC (verified by a
QR token through the DC, or imported with a transfer code) and its own HCA state (a mobile
HCA login), isolated from every other session and from the agent's own workstation state
(``Agent.vhc``, the physical HC/HPC in readers), which this module never reads or changes.
The states follow the seed's columns: SAM is the agent's (the cloud SAM must be verified,
state 2); HCA 3 after a mobile HCA login, else 0; HC 2 with a verified virtual HC, else 0.

Choices (the seed is silent):
- The session's SAM is the agent's cloud SAM only: a physical SAM in a reader is refused
  (1301 with a detail), since device sessions are for agents without readers and a physical
  SAM serialises every signature behind one PC/SC lock.
- A session expires after ``idle_s`` without a call (each call renews it) and is dropped
  here then: its virtual HC and HCA are forgotten. A call on a closed, expired or unknown
  session is 9410. The gateway keeps the same idle timer; either side refusing is enough.
- Bounded: at most ``max_sessions`` live sessions per agent (9409). The gateway bounds
  them per device and per hospital as well.
- Transfer (seed: 匯出轉移碼會自動將原設備改為狀態 0): ``export`` gets the transfer code from
  the DC and logs the virtual HC out of that session at once; any other session, on this
  agent or another, may ``import`` it. The DC refuses a second transfer and, after it, the
  card's QR token (1525), a transfer code already used (3244) and a QR token first shown at
  another institution (3244), so the rule holds across sessions and agents without any
  state shared between agents.
- ID numbers stay here: replies carry states and signatures (which the NHI cloud needs),
  never the patient's basic data; logs mask card numbers and IDs (``nhigw.common.logging``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nhigw.agent.buslink import BusLink
from nhigw.agent.cardio import ReaderGoneError
from nhigw.agent.cards import HcBasic, HpcBasic
from nhigw.agent.cloudsam import CloudSam
from nhigw.agent.core import Agent, CardBackend, VirtualHc, sam_signature
from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.enrol import AgentIdentity
from nhigw.bus.guard import MAX_CALL_BYTES, Drops, Seen, Supervisor, serve
from nhigw.bus.seal import seal_envelope
from nhigw.common.logging import get_logger
from nhigw.contracts import signing
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, StatusError, message
from nhigw.contracts.models import (
    SERVICE_TYPES,
    ErrorBody,
    HcState,
    HpcState,
    MobileHcaRequest,
    SamState,
    SessionCall,
    SessionReply,
    SessionStates,
    SignatureKind,
    SignatureObject,
    VirtualHcExportResponse,
    VirtualHcTransferRequest,
    VirtualHcVerifyRequest,
)

log = get_logger("nhigw.agent.sessions")

# --------------------------------------------------------------------------- no reader at all


class NoReaderBackend:
    """A ``ReaderBackend`` with no readers: the agent runs on a cloud SAM only (``nhigw agent --no-pcsc``)."""

    name = "none"

    async def readers(self) -> list[str]:
        return []

    async def connect(self, reader: str):
        raise ReaderGoneError(reader)

    async def presence(self) -> dict[str, bytes | None]:
        return {}

    async def wait_change(self, timeout_s: float) -> bool:
        await asyncio.sleep(timeout_s)
        return False

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------- per-session cards


@dataclass
class DeviceCards:
    sessionId: str
    device: str
    hospitalId: str
    idle_s: float
    last_used: float  # time.monotonic()
    vhc: VirtualHc | None = None
    hpc: HpcBasic | None = None

    def expired(self, now: float) -> bool:
        return now - self.last_used > self.idle_s

    def expires_at(self) -> float:
        return time.time() + max(0.0, self.idle_s - (time.monotonic() - self.last_used))


class ServedSessions:
    """The device sessions one agent serves, each with its own virtual HC and HCA state."""

    def __init__(self, agent: Agent, *, max_sessions: int = 500, max_idle_s: float = 8 * 3600.0) -> None:
        self.agent = agent
        self.max_sessions = max_sessions
        self.max_idle_s = max_idle_s
        self._s: dict[str, DeviceCards] = {}

    # ------------------------------------------------------------------ bookkeeping

    def __len__(self) -> int:
        self.sweep()
        return len(self._s)

    def sweep(self) -> int:
        """Drop expired sessions; returns how many."""
        now = time.monotonic()
        gone = [sid for sid, s in self._s.items() if s.expired(now)]
        for sid in gone:
            del self._s[sid]
            log.info("device_session_expired", sessionId=sid)
        return len(gone)

    def _get(self, sid: str) -> DeviceCards:
        s = self._s.get(sid)
        now = time.monotonic()
        if s is not None and s.expired(now):
            del self._s[sid]
            log.info("device_session_expired", sessionId=sid)
            s = None
        if s is None:
            raise StatusError(Code.SESSION_GONE, "device session closed, expired or unknown here", sessionId=sid)
        s.last_used = now
        return s

    def _cloud(self) -> CloudSam:
        a = self.agent
        if not a.initialized:
            raise StatusError(Code.NOT_INITIALIZED)
        if a.cloud is None:
            raise StatusError(Code.SAM_MODE2, "device sessions need a cloud SAM on the serving agent")
        if a.sam_state < SamState.VERIFIED:
            raise StatusError(Code.SAM_MODE2, f"SAM state is {int(a.sam_state)}, needs 2")
        return a.cloud

    def states(self, sid: str) -> SessionStates:
        s = self._get(sid)
        sam = self.agent.sam_state if self.agent.cloud is not None else SamState.NONE
        return SessionStates(
            sessionId=sid,
            hospitalId=s.hospitalId,
            sam=int(sam),
            hpc=int(HpcState.VERIFIED if s.hpc else HpcState.NONE),
            hc=int(HcState.READY if s.vhc else HcState.NONE),
            virtual=s.vhc is not None,
            mobile=s.hpc is not None,
            expiresAt=s.expires_at(),
        )

    # ------------------------------------------------------------------ operations

    def open(self, sid: str, device: str, hospital_id: str | None, idle_s: float | None) -> SessionStates:
        sam = self._cloud()
        if hospital_id and hospital_id != sam.hospital_id:
            raise StatusError(Code.FORBIDDEN, "this agent's cloud SAM belongs to another hospital")
        if sid not in self._s:
            if len(self) >= self.max_sessions:
                raise StatusError(Code.SESSION_LIMIT, f"this agent serves at most {self.max_sessions} device sessions")
            idle = min(self.max_idle_s, idle_s or self.max_idle_s)
            self._s[sid] = DeviceCards(sid, device, sam.hospital_id, idle, time.monotonic())
            log.info("device_session_opened", sessionId=sid, device=device)
        return self.states(sid)

    def close(self, sid: str) -> None:
        if self._s.pop(sid, None) is not None:
            log.info("device_session_closed", sessionId=sid)

    async def _dc_signed(self, sam: CloudSam, kind: str, *fields: str) -> dict[str, str]:
        rnd = base64.b64encode(await sam.client_random()).decode()
        sig = await sam.sign_digest(signing.digest(signing.dc_message(kind, *fields, rnd, sam.sam_id, sam.hospital_id)))
        return {"samId": sam.sam_id, "hospitalId": sam.hospital_id, "clientRandom": rnd, "signature": base64.b64encode(sig).decode()}

    async def verify(self, sid: str, token: str, purpose: str = "verify") -> SessionStates:
        """A QR token (``verify``) or a transfer code (``import``): the session's HC 0 -> 2."""
        s = self._get(sid)
        sam = self._cloud()
        if not token.strip():
            raise StatusError(Code.QRCODE_MISSING)
        signed = await self._dc_signed(sam, "VirtualHc/Verify", purpose, token)
        res = await self.agent.dc.vhc_verify(VirtualHcVerifyRequest(token=token, purpose=purpose, **signed))
        s.vhc = VirtualHc(HcBasic(cardSn=res.cardId, name=res.name, idNo=res.idNo, birthday=res.birthday, sex=res.sex, dateIssue=""), res.identityStatus, res.sessionId)
        log.info("device_session_vhc_verified", sessionId=sid, cardId=res.cardId)
        return self.states(sid)

    async def export(self, sid: str) -> VirtualHcExportResponse:
        """The transfer code of the session's virtual HC, which is logged out of this session (state 0)."""
        s = self._get(sid)
        sam = self._cloud()
        if s.vhc is None:
            raise StatusError(Code.VHC_ONLY, "no virtual HC verified in this session")
        dc_sid = s.vhc.sessionId
        signed = await self._dc_signed(sam, "VirtualHc/Transfer", dc_sid)
        try:
            res = await self.agent.dc.vhc_transfer(VirtualHcTransferRequest(sessionId=dc_sid, **signed))
        except StatusError as err:
            if err.code == Code.VHC_TOKEN_COUNT:
                s.vhc = None  # already moved elsewhere: not usable here either
            raise
        s.vhc = None
        log.info("device_session_vhc_exported", sessionId=sid)
        return VirtualHcExportResponse(token=res.token, expiresAt=res.expiresAt)

    def mobile_hca(self, sid: str, req: MobileHcaRequest) -> SessionStates:
        s = self._get(sid)
        self._cloud()
        assert self.agent.hca_verifier is not None
        login = self.agent.hca_verifier().verify(req)
        s.hpc = HpcBasic(cardId=login.card_id, idNo=login.idNo, cName=login.cName, eName=login.eName)
        log.info("device_session_hca_verified", sessionId=sid, hpcId=login.card_id)
        return self.states(sid)

    def hc_logout(self, sid: str) -> SessionStates:
        self._get(sid).vhc = None
        return self.states(sid)

    def hpc_logout(self, sid: str) -> SessionStates:
        self._get(sid).hpc = None
        return self.states(sid)

    async def sign(self, sid: str, kind: SignatureKind, service_type: str) -> SignatureObject:
        """A signature with the agent's cloud SAM and this session's cards only."""
        if service_type not in SERVICE_TYPES:
            raise StatusError(Code.PARAM_VALUE, f"unknown serviceType {service_type!r}")
        s = self._get(sid)
        sam = self._cloud()
        hc = s.vhc.basic if kind in (SignatureKind.HC, SignatureKind.HPCHC) and s.vhc else None
        hpc = s.hpc if kind in (SignatureKind.HPC, SignatureKind.HPCHC) else None
        if kind in (SignatureKind.HPC, SignatureKind.HPCHC) and hpc is None:
            raise StatusError(Code.HPC_MODE3, "no HCA login in this device session")
        if kind in (SignatureKind.HC, SignatureKind.HPCHC) and hc is None:
            raise StatusError(Code.HC_MODE2, "no virtual HC verified in this device session")
        return SignatureObject(**await sam_signature(sam, service_type, hc, hpc))

    # ------------------------------------------------------------------ one bus call

    async def handle(self, call: SessionCall) -> SessionReply:
        sid = call.sessionId
        reply = SessionReply(requestId=call.requestId, workstation=self.agent.workstation, sessionId=sid, ok=True)
        try:
            if call.op == "open":
                reply.states = self.open(sid, call.device or "-", call.hospitalId, call.idle_s)
            elif call.op in ("verify", "import"):
                reply.states = await self.verify(sid, call.token or "", call.op)
            elif call.op == "export":
                reply.transfer = await self.export(sid)
                reply.states = self.states(sid)
            elif call.op == "mobile-hca":
                if call.mobileHca is None:
                    raise StatusError(Code.PARAM_VALUE, "mobileHca is required")
                reply.states = self.mobile_hca(sid, call.mobileHca)
            elif call.op == "hc-logout":
                reply.states = self.hc_logout(sid)
            elif call.op == "hpc-logout":
                reply.states = self.hpc_logout(sid)
            elif call.op == "sign":
                if call.kind is None or call.serviceType is None:
                    raise StatusError(Code.PARAM_VALUE, "kind and serviceType are required")
                reply.signature = await self.sign(sid, call.kind, call.serviceType)
                hpc = self._get(sid).hpc
                reply.hpcId = hpc.cardId if hpc else None
            elif call.op == "status":
                reply.states = self.states(sid)
            elif call.op == "close":
                self.close(sid)
        except StatusError as err:
            zh, en = message(err.code)
            reply = SessionReply(requestId=call.requestId, workstation=self.agent.workstation, sessionId=sid, ok=False, error=ErrorBody(statusCode=err.code, message=zh, messageEn=en, detail=err.detail))
        self.agent.record(f"SESSION {call.op}", 0 if reply.ok else (reply.error.statusCode if reply.error else 0))
        return reply


# --------------------------------------------------------------------------- the bus side


class SessionServer(Protocol):
    """What ``SessionLink`` serves: ``ServedSessions``, or a bridged agent's refusal (``nhigw.agent.bridge.RefusedSessions``)."""

    @property
    def agent(self) -> CardBackend: ...

    def sweep(self) -> int: ...

    async def handle(self, call: SessionCall) -> SessionReply: ...


class SessionLink:
    """Serves ``SessionCall``s on ``BusKeys.sessions(workstation)``, sealed under the agent's own key.

    Kept apart from ``BusLink`` (signatures and component calls of the workstation itself):
    its own channel and subscription, so the workstation path is unchanged. A call past its
    deadline, a replayed one (its ``requestId`` already ran), a forged, unsealed, malformed or
    oversized one is dropped, counted in ``drops`` and logged once per interval; no message stops
    the receiver, and a task that dies anyway is restarted with backoff (``nhigw.bus.guard``).
    """

    def __init__(self, sessions: SessionServer, bus: Bus, keys: BusKeys, identity: AgentIdentity, *, sweep_s: float = 5.0) -> None:
        if identity.workstation != sessions.agent.workstation:
            raise ValueError(f"bus identity is for {identity.workstation!r}, agent is {sessions.agent.workstation!r}")
        self.sessions, self.bus, self.keys, self.identity = sessions, bus, keys, identity
        self.sweep_s = sweep_s
        self.drops = Drops()
        self.supervisor = Supervisor(sessions.agent.readiness)
        self.seen = Seen()
        self._sub: Subscription | None = None
        self._calls: set[asyncio.Task[None]] = set()

    @property
    def workstation(self) -> str:
        return self.identity.workstation

    async def start(self) -> None:
        sub = self._sub = await self.bus.subscribe(self.keys.sessions(self.workstation))
        self.supervisor.start("session-calls", lambda: serve(sub, "sessions", self._serve_one, self.drops, max_bytes=MAX_CALL_BYTES))
        self.supervisor.start("session-sweep", self._sweep)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            self.sessions.sweep()

    async def _serve_one(self, channel: str, data: bytes) -> None:
        call = self.seen.open_call(self.identity.key, self.workstation, channel, data, SessionCall.model_validate_json)
        t = asyncio.create_task(self._answer(call))
        self._calls.add(t)
        t.add_done_callback(self._calls.discard)

    async def _answer(self, call: SessionCall) -> None:
        reply = await self.sessions.handle(call)
        try:
            await self.bus.publish(call.replyTo, seal_envelope(self.identity.key, call.replyTo, self.workstation, reply.model_dump_json().encode()))
        except BusError as exc:
            log.warning("session_reply_failed", error=str(exc))

    async def stop(self) -> None:
        await self.supervisor.close()
        for t in list(self._calls):
            t.cancel()
        for t in list(self._calls):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._sub:
            await self._sub.close()


class LinkGroup:
    """Several bus links stopped together (the CLI keeps one handle)."""

    def __init__(self, *links: SessionLink | BusLink) -> None:
        self.links = links

    async def stop(self) -> None:
        for link in self.links:
            await link.stop()
