"""The card-connection seam and its two adapters.

``CardConnection.transmit(apdu) -> (data, sw)`` is all card logic ever sees. The
pyscard adapter runs every blocking PC/SC call on one dedicated worker thread (never
on the event loop); the in-process adapter talks to ``nhigw.vcard`` cards directly.

Card events: ``ReaderBackend.wait_change(timeout_s)`` returns when a reader or a card
changed (or at the timeout). The pyscard adapter blocks in ``SCardGetStatusChange`` (with the
PnP reader, so a reader plugged in or out wakes it too) on a second worker thread with its
own PC/SC context, so the card monitor does not poll; ``close`` cancels it (``SCardCancel``).
When pcscd is gone the wait fails at once: the adapter drops its contexts and re-establishes
them on the next call, so a restarted pcscd is picked up without restarting the agent.

Exceptions::

    CardIOError             any failure talking to a card or reader
    ├── NoCardError         no card in that reader, or it was removed (6.0: 1102)
    └── ReaderGoneError     the reader itself is gone (6.0: 1101)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from nhigw.common.logging import get_logger

log = get_logger("nhigw.agent.cardio")
T = TypeVar("T")


class CardIOError(Exception):
    pass


class NoCardError(CardIOError):
    pass


class ReaderGoneError(CardIOError):
    pass


class CardConnection(Protocol):
    reader: str
    apdu_count: int

    async def transmit(self, apdu: bytes) -> tuple[bytes, int]: ...

    async def close(self) -> None: ...


class ReaderBackend(Protocol):
    name: str

    async def readers(self) -> list[str]: ...

    async def connect(self, reader: str) -> CardConnection: ...

    async def presence(self) -> dict[str, bytes | None]:
        """reader -> ATR (or another token that changes when the card changes), None when empty."""
        ...

    async def wait_change(self, timeout_s: float) -> bool:
        """Return when a reader or card may have changed (True) or at the timeout (False)."""
        ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- in-process


class InProcessConnection:
    def __init__(self, backend: "InProcessBackend", reader: str) -> None:
        self.backend, self.reader = backend, reader
        self.card = backend.bank.cards.get(reader)
        self.apdu_count = 0
        if self.card is None:
            raise NoCardError(reader)

    async def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self.backend.bank.cards.get(self.reader) is not self.card:
            raise NoCardError(f"card removed from {self.reader}")
        self.apdu_count += 1
        resp = self.card.transmit(apdu)
        return resp[:-2], (resp[-2] << 8) | resp[-1]

    async def close(self) -> None:
        return None


class InProcessBackend:
    name = "in-process"

    def __init__(self, bank: Any) -> None:  # nhigw.vcard.bank.VirtualReaderBank
        self.bank = bank
        self._seen_generation = getattr(bank, "generation", 0)

    async def readers(self) -> list[str]:
        return list(self.bank.names)

    async def connect(self, reader: str) -> CardConnection:
        if reader not in self.bank.names:
            raise ReaderGoneError(reader)
        return InProcessConnection(self, reader)

    async def presence(self) -> dict[str, bytes | None]:
        return {r: (id(self.bank.cards[r]).to_bytes(8, "little") if r in self.bank.cards else None) for r in self.bank.names}

    async def wait_change(self, timeout_s: float) -> bool:
        listeners = getattr(self.bank, "listeners", None)
        if self.bank.generation != self._seen_generation:
            self._seen_generation = self.bank.generation
            return True
        if listeners is None:  # an older bank without listeners: a short sleep
            await asyncio.sleep(min(timeout_s, 0.05))
            return self.bank.generation != self._seen_generation
        loop = asyncio.get_running_loop()
        ev = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(ev.set)

        listeners.append(wake)
        try:
            await asyncio.wait_for(ev.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            listeners.remove(wake)
        self._seen_generation = self.bank.generation
        return True

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------- pyscard


class PcscBackend:
    """PC/SC through pyscard. One worker thread owns every PC/SC call."""

    name = "pcsc"

    PNP = "\\\\?PnP?\\Notification"

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcsc")
        self._wait_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcsc-wait")
        self._ctx: Any = None
        self._wctx: Any = None
        self._known: dict[str, int] = {}
        self._closing = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _context(self) -> Any:
        from smartcard.scard import (
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCardEstablishContext,
        )

        if self._ctx is None:
            hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
            if hresult != SCARD_S_SUCCESS:
                raise ReaderGoneError("cannot reach pcscd")
            self._ctx = ctx
        return self._ctx

    def _readers_sync(self) -> list[str]:
        from smartcard.scard import SCARD_S_SUCCESS, SCardListReaders

        hresult, readers = SCardListReaders(self._context(), [])
        if hresult != SCARD_S_SUCCESS:
            self._ctx = None  # pcscd restarted or no readers: re-establish next time
            return []
        return list(readers)

    async def readers(self) -> list[str]:
        return await self._run(self._readers_sync)

    def _presence_sync(self) -> dict[str, bytes | None]:
        from smartcard.scard import (
            SCARD_S_SUCCESS,
            SCARD_STATE_PRESENT,
            SCARD_STATE_UNAWARE,
            SCardGetStatusChange,
        )

        readers = self._readers_sync()
        if not readers:
            return {}
        hresult, states = SCardGetStatusChange(self._context(), 0, [(r, SCARD_STATE_UNAWARE) for r in readers])
        if hresult != SCARD_S_SUCCESS:
            return {r: None for r in readers}
        out: dict[str, bytes | None] = {}
        for reader, event_state, atr in states:
            # The event counter (high 16 bits) changes on every insert/remove, so a swapped card is noticed.
            # pyscard sometimes hands the ATR back padded with NULs to its buffer size: strip them, or a
            # card would look swapped (and the SAM lose its verification) when nothing happened.
            out[reader] = (bytes(atr).rstrip(b"\x00") + (event_state >> 16).to_bytes(2, "big")) if event_state & SCARD_STATE_PRESENT else None
        return out

    async def presence(self) -> dict[str, bytes | None]:
        return await self._run(self._presence_sync)

    def _wait_sync(self, timeout_ms: int) -> bool:
        from smartcard.scard import (
            SCARD_E_TIMEOUT,
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCARD_STATE_CHANGED,
            SCARD_STATE_UNAWARE,
            SCardEstablishContext,
            SCardGetStatusChange,
            SCardListReaders,
            SCardReleaseContext,
        )

        if self._closing:
            return False
        if self._wctx is None:
            hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
            if hresult != SCARD_S_SUCCESS:
                time.sleep(min(timeout_ms, 1000) / 1000)  # pcscd not (yet) running
                return True
            self._wctx = ctx
        hresult, readers = SCardListReaders(self._wctx, [])
        readers = list(readers) if hresult == SCARD_S_SUCCESS else []
        states = [(r, self._known.get(r, SCARD_STATE_UNAWARE)) for r in readers]
        states.append((self.PNP, self._known.get(self.PNP, SCARD_STATE_UNAWARE) if readers else SCARD_STATE_UNAWARE))
        hresult, new = SCardGetStatusChange(self._wctx, timeout_ms, states)
        if hresult == SCARD_E_TIMEOUT:
            return False
        if hresult != SCARD_S_SUCCESS:
            # Cancelled, or pcscd went away: start again with a fresh context next time.
            with contextlib.suppress(Exception):
                SCardReleaseContext(self._wctx)
            self._wctx = None
            self._known = {}
            if not self._closing:
                time.sleep(0.2)
            return True
        changed = False
        known: dict[str, int] = {}
        for reader, event_state, _atr in new:
            changed |= bool(event_state & SCARD_STATE_CHANGED)
            known[reader] = event_state & ~SCARD_STATE_CHANGED
        self._known = known
        return changed

    async def wait_change(self, timeout_s: float) -> bool:
        if self._closing:
            return False
        return await asyncio.get_running_loop().run_in_executor(self._wait_pool, self._wait_sync, int(timeout_s * 1000))

    def _connect_sync(self, reader: str) -> "PcscConnection":
        from smartcard.Exceptions import CardConnectionException, NoCardException
        from smartcard.System import readers as list_readers

        match = [r for r in list_readers() if str(r) == reader]
        if not match:
            raise ReaderGoneError(reader)
        conn = match[0].createConnection()
        try:
            conn.connect()
        except (NoCardException, CardConnectionException) as exc:
            release_connection(conn)
            raise NoCardError(f"no card in {reader}") from exc
        return PcscConnection(self, reader, conn)

    async def connect(self, reader: str) -> CardConnection:
        return await self._run(self._connect_sync, reader)

    def _release_context_sync(self) -> None:
        from smartcard.scard import SCardReleaseContext

        if self._ctx is not None:
            try:
                SCardReleaseContext(self._ctx)
            except Exception:  # pcscd already gone
                pass
            self._ctx = None

    async def close(self) -> None:
        if self._pool._shutdown:  # closed already
            return
        self._closing = True
        if self._wctx is not None:
            from smartcard.scard import SCardCancel

            with contextlib.suppress(Exception):
                SCardCancel(self._wctx)  # wakes a blocked SCardGetStatusChange (allowed from any thread)
        await asyncio.get_running_loop().run_in_executor(None, lambda: self._wait_pool.shutdown(wait=True, cancel_futures=True))
        if self._wctx is not None:
            from smartcard.scard import SCardReleaseContext

            with contextlib.suppress(Exception):
                SCardReleaseContext(self._wctx)
            self._wctx = None
        await self._run(self._release_context_sync)
        self._pool.shutdown(wait=False, cancel_futures=True)


def release_connection(conn: Any) -> None:
    """Disconnect and release a pyscard connection now, not in ``__del__`` (which may run after pcscd is gone).

    When pcscd restarted, the release fails (invalid handle) and pyscard would try again, and
    raise, in ``__del__``: the dead handle is forgotten here instead.
    """
    for step in (conn.disconnect, getattr(conn, "release", None)):
        if step is None:
            continue
        try:
            step()
        except Exception:  # already gone with the card or the daemon
            pass
    inner = getattr(conn, "component", conn)
    if getattr(inner, "hcontext", None) is not None:
        inner.hcard = None
        inner.hcontext = None


class PcscConnection:
    def __init__(self, backend: PcscBackend, reader: str, conn: Any) -> None:
        self.backend, self.reader, self._conn = backend, reader, conn
        self.apdu_count = 0

    def _transmit_sync(self, apdu: bytes) -> tuple[bytes, int]:
        from smartcard.Exceptions import CardConnectionException

        try:
            data, sw1, sw2 = self._conn.transmit(list(apdu))
        except CardConnectionException as exc:
            raise NoCardError(f"card removed from {self.reader}") from exc
        return bytes(data), (sw1 << 8) | sw2

    async def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.apdu_count += 1
        return await self.backend._run(self._transmit_sync, apdu)

    def _close_sync(self) -> None:
        release_connection(self._conn)

    async def close(self) -> None:
        await self.backend._run(self._close_sync)
