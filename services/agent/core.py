"""The agent's state machine: which card is where, and the SAM / HPC / HC states of the seed.

States (``nhigw.contracts.models``):
- SAM: 0 none · 1 present · 2 verified with the NHI DC (``sam_verify`` 1 -> 2,
  ``sam_logout`` 2 -> 1). A physical SAM is never verified automatically.
- HPC: 0 none · 1 inserted · 2 inserted with the SAM verified · 3 PIN verified.
- HC: 0 none · 1 inserted · 2 ready (physical HC with the SAM verified).

Every operation states what it needs (``_need``) and fails with the matching 6.0
code. Card I/O runs under one lock (PC/SC readers are not re-entrant); a card that
vanishes mid-call is dropped from the state and the call fails with 1102.

Choice (the seed is silent): ``hc_logout`` on a physical HC forgets the cached data
and the PIN verification, and the HC is read again on next use; HIS code calls it
before every HC read (public facts 6).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nhigw.agent.cardio import CardConnection, CardIOError, NoCardError, ReaderBackend
from nhigw.agent.cards import (
    ApduError,
    HcBasic,
    HcSession,
    HpcBasic,
    HpcSession,
    PinError,
    SamSession,
    Session,
)
from nhigw.agent.dc import DcClient
from nhigw.common.logging import get_logger
from nhigw.contracts import signing
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    SERVICE_TYPES,
    AgentStatus,
    CardStates,
    CardStatus,
    HcBasicResponse,
    HcCardStatus,
    HcState,
    HpcState,
    SamAuthVerifyRequest,
    SamBasicResponse,
    SamState,
    SignatureKind,
    SignatureResponse,
)

log = get_logger("nhigw.agent")


@dataclass
class Slot:
    reader: str
    kind: str  # "sam" | "hc" | "hpc"
    conn: CardConnection
    token: bytes | None


@dataclass
class CallRecord:
    at: float
    function: str
    result: int


@dataclass
class Agent:
    backend: ReaderBackend
    dc: DcClient
    workstation: str = "ws-01"
    initialized: bool = False
    device: str | None = None
    readers_in_use: list[str] = field(default_factory=list)
    slots: dict[str, Slot] = field(default_factory=dict)  # kind -> slot
    tokens: dict[str, bytes | None] = field(default_factory=dict)  # reader -> presence token
    sam_ids: tuple[str, str] | None = None
    sam_names: tuple[str, str] = ("", "")
    sam_verified: bool = False
    hc_cache: HcBasic | None = None
    hc_pin_verified: bool = False
    hpc_verified: bool = False
    hpc_cache: HpcBasic | None = None
    records: list[CallRecord] = field(default_factory=list)
    max_records: int = 200
    listeners: list[Callable[[], None]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _monitor: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ states

    @property
    def sam_state(self) -> SamState:
        if "sam" not in self.slots:
            return SamState.NONE
        return SamState.VERIFIED if self.sam_verified else SamState.PRESENT

    @property
    def hpc_state(self) -> HpcState:
        if "hpc" not in self.slots:
            return HpcState.NONE
        if self.hpc_verified:
            return HpcState.VERIFIED
        return HpcState.READY if self.sam_state == SamState.VERIFIED else HpcState.PRESENT

    @property
    def hc_state(self) -> HcState:
        if "hc" not in self.slots:
            return HcState.NONE
        return HcState.READY if self.sam_state == SamState.VERIFIED else HcState.PRESENT

    def status(self) -> AgentStatus:
        return AgentStatus(
            initialized=self.initialized,
            device=self.device,
            reader=", ".join(self.readers_in_use) or None,
            sam=CardStatus(status=int(self.sam_state)),
            hpc=CardStatus(status=int(self.hpc_state)),
            hc=HcCardStatus(status=int(self.hc_state), pinVerified=self.hc_pin_verified),
        )

    def card_states(self) -> CardStates:
        return CardStates(
            initialized=self.initialized,
            sam=int(self.sam_state),
            hpc=int(self.hpc_state),
            hc=int(self.hc_state),
            reader=", ".join(self.readers_in_use) or None,
        )

    def _changed(self) -> None:
        for fn in list(self.listeners):
            with contextlib.suppress(Exception):
                fn()

    def record(self, function: str, result: int) -> None:
        self.records.append(CallRecord(time.time(), function, result))
        if len(self.records) > self.max_records:
            del self.records[: len(self.records) - self.max_records]

    def _need(self, *, sam: SamState | None = None, hpc: HpcState | None = None, hc: HcState | None = None) -> None:
        """Check the states a call needs (the seed's table columns); raise the matching code."""
        if not self.initialized:
            raise StatusError(Code.NOT_INITIALIZED)
        if sam is not None and self.sam_state < sam:
            raise StatusError(Code.SAM_MODE2 if sam == SamState.VERIFIED else Code.SAM_MODE1, f"SAM state is {int(self.sam_state)}, needs {int(sam)}")
        if hpc is not None and self.hpc_state < hpc:
            code = {HpcState.PRESENT: Code.HPC_MODE1, HpcState.READY: Code.HPC_MODE2}.get(hpc, Code.HPC_MODE3)
            raise StatusError(code, f"HPC state is {int(self.hpc_state)}, needs {int(hpc)}")
        if hc is not None and self.hc_state < hc:
            if self.hc_state == HcState.NONE:
                raise StatusError(Code.NO_CARD if hc == HcState.PRESENT else Code.HC_MODE2, "no health card inserted")
            raise StatusError(Code.HC_MODE2, f"HC state is {int(self.hc_state)}, needs {int(hc)}")

    # ------------------------------------------------------------------ discovery

    async def _identify(self, reader: str, token: bytes | None) -> None:
        """Find which card sits in ``reader`` by selecting the three applets."""
        for kind, slot in list(self.slots.items()):
            if slot.reader == reader:
                self._drop(kind)
                with contextlib.suppress(Exception):
                    await slot.conn.close()
        if token is None:
            return
        try:
            conn = await self.backend.connect(reader)
        except CardIOError:
            return
        for kind, cls in (("sam", SamSession), ("hpc", HpcSession), ("hc", HcSession)):
            sess: Session = cls(conn)
            try:
                if await sess.select():
                    if kind in self.slots:  # a second card of a kind: first one wins
                        break
                    self.slots[kind] = Slot(reader, kind, conn, token)
                    if kind == "sam":
                        self.sam_ids = await SamSession(conn).read_ids()
                    log.info("card_found", kind=kind, reader=reader)
                    return
            except (CardIOError, ApduError):
                break
        await conn.close()

    def _drop(self, kind: str) -> None:
        slot = self.slots.pop(kind, None)
        if slot is None:
            return
        log.info("card_gone", kind=kind, reader=slot.reader)
        if kind == "sam":
            self.sam_verified = False
            self.sam_ids = None
            self.hpc_verified = False
        elif kind == "hc":
            self.hc_cache = None
            self.hc_pin_verified = False
        elif kind == "hpc":
            self.hpc_verified = False
            self.hpc_cache = None

    async def rescan(self) -> bool:
        """Compare every reader's presence token with the last one; re-identify changes. True if anything changed."""
        if not self.initialized:
            return False
        try:
            presence = await self.backend.presence()
        except CardIOError:
            presence = {}
        changed = False
        async with self.lock:
            for reader in set(self.tokens) | set(presence):
                if reader not in self.readers_in_use and reader in presence:
                    continue
                new = presence.get(reader)
                if self.tokens.get(reader) != new:
                    self.tokens[reader] = new
                    await self._identify(reader, new)
                    changed = True
        if changed:
            self._changed()
        return changed

    async def _monitor_loop(self, interval_s: float) -> None:
        while True:
            try:
                await self.rescan()
            except Exception:  # keep watching whatever one scan did
                log.exception("monitor_error")
            await asyncio.sleep(interval_s)

    def start_monitor(self, interval_s: float = 0.25) -> None:
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._monitor_loop(interval_s), name="card-monitor")

    async def stop(self) -> None:
        if self._monitor:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await self.finalize(quiet=True)
        await self.backend.close()
        await self.dc.close()

    # ------------------------------------------------------------------ common

    async def names(self) -> list[str]:
        readers = await self.backend.readers()
        names: list[str] = []
        if self.sam_ids:
            names.append(self.sam_ids[0])
        names.extend(readers)
        names.extend(f"COM{i + 1}" for i in range(len(readers)))
        return names

    async def initial(self, name: str | None) -> None:
        if self.initialized:
            raise StatusError(Code.ALREADY_INITIALIZED)
        readers = await self.backend.readers()
        if not readers:
            raise StatusError(Code.NO_READER, "no PC/SC reader found")
        chosen = readers
        if name:
            if name.upper().startswith("COM") and name[3:].isdigit():
                idx = int(name[3:]) - 1
                if not 0 <= idx < len(readers):
                    raise StatusError(Code.NO_DEVICE, f"{name} does not exist ({len(readers)} readers)")
                chosen = [readers[idx]]
            elif name in readers:
                chosen = [name]
            elif not name.isdigit():
                raise StatusError(Code.NO_READER_BY_NAME, f"no reader named {name!r}")
        presence = await self.backend.presence()
        async with self.lock:
            self.initialized = True
            self.readers_in_use = list(readers)  # every reader is watched; the SAM may sit in any
            self.tokens = {}
            for reader in readers:
                tok = presence.get(reader)
                self.tokens[reader] = tok
                await self._identify(reader, tok)
            if name and name.isdigit():
                if not self.sam_ids or self.sam_ids[0] != name:
                    self.initialized = False
                    for kind in list(self.slots):
                        self._drop(kind)
                    raise StatusError(Code.NO_DEVICE, f"no SAM {name} in any reader")
            self.device = self.sam_ids[0] if self.sam_ids else chosen[0]
        self._changed()

    async def finalize(self, *, quiet: bool = False) -> None:
        if not self.initialized and not quiet:
            raise StatusError(Code.NOT_INITIALIZED)
        async with self.lock:
            for kind in list(self.slots):
                slot = self.slots[kind]
                self._drop(kind)
                with contextlib.suppress(Exception):
                    await slot.conn.close()
            self.initialized = False
            self.device = None
            self.readers_in_use = []
            self.tokens = {}
        self._changed()

    # ------------------------------------------------------------------ card I/O guard

    @contextlib.asynccontextmanager
    async def _io(self, kind: str):  # type: ignore[no-untyped-def]
        """Run card I/O on the ``kind`` slot; a vanished card becomes 1102 and leaves the state."""
        slot = self.slots.get(kind)
        if slot is None:
            raise StatusError(Code.NO_CARD, f"no {kind.upper()} inserted")
        try:
            yield slot.conn
        except NoCardError as exc:
            self._drop(kind)
            with contextlib.suppress(Exception):
                await slot.conn.close()
            self.tokens[slot.reader] = None
            self._changed()
            raise StatusError(Code.NO_CARD, f"the {kind.upper()} was removed") from exc
        except CardIOError as exc:
            raise StatusError(Code.PCSC_OTHER, str(exc)) from exc
        except ApduError as exc:
            raise StatusError(Code.APP_SWITCH_FAILED if exc.sw == 0x6A82 else Code.PCSC_OTHER, f"card answered SW {exc.sw:04X}") from exc

    # ------------------------------------------------------------------ SAM

    async def sam_verify(self) -> None:
        self._need(sam=SamState.PRESENT)
        async with self.lock:
            assert self.sam_ids is not None
            sam_id, hosp_id = self.sam_ids
            ch = await self.dc.challenge(sam_id, hosp_id)
            raw = base64.b64decode(ch.challenge)
            async with self._io("sam") as conn:
                sess = SamSession(conn)
                await sess.select()
                sig = await sess.internal_authenticate(signing.digest(raw))
            res = await self.dc.verify(SamAuthVerifyRequest(samId=sam_id, hospitalId=hosp_id, challenge=ch.challenge, signature=base64.b64encode(sig).decode()))
            self.sam_verified = True
            self.sam_names = (res.hospitalName, res.hospitalShortName)
        log.info("sam_verified", samId=sam_id)
        self._changed()

    async def sam_logout(self) -> None:
        self._need(sam=SamState.VERIFIED)
        self.sam_verified = False
        self.hpc_verified = False
        self._changed()

    def sam_basic(self) -> SamBasicResponse:
        self._need(sam=SamState.PRESENT)
        assert self.sam_ids is not None
        return SamBasicResponse(samId=self.sam_ids[0], hospitalId=self.sam_ids[1], hospitalName=self.sam_names[0] or None, hospitalShortName=self.sam_names[1] or None)

    # ------------------------------------------------------------------ HC

    async def _hc_basic_locked(self) -> HcBasic:
        if self.hc_cache is None:
            async with self._io("hc") as conn:
                sess = HcSession(conn)
                if not await sess.select():
                    raise ApduError(0x6A82, "SELECT HC")
                self.hc_cache = await sess.read_basic()
        return self.hc_cache

    async def hc_basic(self) -> HcBasicResponse:
        self._need(hc=HcState.PRESENT)
        async with self.lock:
            b = await self._hc_basic_locked()
        return HcBasicResponse(cardId=b.cardNo, idNo=b.idNo, name=b.name, birthday=b.birthday, sex=b.sex, dateIssue=b.dateIssue)

    async def hc_logout(self) -> None:
        if not self.initialized:
            raise StatusError(Code.NOT_INITIALIZED)
        self.hc_cache = None
        self.hc_pin_verified = False
        self._changed()

    # ------------------------------------------------------------------ HPC

    async def hpc_verify_pin(self, pin: str) -> None:
        self._need(sam=SamState.VERIFIED, hpc=HpcState.READY)
        async with self.lock:
            async with self._io("hpc") as conn:
                sess = HpcSession(conn)
                await sess.select()
                try:
                    await sess.verify_pin(pin)
                except PinError as exc:
                    self.hpc_verified = False
                    raise StatusError(Code.HPC_PIN_FAILED, "PIN blocked" if exc.tries_left == 0 else "wrong PIN", triesLeft=exc.tries_left) from exc
                self.hpc_cache = await sess.read_basic()
                self.hpc_verified = True
        self._changed()

    async def hpc_logout(self) -> None:
        self._need(hpc=HpcState.VERIFIED)
        self.hpc_verified = False
        self.hpc_cache = None
        self._changed()

    # ------------------------------------------------------------------ signatures

    async def sign(self, kind: SignatureKind, service_type: str) -> SignatureResponse:
        if service_type not in SERVICE_TYPES:
            raise StatusError(Code.PARAM_VALUE, f"unknown serviceType {service_type!r}; known: {', '.join(SERVICE_TYPES)}")
        need_hc = kind in (SignatureKind.HC, SignatureKind.HPCHC)
        need_hpc = kind in (SignatureKind.HPC, SignatureKind.HPCHC)
        self._need(sam=SamState.VERIFIED, hpc=HpcState.VERIFIED if need_hpc else None, hc=HcState.READY if need_hc else None)
        async with self.lock:
            assert self.sam_ids is not None
            sam_id, hosp_id = self.sam_ids
            hc = await self._hc_basic_locked() if need_hc else None
            hpc = self.hpc_cache if need_hpc else None
            async with self._io("sam") as conn:
                sess = SamSession(conn)
                await sess.select()
                client_random = base64.b64encode(await sess.challenge()).decode()
                fields = dict(
                    serviceType=service_type,
                    clientRandom=client_random,
                    samId=sam_id,
                    hospitalId=hosp_id,
                    hcId=hc.cardNo if hc else None,
                    hcIdNo=hc.idNo if hc else None,
                    hpcId=hpc.cardId if hpc else None,
                    hpcIdNo=hpc.idNo if hpc else None,
                )
                sig = await sess.internal_authenticate(signing.digest(signing.canonical_message(**fields)))
        return SignatureResponse(signature=base64.b64encode(sig).decode(), **{k: v for k, v in fields.items() if v is not None})
