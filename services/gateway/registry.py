"""Agent registry: who is online, from the agents' presence messages.

A workstation is online while its last presence is younger than ``offline_after_s``
(default 3 s, three missed 1-second heartbeats) and it has not said it is leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from nhigw.bus.base import Bus
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import Presence

log = get_logger("nhigw.gateway.registry")


@dataclass
class Entry:
    presence: Presence
    seen_at: float


@dataclass
class Registry:
    bus: Bus
    keys: BusKeys
    offline_after_s: float = 3.0
    entries: dict[str, Entry] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def online(self, workstation: str) -> bool:
        e = self.entries.get(workstation)
        return e is not None and not e.presence.leaving and time.monotonic() - e.seen_at < self.offline_after_s

    def snapshot(self) -> list[dict[str, object]]:
        out = []
        for ws, e in sorted(self.entries.items()):
            out.append(
                {
                    "workstation": ws,
                    "online": self.online(ws),
                    "agentId": e.presence.agentId,
                    "version": e.presence.version,
                    "lastSeenAgo_s": round(time.monotonic() - e.seen_at, 3),
                    "states": e.presence.states.model_dump(),
                }
            )
        return out

    async def start(self) -> None:
        sub = await self.bus.subscribe(self.keys.presence)
        self._task = asyncio.create_task(self._run(sub), name="registry")

    async def _run(self, sub) -> None:  # type: ignore[no-untyped-def]
        async for _ch, data in sub:
            try:
                p = Presence.model_validate_json(data)
            except ValueError:
                log.warning("bad_presence")
                continue
            self.entries[p.workstation] = Entry(p, time.monotonic())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
