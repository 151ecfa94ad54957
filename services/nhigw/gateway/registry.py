"""Agent registry: who is online, from the agents' sealed presence messages.

A workstation is online while its last presence is younger than ``offline_after_s``
(default 3 s, three missed 1-second heartbeats) and it has not said it is leaving.
A presence counts only when it opens with that workstation's enrolled agent key, names
the same workstation and agent inside, and is not older than the last one (a replayed old
heartbeat cannot keep a dead workstation "online"); the agent's clock may be off by minutes. Anything else is dropped and counted
in ``rejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nhigw.bus.base import Bus, Subscription
from nhigw.bus.seal import SealError
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import Presence
from nhigw.gateway.agents import AgentKeys

log = get_logger("nhigw.gateway.registry")

# Presence times come from the agent's clock: only a wildly old one is refused outright (a replay
# within a run is caught by ``sentAt`` going backwards; liveness uses the gateway's own clock).
MAX_CLOCK_SKEW_S = 300.0


@dataclass
class Entry:
    presence: Presence
    seen_at: float


@dataclass
class Registry:
    bus: Bus
    keys: BusKeys
    agents: AgentKeys
    offline_after_s: float = 3.0
    entries: dict[str, Entry] = field(default_factory=dict)
    rejected: int = 0
    _task: asyncio.Task[None] | None = None
    _sub: Subscription | None = None

    def online(self, workstation: str) -> bool:
        e = self.entries.get(workstation)
        return e is not None and not e.presence.leaving and time.monotonic() - e.seen_at < self.offline_after_s

    def online_count(self) -> int:
        return sum(1 for ws in self.entries if self.online(ws))

    def snapshot(self, allowed: Callable[[str], bool] | None = None) -> list[dict[str, object]]:
        out = []
        for ws, e in sorted(self.entries.items()):
            if allowed is not None and not allowed(ws):
                continue
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
        self._sub = await self.bus.subscribe(self.keys.presence)
        self._task = asyncio.create_task(self._run(self._sub), name="registry")

    async def accept(self, channel: str, data: bytes) -> Presence | None:
        try:
            ws, plain = await self.agents.open(channel, data)
            p = Presence.model_validate_json(plain)
        except (SealError, ValueError):
            self.rejected += 1
            log.warning("presence_rejected")
            return None
        prev = self.entries.get(ws)
        stale = p.sentAt < time.time() - MAX_CLOCK_SKEW_S
        if p.workstation != ws or p.agentId != self.agents.agent_id(ws) or (prev and p.sentAt < prev.presence.sentAt) or stale:
            self.rejected += 1
            log.warning("presence_rejected", workstation=ws)
            return None
        self.entries[ws] = Entry(p, time.monotonic())
        return p

    async def _run(self, sub: Subscription) -> None:
        async for channel, data in sub:
            await self.accept(channel, data)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub:
            await self._sub.close()
