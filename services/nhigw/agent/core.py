"""The agent's state machine: which card is where, and the SAM / HPC / HC states of the seed.

States (``nhigw.contracts.models``):
- SAM: 0 none · 1 present · 2 verified with the NHI DC (``sam_verify`` 1 -> 2,
  ``sam_logout`` 2 -> 1). The SAM is a physical card in a reader or an imported cloud SAM
  (``nhigw.agent.cloudsam``); both sit behind ``SamDevice``, so signing does not care.
  A cloud SAM verifies itself at ``Initial``; a physical SAM only when asked, and a failed
  verification is never retried by the agent (too many failures lock the card).
- HPC / HCA: 0 none · 1 inserted · 2 inserted with the SAM verified · 3 PIN verified, or a
  mobile HCA login (``nhigw.agent.mobilehca``), which needs no card.
- HC: 0 none · 1 inserted · 2 ready (physical HC with the SAM verified, or a virtual HC
  verified with the DC: 0 -> 2).

Every operation names the states it needs in ``NEEDS`` (``nhigw.agent.rules``) (the seed's table columns 初始化 /
SAM / HCA / HC) and fails with the matching 6.0 code: 1000 not initialised; 1300 / 1301 SAM
state 1 / 2; 1400 / 1401 / 1402 HPC state 1 / 2 / 3; 1501 HC not ready. Card I/O runs under
one lock (PC/SC readers are not re-entrant); a card that vanishes mid-call is dropped from
the state and the call fails with 1102.

``Initial`` (seed: 若不指定裝置，將按下列順序嘗試連接 最後連接裝置 / 雲端安全模組 / 實體安全模組):
``name`` is a cloud SAM id, a physical SAM id, ``COMn`` (the n-th PC/SC reader) or a reader
name; without a name the agent tries the last device it was initialised with, then the
first usable cloud SAM, then a physical SAM in any reader. With a cloud SAM the physical
cards are read from the default PC/SC reader (settings) or, when none is set, from every reader.

Choices (the seed is silent):
- ``hc_logout`` on a physical HC forgets the PIN verification but keeps the card's public
  data, read once at insertion (HIS code calls Logout before every HC read, public facts 6);
  on a virtual HC it drops the card (state 0). A verified virtual HC takes precedence over
  a physical HC in a reader until it is logged out.
- A virtual HC QR code may be resolved again for the steps of a visit: ``Verification/VirtualHc``
  and ``VirtualHc/ReadBasic`` alike ask the DC each time, which bounds the count (1525, see
  ``proto/dc-protocol.md``) and the institution. ``GET VirtualHc/Import`` exports the transfer code and logs
  the virtual HC out here (seed: 匯出轉移碼會自動將原設備改為狀態 0); ``POST VirtualHc/Import``
  takes a transfer code on the receiving workstation (0 -> 2).
- The HC's "PIN set" is learnt lazily (``GET /api/hc/v1/Pin`` or any PIN call), so reading
  an inserted card's basic data costs SELECT + READ only, at insertion.
- Card events: ``listeners`` (no-argument callables) run on every change; ``subscribe()``
  gives a queue of ``CardEvent`` (inserted / removed / state) for observers that want details.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nhigw.agent.cardio import CardConnection, CardIOError, NoCardError, ReaderBackend
from nhigw.agent.cards import (
    ApduError,
    HcBasic,
    HcSession,
    HpcBasic,
    HpcSession,
    PinError,
    SamSession,
)
from nhigw.agent.cloudsam import CloudSam, CloudSamStore
from nhigw.agent.dc import DcClient
from nhigw.agent.discovery import CardMonitor, Slot
from nhigw.agent.mobilehca import MobileHcaVerifier
from nhigw.agent.rules import SIGN_NEED, States, choose_device, com_name, fallback_cloud
from nhigw.agent.rules import check as check_states
from nhigw.agent.settings import SettingsStore
from nhigw.common.health import Readiness
from nhigw.common.logging import get_logger
from nhigw.common.roctime import roc_now
from nhigw.common.tls import CertKeeper
from nhigw.contracts import signing
from nhigw.contracts.apdu import SW
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    SERVICE_TYPES,
    AgentStatus,
    CardEvent,
    CardKind,
    CardStates,
    CardStatus,
    HcBasicResponse,
    HcCardStatus,
    HcPinResponse,
    HcState,
    HpcBasicResponse,
    HpcState,
    MobileHcaRequest,
    OrganDonateResponse,
    RecordEntry,
    SamAuthVerifyRequest,
    SamBasicResponse,
    SamState,
    ServerDateTimeResponse,
    SignatureKind,
    SignatureResponse,
    TlsExpiry,
    VirtualHcBasic,
    VirtualHcExportResponse,
    VirtualHcTransferRequest,
    VirtualHcVerifyRequest,
    VirtualHcVerifyResponse,
)

log = get_logger("nhigw.agent")


# --------------------------------------------------------------------------- SAM devices


class SamDevice(Protocol):
    """A SAM the agent signs with: a card in a reader or a cloud SAM file."""

    cloud: bool

    @property
    def sam_id(self) -> str: ...

    @property
    def hospital_id(self) -> str: ...

    async def client_random(self) -> bytes: ...

    async def sign_digest(self, digest: bytes) -> bytes: ...


async def sam_signature(sam: SamDevice, service_type: str, hc: HcBasic | None, hpc: HpcBasic | None) -> dict[str, str]:
    """A 6.0 signature object's fields: a fresh clientRandom from ``sam``, the SAM's and the cards' ids
    (an absent card's left out), and ``signature``, the SAM's over their canonical message
    (``nhigw.contracts.signing``). The agent's own cards and a device session's both sign here."""
    fields: dict[str, Any] = dict(
        serviceType=service_type,
        clientRandom=base64.b64encode(await sam.client_random()).decode(),
        samId=sam.sam_id,
        hospitalId=sam.hospital_id,
        hcId=hc.cardSn if hc else None,
        hcIdNo=hc.idNo if hc else None,
        hpcId=hpc.cardId if hpc else None,
        hpcIdNo=hpc.idNo if hpc else None,
    )
    sig = await sam.sign_digest(signing.digest(signing.canonical_message(**fields)))
    return {"signature": base64.b64encode(sig).decode(), **{k: v for k, v in fields.items() if v is not None}}


class PhysicalSam:
    """The SAM card in a reader, through the agent's card I/O guard (one per operation, agent lock held).

    The SAM applet is selected once per operation: a signature is SELECT + GET CHALLENGE +
    INTERNAL AUTHENTICATE, three APDUs.
    """

    cloud = False

    def __init__(self, agent: "Agent", ids: tuple[str, str]) -> None:
        self.agent = agent
        self.sam_id, self.hospital_id = ids
        self._selected = False

    async def _session(self, conn: CardConnection) -> SamSession:
        sess = SamSession(conn)
        if not self._selected:
            if not await sess.select():
                raise ApduError(SW.NOT_FOUND, "SELECT SAM")
            self._selected = True
        return sess

    async def client_random(self) -> bytes:
        async with self.agent._io(CardKind.SAM) as conn:
            return await (await self._session(conn)).challenge()

    async def sign_digest(self, digest: bytes) -> bytes:
        async with self.agent._io(CardKind.SAM) as conn:
            return await (await self._session(conn)).internal_authenticate(digest)


# --------------------------------------------------------------------------- the seam: a workstation's card backend


class CardBackend(Protocol):
    """A workstation's cards as its bus link (``nhigw.agent.buslink``) serves them to the gateway.

    Two stand behind it: ``Agent`` below (this project's own card I/O: PC/SC or in-process readers,
    a cloud SAM) and ``nhigw.agent.bridge.ComponentBridge`` (the official 6.0 component on the
    workstation does the card I/O). ``listeners`` run on every change of ``card_states`` or
    ``available``; a backend that is not ``available`` makes the workstation offline at the gateway.
    """

    workstation: str
    listeners: list[Callable[[], None]]
    readiness: Readiness

    @property
    def available(self) -> bool: ...

    def card_states(self) -> CardStates: ...

    def signer_hpc(self) -> str | None:
        """The HPC verified here when a signature is made (for the audit; not part of the signature)."""
        ...

    def tls_expiry(self) -> TlsExpiry | None:
        """When this workstation's HTTPS certificates that nhigw manages end (None: none)."""
        ...

    def record(self, function: str, result: int) -> None: ...

    async def sign(self, kind: SignatureKind, service_type: str) -> SignatureResponse: ...


# --------------------------------------------------------------------------- agent


@dataclass
class CallRecord:
    at: float
    function: str
    result: int


@dataclass
class VirtualHc:
    basic: HcBasic
    identityStatus: str | None
    sessionId: str
    pinSet: bool = False  # the DC's answer: the holder has a PIN, and entered it in the app (pinVerified)


@dataclass
class Agent:
    backend: ReaderBackend
    dc: DcClient
    workstation: str = "ws-01"
    data_dir: Path | None = None
    initialized: bool = False
    device: str | None = None
    phys_sam_ids: tuple[str, str] | None = None
    cloud: CloudSam | None = None  # the cloud SAM in use, if any
    sam_names: tuple[str, str] = ("", "")
    sam_verified: bool = False
    hc_cache: HcBasic | None = None
    hc_pin_set: bool | None = None
    hc_pin_verified: bool = False
    vhc: VirtualHc | None = None
    hpc_verified: bool = False
    hpc_mobile: bool = False
    hpc_cache: HpcBasic | None = None
    records: list[CallRecord] = field(default_factory=list)
    max_records: int = 200
    listeners: list[Callable[[], None]] = field(default_factory=list)
    event_listeners: list[Callable[[CardEvent], None]] = field(default_factory=list)
    _queue_listeners: dict[asyncio.Queue[CardEvent], Callable[[CardEvent], None]] = field(default_factory=dict, init=False, repr=False)  # subscribe's queue -> its listener
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    settings: SettingsStore = field(init=False)
    cloud_sams: CloudSamStore = field(init=False)
    hca_verifier: Callable[[], MobileHcaVerifier] | None = None
    readiness: Readiness = field(default_factory=Readiness)  # the agent's /readyz: its bus links' tasks (nhigw.bus.guard)
    tls: CertKeeper | None = None  # what serves its HTTPS (None: plain HTTP): expiry in presence and settings
    cards: CardMonitor = field(init=False)  # which card is in which reader (discovery, monitoring)

    def __post_init__(self) -> None:
        self.cards = CardMonitor(self.backend, self.lock, self._card_found, self._card_gone, self._emit, self._changed, lambda: self.initialized)
        self.settings = SettingsStore(self.data_dir)
        self.cloud_sams = CloudSamStore(self.data_dir)
        if self.hca_verifier is None:
            hca_dir = self.data_dir / "hca" if self.data_dir else None
            self.hca_verifier = lambda: MobileHcaVerifier.from_dir(hca_dir)

    # ------------------------------------------------------------------ states

    @property
    def slots(self) -> dict[CardKind, Slot]:
        return self.cards.slots

    @property
    def readers_in_use(self) -> list[str]:
        return self.cards.readers_in_use

    @property
    def sam_ids(self) -> tuple[str, str] | None:
        if self.cloud is not None:
            return self.cloud.sam_id, self.cloud.hospital_id
        return self.phys_sam_ids if CardKind.SAM in self.slots else None

    @property
    def sam_state(self) -> SamState:
        if self.cloud is None and CardKind.SAM not in self.slots:
            return SamState.NONE
        return SamState.VERIFIED if self.sam_verified else SamState.PRESENT

    @property
    def hpc_state(self) -> HpcState:
        if self.hpc_mobile:
            return HpcState.VERIFIED
        if CardKind.HPC not in self.slots:
            return HpcState.NONE
        if self.hpc_verified:
            return HpcState.VERIFIED
        return HpcState.READY if self.sam_state == SamState.VERIFIED else HpcState.PRESENT

    @property
    def hc_state(self) -> HcState:
        if self.vhc is not None:
            return HcState.READY
        if CardKind.HC not in self.slots:
            return HcState.NONE
        return HcState.READY if self.sam_state == SamState.VERIFIED else HcState.PRESENT

    def status(self) -> AgentStatus:
        virtual = self.vhc is not None
        return AgentStatus(
            initialized=self.initialized,
            device=self.device,
            reader=", ".join(self.readers_in_use) or None,
            sam=CardStatus(status=int(self.sam_state)),
            hpc=CardStatus(status=int(self.hpc_state)),
            hc=HcCardStatus(status=int(self.hc_state), pinSet=self.vhc.pinSet if self.vhc is not None else self.hc_pin_set, pinVerified=self.hc_pin_verified, virtual=virtual),
        )

    def tls_expiry(self) -> TlsExpiry | None:
        return self.tls.expiry if self.tls is not None else None

    @property
    def available(self) -> bool:
        return True  # its readers are its own: a missing card is a state, not an absence

    def signer_hpc(self) -> str | None:
        hpc = self.hpc_cache if self.hpc_state == HpcState.VERIFIED else None
        return hpc.cardId if hpc else None

    def card_states(self) -> CardStates:
        return CardStates(
            initialized=self.initialized,
            sam=int(self.sam_state),
            hpc=int(self.hpc_state),
            hc=int(self.hc_state),
            reader=", ".join(self.readers_in_use) or None,
        )

    # ------------------------------------------------------------------ events

    def _emit(self, type_: str, kind: str | None = None, reader: str | None = None) -> None:
        if not self.event_listeners:
            return
        ev = CardEvent(type=type_, kind=kind, reader=reader, states=self.card_states(), at=time.time())
        for fn in list(self.event_listeners):
            with contextlib.suppress(Exception):
                fn(ev)

    def _changed(self) -> None:
        self._emit("state")
        for fn in list(self.listeners):
            with contextlib.suppress(Exception):
                fn()

    def subscribe(self, maxsize: int = 256) -> asyncio.Queue[CardEvent]:
        """A queue of ``CardEvent``; when full the oldest event is dropped. ``unsubscribe`` when done."""
        q: asyncio.Queue[CardEvent] = asyncio.Queue(maxsize)

        def put(ev: CardEvent) -> None:
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(ev)

        self._queue_listeners[q] = put
        self.event_listeners.append(put)
        return q

    def unsubscribe(self, q: asyncio.Queue[CardEvent]) -> None:
        put = self._queue_listeners.pop(q, None)
        self.event_listeners[:] = [f for f in self.event_listeners if f is not put]

    # ------------------------------------------------------------------ records

    def record(self, function: str, result: int) -> None:
        self.records.append(CallRecord(time.time(), function, result))
        if len(self.records) > self.max_records:
            del self.records[: len(self.records) - self.max_records]

    def record_entries(self) -> list[RecordEntry]:
        return [
            RecordEntry(function=r.function, result=f"{r.result:04d}", dateTime=dt.datetime.fromtimestamp(r.at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            for r in reversed(self.records)
        ]

    def clear_records(self) -> None:
        self.records.clear()

    # ------------------------------------------------------------------ state checks

    def check(self, op: str) -> None:
        """Check the states ``op`` needs (``nhigw.agent.rules.NEEDS``); raise the matching 6.0 code."""
        check_states(States(self.initialized, self.sam_state, self.hpc_state, self.hc_state), op)

    # ------------------------------------------------------------------ discovery (nhigw.agent.discovery)

    async def _card_found(self, kind: CardKind, conn: CardConnection) -> None:
        """What is kept of a card from its insertion: a SAM's ids, an HC's public data."""
        if kind == CardKind.SAM:
            self.phys_sam_ids = await SamSession(conn).read_ids()
        elif kind == CardKind.HC:
            self.hc_cache = await HcSession(conn).read_basic()
            self.hc_pin_set, self.hc_pin_verified = None, False

    def _card_gone(self, kind: CardKind) -> None:
        if kind == CardKind.SAM:
            self.phys_sam_ids = None
            if self.cloud is None:
                self.sam_names = ("", "")
                self.sam_verified = False
                self.hpc_verified = False
                self.hpc_mobile = False
                self.hpc_cache = None
        elif kind == CardKind.HC:
            self.hc_cache = None
            self.hc_pin_set = None
            if self.vhc is None:
                self.hc_pin_verified = False
        elif kind == CardKind.HPC and not self.hpc_mobile:
            self.hpc_verified = False
            self.hpc_cache = None

    async def rescan(self) -> bool:
        return await self.cards.rescan()

    def start_monitor(self, interval_s: float = 1.0) -> None:
        self.cards.start(interval_s)

    async def stop(self) -> None:
        await self.cards.stop()
        await self.finalize(quiet=True)
        await self.backend.close()
        await self.dc.close()

    # ------------------------------------------------------------------ common

    async def _readers(self) -> list[str]:
        try:
            return await self.backend.readers()
        except CardIOError:
            return []

    async def names(self) -> list[str]:
        """Devices to choose from (seed: 取得目前可用裝置名稱清單): cloud SAMs, a physical SAM, readers, COMn."""
        readers = await self._readers()
        names = [i for i in self.cloud_sams.ids() if self.cloud_sams.usable(i)]
        if self.phys_sam_ids and self.phys_sam_ids[0] not in names:
            names.append(self.phys_sam_ids[0])
        names.extend(readers)
        names.extend(com_name(i) for i in range(len(readers)))
        return names

    async def initial(self, name: str | None) -> None:
        if self.initialized:
            raise StatusError(Code.ALREADY_INITIALIZED)
        name = (name or "").strip() or None
        readers = await self._readers()
        usable = [i for i in self.cloud_sams.ids() if self.cloud_sams.usable(i)]
        last = self.settings.settings.lastDevice
        choice = choose_device(name, readers, self.cloud_sams.ids(), usable, last, self.settings.settings.defaultReader)
        cloud: CloudSam | None = self.cloud_sams.get(choice.cloud) if choice.cloud else None  # 9202 if sealed on another host
        chosen, want_sam = list(choice.readers), choice.want_sam
        presence: dict[str, bytes | None] = {}
        with contextlib.suppress(CardIOError):
            presence = await self.backend.presence()
        async with self.lock:
            self.initialized = True
            self.cloud = cloud
            self.sam_verified = False
            # Every reader is watched for a physical SAM (it may sit in any); with a cloud SAM only the chosen ones.
            await self.cards.watch(chosen if cloud is not None else readers, presence)
            if want_sam is not None and (self.phys_sam_ids is None or self.phys_sam_ids[0] != want_sam):
                await self._finalize_locked()
                raise StatusError(Code.NO_DEVICE, f"no SAM or cloud SAM {want_sam}")
            fallback = None if cloud is not None else fallback_cloud(name, last, self.phys_sam_ids is not None, usable)
            if fallback is not None:
                self.cloud = cloud = self.cloud_sams.get(fallback)
            if cloud is not None:
                self.device = cloud.sam_id
            elif self.phys_sam_ids is not None:
                self.device = self.phys_sam_ids[0]
            else:
                self.device = chosen[0] if chosen else None
            if self.device:
                self.settings.update(lastDevice=self.device)
        log.info("initialized", device=self.device, cloud=cloud is not None, readers=len(self.readers_in_use))
        self._changed()
        if cloud is not None:
            # A cloud SAM verifies itself (seed: 雲端安全模組會嘗試自動驗證); a failure leaves it in state 1.
            try:
                await self.sam_verify()
            except StatusError as err:
                log.warning("cloud_sam_verify_failed", samId=cloud.sam_id, statusCode=err.code)

    async def _finalize_locked(self) -> None:
        await self.cards.release()
        self.initialized = False
        self.device = None
        self.cloud = None
        self.sam_verified = False
        self.sam_names = ("", "")
        self.vhc = None
        self.hpc_mobile = False
        self.hpc_verified = False
        self.hpc_cache = None
        self.hc_pin_verified = False

    async def finalize(self, *, quiet: bool = False) -> None:
        if not self.initialized and not quiet:
            raise StatusError(Code.NOT_INITIALIZED)
        async with self.lock:
            await self._finalize_locked()
        self._changed()

    async def server_date_time(self) -> ServerDateTimeResponse:
        """The reader's time (PC/SC readers have no clock: this host's, in Taiwan time), or the DC's for a cloud SAM."""
        self.check("server_date_time")
        if self.cloud is not None:
            return ServerDateTimeResponse(serverDateTime=await self.dc.server_date_time(), source="dc")
        return ServerDateTimeResponse(serverDateTime=roc_now(), source="reader")

    # ------------------------------------------------------------------ card I/O guard

    @contextlib.asynccontextmanager
    async def _io(self, kind: CardKind):
        """Run card I/O on the ``kind`` slot; a vanished card becomes 1102 and leaves the state."""
        slot = self.slots.get(kind)
        if slot is None:
            raise StatusError(Code.NO_CARD, f"no {kind.upper()} inserted")
        try:
            yield slot.conn
        except NoCardError as exc:
            await self.cards.vanished(kind)
            raise StatusError(Code.NO_CARD, f"the {kind.upper()} was removed") from exc
        except CardIOError as exc:
            raise StatusError(Code.PCSC_OTHER, str(exc)) from exc
        except ApduError as exc:
            raise StatusError(Code.APP_SWITCH_FAILED if exc.sw == SW.NOT_FOUND else Code.PCSC_OTHER, f"card answered SW {exc.sw:04X}") from exc

    # ------------------------------------------------------------------ SAM

    def _sam(self) -> SamDevice:
        if self.cloud is not None:
            return self.cloud
        if self.phys_sam_ids is None or CardKind.SAM not in self.slots:
            raise StatusError(Code.SAM_MODE1, "no SAM")
        return PhysicalSam(self, self.phys_sam_ids)

    async def sam_verify(self) -> None:
        """Verify the SAM with the DC (1 -> 2). Called by HIS, and by ``initial`` for a cloud SAM only."""
        self.check("sam_verify")
        async with self.lock:
            sam = self._sam()
            ch = await self.dc.challenge(sam.sam_id, sam.hospital_id)
            sig = await sam.sign_digest(signing.digest(base64.b64decode(ch.challenge)))
            res = await self.dc.verify(SamAuthVerifyRequest(samId=sam.sam_id, hospitalId=sam.hospital_id, challenge=ch.challenge, signature=base64.b64encode(sig).decode()))
            self.sam_verified = True
            self.sam_names = (res.hospitalName, res.hospitalShortName)
        log.info("sam_verified", samId=sam.sam_id, cloud=sam.cloud)
        self._changed()

    async def sam_logout(self) -> None:
        self.check("sam_logout")
        self.sam_verified = False
        self.hpc_verified = False
        self.hpc_mobile = False
        self.hpc_cache = None
        self._changed()

    def sam_basic(self) -> SamBasicResponse:
        self.check("sam_basic")
        ids = self.sam_ids
        assert ids is not None
        names = self.sam_names
        if self.cloud is not None and not any(names):
            names = (self.cloud.file.hospitalName, self.cloud.file.hospitalShortName)
        return SamBasicResponse(samId=ids[0], hospitalId=ids[1], hospitalName=names[0] or None, hospitalShortName=names[1] or None)

    async def _dc_signed(self, kind: str, *fields: str) -> dict[str, str]:
        """The ``DcSamSigned`` fields for a DC request (lock held)."""
        sam = self._sam()
        rnd = base64.b64encode(await sam.client_random()).decode()
        sig = await sam.sign_digest(signing.digest(signing.dc_message(kind, *fields, rnd, sam.sam_id, sam.hospital_id)))
        return {"samId": sam.sam_id, "hospitalId": sam.hospital_id, "clientRandom": rnd, "signature": base64.b64encode(sig).decode()}

    # ------------------------------------------------------------------ HC

    async def _hc_basic_locked(self) -> HcBasic:
        if self.vhc is not None:
            return self.vhc.basic
        if self.hc_cache is None:
            async with self._io(CardKind.HC) as conn:
                sess = HcSession(conn)
                if not await sess.select():
                    raise ApduError(SW.NOT_FOUND, "SELECT HC")
                self.hc_cache = await sess.read_basic()
        return self.hc_cache

    async def hc_basic(self) -> HcBasicResponse:
        self.check("hc_basic")
        async with self.lock:
            b = await self._hc_basic_locked()
        if self.vhc is not None:
            return HcBasicResponse(cardId=b.cardSn, idNo=b.idNo, name=b.name, birthday=b.birthday, sex=b.sex, identityStatus=self.vhc.identityStatus, dateIssue=None)
        return HcBasicResponse(cardId=b.cardSn, idNo=b.idNo, name=b.name, birthday=b.birthday, sex=b.sex, dateIssue=b.dateIssue)

    async def hc_logout(self) -> None:
        """Virtual HC: N -> 0. Physical HC: the PIN verification is forgotten (the card stays ready)."""
        self.check("hc_logout")
        if self.vhc is not None:
            self.vhc = None
            self._emit("removed", "virtual-hc")
        self.hc_pin_verified = False
        self._changed()

    # HC PIN (physical cards only: 1526 for a virtual HC)

    def _physical_hc(self) -> None:
        self.check("hc_pin")
        if self.vhc is not None:
            raise StatusError(Code.VHC_NO_PIN_FUNCS)

    async def _hc_pin_query_locked(self, sess: HcSession) -> None:
        _data, sw = await sess.conn.transmit(bytes.fromhex("0020000100"))
        self.hc_pin_set = sw != SW.NO_DATA
        self.hc_pin_verified = sw == SW.OK

    @contextlib.asynccontextmanager
    async def _hc_session(self):
        async with self._io(CardKind.HC) as conn:
            sess = HcSession(conn)
            if not await sess.select():
                raise ApduError(SW.NOT_FOUND, "SELECT HC")
            yield sess

    async def hc_pin_status(self) -> HcPinResponse:
        self._physical_hc()
        before = (self.hc_pin_set, self.hc_pin_verified)
        async with self.lock, self._hc_session() as sess:
            await self._hc_pin_query_locked(sess)
        if (self.hc_pin_set, self.hc_pin_verified) != before:
            self._changed()
        return HcPinResponse(pinSet=bool(self.hc_pin_set), pinVerified=self.hc_pin_verified)

    async def hc_pin_verify(self, pin: str) -> None:
        self._physical_hc()
        async with self.lock, self._hc_session() as sess:
            try:
                await sess.verify_pin(pin)
            except PinError as exc:
                self.hc_pin_verified = False
                self.hc_pin_set = True
                raise StatusError(Code.HC_PIN_FAILED, "PIN blocked" if exc.tries_left == 0 else "wrong PIN", triesLeft=exc.tries_left, blocked=exc.tries_left == 0) from None
            except ApduError as exc:
                if exc.sw == SW.NO_DATA:
                    self.hc_pin_set = False
                    raise StatusError(Code.HC_NO_PIN) from None
                raise
            self.hc_pin_set = True
            self.hc_pin_verified = True
        log.info("hc_pin_verified")
        self._changed()

    async def hc_pin_set_new(self, new_pin: str) -> None:
        """Set (no PIN yet) or change (PIN verified) the HC PIN (seed: 設定 PIN needs 已驗 PIN when one is set)."""
        self._physical_hc()
        async with self.lock, self._hc_session() as sess:
            if self.hc_pin_set is None:
                await self._hc_pin_query_locked(sess)
            if self.hc_pin_set and not self.hc_pin_verified:
                raise StatusError(Code.HC_PIN_NOT_VERIFIED, "verify the current PIN first")
            try:
                await sess.change_pin(new_pin)
            except ApduError as exc:
                if exc.sw == SW.SECURITY:
                    self.hc_pin_verified = False
                    raise StatusError(Code.HC_PIN_NOT_VERIFIED) from None
                raise StatusError(Code.PARAM_VALUE, "the card refused the new PIN (4-8 digits)") from None
            self.hc_pin_set = True
            self.hc_pin_verified = True
        log.info("hc_pin_set")
        self._changed()

    async def hc_pin_disable(self) -> None:
        self._physical_hc()
        async with self.lock, self._hc_session() as sess:
            if self.hc_pin_set is None:
                await self._hc_pin_query_locked(sess)
            if not self.hc_pin_set:
                raise StatusError(Code.HC_NO_PIN)
            if not self.hc_pin_verified:
                raise StatusError(Code.HC_PIN_NOT_VERIFIED, "verify the PIN before disabling it")
            try:
                await sess.disable_pin()
            except ApduError as exc:
                raise StatusError(Code.HC_DISABLE_PIN_FAILED, f"card answered SW {exc.sw:04X}") from None
            self.hc_pin_set = False
            self.hc_pin_verified = False
        log.info("hc_pin_disabled")
        self._changed()

    # The one card write 6.0 keeps: the organ donation / hospice mark, physical HCs only (1515)

    def _physical_only(self, op: str) -> None:
        self.check(op)
        if self.vhc is not None:
            raise StatusError(Code.HC_PHYSICAL_ONLY, "the organ donation mark is written to a physical HC only")

    async def hc_organ_donate(self) -> OrganDonateResponse:
        self._physical_only("hc_organ_read")
        async with self.lock, self._hc_session() as sess:
            return OrganDonateResponse(organDonate=await sess.read_organ_donate())

    async def hc_write_organ_donate(self, mark: str) -> None:
        """Needs SAM 2, HCA 3 (a medical professional writes it) and a physical HC 2."""
        self._physical_only("hc_organ_write")
        async with self.lock, self._hc_session() as sess:
            await sess.write_organ_donate(mark)
        log.info("hc_organ_donate_written", hpcId=self.hpc_cache.cardId if self.hpc_cache else None)
        self._changed()

    # Virtual HC

    async def _vhc_resolve(self, token: str, purpose: str) -> VirtualHcVerifyResponse:
        if not token.strip():
            raise StatusError(Code.QRCODE_MISSING)
        async with self.lock:
            signed = await self._dc_signed("VirtualHc/Verify", purpose, token)
            return await self.dc.vhc_verify(VirtualHcVerifyRequest(token=token, purpose=purpose, **signed))

    def _vhc_take(self, res: VirtualHcVerifyResponse) -> None:
        self.vhc = VirtualHc(HcBasic(cardSn=res.cardId, name=res.name, idNo=res.idNo, birthday=res.birthday, sex=res.sex, dateIssue=""), res.identityStatus, res.sessionId, res.pinSet)
        self.hc_pin_verified = res.pinVerified
        log.info("virtual_hc_verified", cardId=res.cardId)
        self._emit("inserted", "virtual-hc")
        self._changed()

    async def vhc_verify(self, token: str) -> None:
        self.check("vhc_verify")
        self._vhc_take(await self._vhc_resolve(token, "verify"))

    async def vhc_read_basic(self, token: str) -> VirtualHcBasic:
        self.check("vhc_read")
        r = await self._vhc_resolve(token, "read")
        return VirtualHcBasic(cardId=r.cardId, idNo=r.idNo, name=r.name, birthday=r.birthday, sex=r.sex, identityStatus=r.identityStatus)

    async def vhc_import(self, token: str) -> None:
        self.check("vhc_import")
        self._vhc_take(await self._vhc_resolve(token, "import"))

    async def vhc_export(self) -> VirtualHcExportResponse:
        """The transfer code of the verified virtual HC; the virtual HC is logged out here (state 0)."""
        self.check("vhc_export")
        if self.vhc is None:
            raise StatusError(Code.VHC_ONLY, "no virtual HC verified on this workstation")
        async with self.lock:
            assert self.vhc is not None
            sid = self.vhc.sessionId
            signed = await self._dc_signed("VirtualHc/Transfer", sid)
            res = await self.dc.vhc_transfer(VirtualHcTransferRequest(sessionId=sid, **signed))
            self.vhc = None
            self.hc_pin_verified = False
        log.info("virtual_hc_exported")
        self._emit("removed", "virtual-hc")
        self._changed()
        return VirtualHcExportResponse(token=res.token, expiresAt=res.expiresAt)

    # ------------------------------------------------------------------ HPC / HCA

    def _physical_hpc(self) -> None:
        if self.hpc_mobile and CardKind.HPC not in self.slots:
            raise StatusError(Code.HPC_UNSUPPORTED, "a mobile HCA has no card PIN")

    async def hpc_verify_pin(self, pin: str) -> None:
        self.check("hpc_verify")
        if not 6 <= len(pin) <= 8:
            raise StatusError(Code.PARAM_VALUE, "an HPC PIN has 6 to 8 digits")
        async with self.lock:
            async with self._io(CardKind.HPC) as conn:
                sess = HpcSession(conn)
                await sess.select()
                try:
                    await sess.verify_pin(pin)
                except PinError as exc:
                    self.hpc_verified = False
                    raise StatusError(Code.HPC_PIN_FAILED, "PIN blocked: unlock with the PUK" if exc.tries_left == 0 else "wrong PIN", triesLeft=exc.tries_left, blocked=exc.tries_left == 0) from None
                self.hpc_cache = await sess.read_basic()
                self.hpc_verified = True
                self.hpc_mobile = False
        log.info("hpc_verified", hpcId=self.hpc_cache.cardId)
        self._changed()

    async def hpc_mobile_login(self, req: MobileHcaRequest) -> None:
        """A mobile HCA login: HCA state 3 without a card (``nhigw.agent.mobilehca``)."""
        self.check("hpc_mobile")
        assert self.hca_verifier is not None
        login = self.hca_verifier().verify(req)
        self.hpc_cache = HpcBasic(cardId=login.card_id, idNo=login.idNo, cName=login.cName, eName=login.eName)
        self.hpc_mobile = True
        self.hpc_verified = False
        log.info("mobile_hca_verified", hpcId=login.card_id)
        self._emit("inserted", "mobile-hca")
        self._changed()

    def hpc_basic(self) -> HpcBasicResponse:
        self.check("hpc_basic")
        b = self.hpc_cache
        assert b is not None
        return HpcBasicResponse(cardId=b.cardId, idNo=b.idNo, cName=b.cName, eName=b.eName, mobile=self.hpc_mobile)

    async def hpc_change_pin(self, new_pin: str) -> None:
        self.check("hpc_change_pin")
        self._physical_hpc()
        if not 6 <= len(new_pin) <= 8:
            raise StatusError(Code.PARAM_VALUE, "an HPC PIN has 6 to 8 digits")
        async with self.lock, self._io(CardKind.HPC) as conn:
            sess = HpcSession(conn)
            await sess.select()
            try:
                await sess.change_pin(new_pin)
            except ApduError as exc:
                if exc.sw == SW.SECURITY:
                    self.hpc_verified = False
                    raise StatusError(Code.HPC_MODE3, "verify the HPC PIN first") from None
                raise StatusError(Code.PARAM_VALUE, f"the card refused the new PIN (SW {exc.sw:04X})") from None
        log.info("hpc_pin_changed")
        self._changed()

    async def hpc_unlock(self, puk: str, new_pin: str) -> None:
        """RESET RETRY COUNTER with the PUK; the HPC is then in state 2 (verify the new PIN)."""
        self.check("hpc_unlock")
        self._physical_hpc()
        if not 6 <= len(new_pin) <= 8:
            raise StatusError(Code.PARAM_VALUE, "an HPC PIN has 6 to 8 digits")
        async with self.lock, self._io(CardKind.HPC) as conn:
            sess = HpcSession(conn)
            await sess.select()
            try:
                await sess.unblock(puk, new_pin)
            except PinError as exc:
                raise StatusError(Code.HPC_PIN_FAILED, "PUK blocked" if exc.tries_left == 0 else "wrong PUK", pukTriesLeft=exc.tries_left, blocked=exc.tries_left == 0) from None
            except ApduError as exc:
                raise StatusError(Code.PARAM_VALUE, f"the card refused the new PIN (SW {exc.sw:04X})") from None
            self.hpc_verified = False
            self.hpc_mobile = False
        log.info("hpc_unlocked")
        self._changed()

    async def hpc_logout(self) -> None:
        self.check("hpc_logout")
        was_mobile = self.hpc_mobile
        self.hpc_verified = False
        self.hpc_mobile = False
        self.hpc_cache = None
        if was_mobile:
            self._emit("removed", "mobile-hca")
        self._changed()

    # ------------------------------------------------------------------ signatures

    async def sign(self, kind: SignatureKind, service_type: str) -> SignatureResponse:
        if service_type not in SERVICE_TYPES:
            raise StatusError(Code.PARAM_VALUE, f"unknown serviceType {service_type!r}; known: {', '.join(SERVICE_TYPES)}")
        need_hc = kind in (SignatureKind.HC, SignatureKind.HPCHC)
        need_hpc = kind in (SignatureKind.HPC, SignatureKind.HPCHC)
        self.check(SIGN_NEED[kind])
        async with self.lock:
            sam = self._sam()
            hc = await self._hc_basic_locked() if need_hc else None
            hpc = self.hpc_cache if need_hpc else None
            fields = await sam_signature(sam, service_type, hc, hpc)
        return SignatureResponse(**fields)
