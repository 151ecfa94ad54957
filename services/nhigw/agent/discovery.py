"""Card discovery and monitoring: which card of which kind sits in which reader the agent uses.

A reader's presence token (its ATR, or another value that changes with the card) is compared with
the last one seen; a changed reader is identified again by selecting each kind's applet in the order
of ``nhigw.agent.cards.SESSIONS`` (the first that answers names the card; a second card of a kind
already held is ignored). What the agent keeps of a card (a SAM's ids, an HC's public data) and
forgets when it goes is the agent's: ``CardMonitor`` calls its ``found`` / ``gone`` hooks, then
reports the change (``emit``: inserted / removed; ``changed`` after a scan that changed anything).

The monitor runs one task (``start`` / ``stop``): it rescans on every change the backend reports
(PC/SC status change, no busy polling) and at least every ``interval_s``; a card reported but not
reachable yet (pcscd still powering it) is tried again within 0.25 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nhigw.agent.cardio import CardConnection, CardIOError, ReaderBackend
from nhigw.agent.cards import SESSIONS, ApduError
from nhigw.common.logging import get_logger
from nhigw.contracts.models import CardKind

log = get_logger("nhigw.agent")

# A card reported but not reached is tried again this soon (seconds), whatever the monitor's interval.
RETRY_S = 0.25


@dataclass
class Slot:
    reader: str
    kind: CardKind
    conn: CardConnection
    token: bytes | None


@dataclass
class CardMonitor:
    backend: ReaderBackend
    lock: asyncio.Lock  # the agent's card I/O lock: PC/SC readers are not re-entrant
    found: Callable[[CardKind, CardConnection], Awaitable[None]]  # read what is kept of a new card (may raise card errors)
    gone: Callable[[CardKind], None]  # forget it
    emit: Callable[[str, CardKind, str], None]  # "inserted" / "removed", kind, reader
    changed: Callable[[], None]
    active: Callable[[], bool]  # initialised: nothing is watched before Initial
    readers_in_use: list[str] = field(default_factory=list)
    slots: dict[CardKind, Slot] = field(default_factory=dict)
    tokens: dict[str, bytes | None] = field(default_factory=dict)  # reader -> presence token
    retry_soon: bool = False
    _task: asyncio.Task[None] | None = None

    async def identify(self, reader: str, token: bytes | None) -> bool:
        """Find which card sits in ``reader``; False when a card is reported but could not be reached (retried soon)."""
        for kind, slot in list(self.slots.items()):
            if slot.reader == reader:
                self.drop(kind)
                with contextlib.suppress(Exception):
                    await slot.conn.close()
        if token is None:
            return True
        try:
            conn = await self.backend.connect(reader)
        except CardIOError:
            return False
        for kind, cls in SESSIONS.items():
            try:
                if await cls(conn).select():
                    if kind in self.slots:  # a second card of a kind: first one wins
                        break
                    await self.found(kind, conn)
                    self.slots[kind] = Slot(reader, kind, conn, token)
                    log.info("card_found", kind=kind, reader=reader)
                    self.emit("inserted", kind, reader)
                    return True
            except (CardIOError, ApduError, ValueError):
                with contextlib.suppress(Exception):
                    await conn.close()
                return False
        await conn.close()
        return True  # a card, but none of ours (or a second card of a kind)

    def drop(self, kind: CardKind) -> Slot | None:
        """Forget the card of ``kind`` (its connection is the caller's to close)."""
        slot = self.slots.pop(kind, None)
        if slot is None:
            return None
        log.info("card_gone", kind=kind, reader=slot.reader)
        self.gone(kind)
        self.emit("removed", kind, slot.reader)
        return slot

    async def watch(self, readers: list[str], presence: dict[str, bytes | None]) -> None:
        """At Initial (under the lock): use these readers, identifying each one's card."""
        self.readers_in_use = list(readers)
        self.tokens = {}
        for reader in self.readers_in_use:
            tok = presence.get(reader)
            self.tokens[reader] = tok
            if not await self.identify(reader, tok):
                self.tokens[reader] = None
                self.retry_soon = True

    async def release(self) -> None:
        """At Finalize (under the lock): every card dropped and its connection closed, no reader used."""
        for kind in list(self.slots):
            slot = self.drop(kind)
            if slot is not None:
                with contextlib.suppress(Exception):
                    await slot.conn.close()
        self.readers_in_use = []
        self.tokens = {}

    async def vanished(self, kind: CardKind) -> None:
        """A card gone in the middle of a call: dropped now, its reader identified again at the next scan."""
        slot = self.drop(kind)
        if slot is None:
            return
        with contextlib.suppress(Exception):
            await slot.conn.close()
        self.tokens[slot.reader] = None
        self.changed()

    async def rescan(self) -> bool:
        """Compare every reader's presence token with the last one; re-identify changes. True if anything changed."""
        if not self.active():
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
                    if not await self.identify(reader, new):
                        self.tokens[reader] = None  # not identified (e.g. pcscd still powering it): try again soon
                        self.retry_soon = True
                    changed = True
        if changed:
            self.changed()
        return changed

    async def run(self, interval_s: float) -> None:
        """Rescan on every change the backend reports, and at least every ``interval_s`` as a safety net."""
        wait = getattr(self.backend, "wait_change", None)
        while True:
            try:
                await self.rescan()
            except Exception:  # keep watching whatever one scan did
                log.exception("monitor_error")
            timeout_s = min(interval_s, RETRY_S) if self.retry_soon else interval_s
            self.retry_soon = False
            if wait is None:
                await asyncio.sleep(timeout_s)
                continue
            try:
                await wait(timeout_s)
            except Exception:
                log.exception("monitor_wait_error")
                await asyncio.sleep(interval_s)

    def start(self, interval_s: float = 1.0) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(interval_s), name="card-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
