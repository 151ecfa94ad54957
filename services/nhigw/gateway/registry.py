"""Agent registry: who is online, from the agents' sealed presence messages.

A workstation is online while its last presence is younger than ``offline_after_s``
(default 3 s, three missed 1-second heartbeats) and it has not said it is leaving.
A presence counts only when it opens with that workstation's enrolled agent key, names
the same workstation and agent inside, and its ``sentAt`` is strictly later than that agent's
last accepted one (a captured heartbeat published again, even the latest, cannot keep a frozen or
dead workstation "online"); the agent's clock may be off by minutes, but must not go back (after a
clock step back its presence is refused until its clock passes the last ``sentAt``; a re-enrolled
agent, with a new ``agentId``, starts afresh). Anything else is dropped without touching any
state, counted (``rejected``; ``Drops`` by reason) and logged once per interval, not per message
(``nhigw.bus.guard``); a flood of forgeries costs no Redis round trip each (``AgentKeys.open``).

Caught up: a replica that just started, or whose bus just reconnected (Redis restarted),
has not yet heard the agents that are online. It trusts "offline" only once it has listened without
a break for ``warmup_s`` (default 1.5 s: agents send a presence every second, and at once when they
reconnect); until then ``caught_up`` is False (the ``registry`` readiness check fails, ``/readyz``
503) and ``settled`` waits for it, so a workstation that is online is never answered 9400 by a
replica that has not heard it yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nhigw.bus.base import Bus, Subscription
from nhigw.bus.guard import MAX_SMALL_BYTES, Drop, Drops, serve
from nhigw.bus.seal import SealError
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import Presence
from nhigw.gateway.agents import AgentKeys

log = get_logger("nhigw.gateway.registry")

# Presence times come from the agent's clock: only one more than this far from the gateway's is refused outright
# (a replay is caught by ``sentAt`` not increasing; liveness uses the gateway's own clock).
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
    warmup_s: float = 1.5
    entries: dict[str, Entry] = field(default_factory=dict)
    _sub: Subscription | None = None

    RECEIVER = "presence"

    @property
    def drops(self) -> Drops:
        return self.agents.drops

    @property
    def rejected(self) -> int:
        """Presence messages dropped (forged, replayed, stale, malformed, oversized)."""
        return self.drops.total(self.RECEIVER)

    def online(self, workstation: str) -> bool:
        e = self.entries.get(workstation)
        return e is not None and not e.presence.leaving and time.monotonic() - e.seen_at < self.offline_after_s

    def caught_up(self) -> bool:
        """Has this replica listened long enough, without a break, to know who is online?"""
        since = self.bus.live_since
        return since is not None and (since == 0.0 or time.monotonic() - since >= self.warmup_s) and self._sub is not None

    async def settled(self, workstation: str, wait_s: float | None = None) -> bool | None:
        """Is ``workstation`` online? Waits (at most ``wait_s``, default ``warmup_s`` + 0.5 s) while
        it is not and the registry has not caught up; None: still not caught up (the bus is away)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.warmup_s + 0.5 if wait_s is None else wait_s)
        while not self.online(workstation):
            if self.caught_up():
                return False
            if loop.time() >= end:
                return None
            await asyncio.sleep(0.05)
        return True

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
                    "tls": e.presence.tls.model_dump() if e.presence.tls else None,
                }
            )
        return out

    async def start(self) -> None:
        sub = self._sub = await self.bus.subscribe(self.keys.presence)
        self.agents.supervisor.start("registry", lambda: serve(sub, self.RECEIVER, self._accept, self.drops, max_bytes=MAX_SMALL_BYTES))

    async def _accept(self, channel: str, data: bytes) -> Presence:
        try:
            ws, plain = await self.agents.open(channel, data)
        except SealError as exc:
            raise Drop("forged") from exc
        p = Presence.model_validate_json(plain)
        if p.workstation != ws or p.agentId != self.agents.agent_id(ws):
            raise Drop("forged")
        prev = self.entries.get(ws)
        if prev is not None and prev.presence.agentId == p.agentId and p.sentAt <= prev.presence.sentAt:
            raise Drop("replayed")
        now = time.time()
        if not now - MAX_CLOCK_SKEW_S <= p.sentAt <= now + MAX_CLOCK_SKEW_S:  # (NaN too) one far ahead would block the next ones
            raise Drop("stale")
        self.entries[ws] = Entry(p, time.monotonic())
        return p

    async def close(self) -> None:
        await self.agents.supervisor.stop("registry")
        if self._sub:
            await self._sub.close()
