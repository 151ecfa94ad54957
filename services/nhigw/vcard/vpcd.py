"""vpcd link: put a virtual card into a real pcscd through vsmartcard's vpcd driver.

The card is the TCP *client* of vpcd (slot 0 on port 35963, slot 1 on 35964, ...).
Frames are a 2-byte big-endian length and a payload; a 1-byte payload is a control
(0 power off, 1 power on, 2 reset, 4 get ATR, answered with the ATR); a longer one
is an APDU, answered with data + SW. Closing the socket removes the card.

The driver writes each frame in two pieces, so the socket sets ``TCP_NODELAY`` and
re-arms ``TCP_QUICKACK`` before every receive: without it Linux's delayed ACK costs
~40 ms per APDU.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from nhigw.common.logging import get_logger
from nhigw.vcard.cards import ATR, VirtualCard

log = get_logger("nhigw.vcard.vpcd")

VPCD_BASE_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class VpcdLink:
    """One virtual card in one vpcd slot. ``insert()`` connects, ``remove()`` disconnects."""

    def __init__(self, card: VirtualCard, host: str = "127.0.0.1", port: int = VPCD_BASE_PORT) -> None:
        self.card = card
        self.host, self.port = host, port
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.connected = asyncio.Event()

    async def insert(self, *, timeout_s: float = 5.0) -> None:
        if self._task and not self._task.done():
            return
        self.connected.clear()
        self._task = asyncio.create_task(self._run(), name=f"vpcd:{self.port}")
        await asyncio.wait_for(self.connected.wait(), timeout_s)

    async def remove(self) -> None:
        task, self._task = self._task, None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.connected.clear()

    async def _recv_exact(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            _quickack(sock)
            chunk = await loop.sock_recv(sock, n - len(buf))
            if not chunk:
                raise ConnectionError("vpcd closed the connection")
            buf += chunk
        return buf

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (self.host, self.port))
            except OSError:
                sock.close()
                await asyncio.sleep(0.2)  # pcscd (vpcd) not listening yet: keep trying until removed
                continue
            except BaseException:  # removed (cancelled) while connecting: the socket is not ours to keep
                sock.close()
                raise
            self._sock = sock
            self.connected.set()
            log.info("vcard_inserted", card=self.card.kind, port=self.port)
            try:
                while True:
                    (length,) = struct.unpack(">H", await self._recv_exact(loop, sock, 2))
                    payload = await self._recv_exact(loop, sock, length)
                    if length == 1:
                        ctrl = payload[0]
                        if ctrl in (CTRL_OFF, CTRL_RESET, CTRL_ON):
                            self.card.reset()
                            continue
                        if ctrl == CTRL_ATR:
                            reply = ATR
                        else:
                            continue
                    else:
                        reply = self.card.transmit(payload)
                    await loop.sock_sendall(sock, struct.pack(">H", len(reply)) + reply)
            except (ConnectionError, OSError):
                self.connected.clear()
                log.info("vpcd_disconnected", port=self.port)
                sock.close()
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()
