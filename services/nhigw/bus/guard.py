"""What keeps a bus receiver alive: drop and count bad messages, remember what ran, restart what died.

Anyone who may publish on a channel (the agents' shared Redis ACL user ``agent`` may publish on
presence, enrolment, calls, sessions and reply channels) can send any bytes there. So every
receiver of the gateway and of the agent (registry, reply and done channels, enrolment, agent
calls and sessions) reads through one loop, ``serve`` (the job stream's entries that do not open
or parse, and replayed ones, are counted the same way, receiver ``jobs``):

- a message longer than the receiver's ``max_bytes`` is dropped before it is parsed;
- a handler that raises anything (a forgery, bad JSON, ``RecursionError`` from deep nesting,
  a huge number, invalid UTF-8, a wrong type) drops that message only, never the loop;
- every drop is counted in ``Drops`` (by receiver and reason: the gateway exports it as the
  Prometheus counter ``nhigw_gateway_bus_messages_dropped_total``) and logged once per
  ``log_every_s`` per receiver with the counts since the last line, not once per message, so a
  flood costs neither a log line nor a Redis round trip per message.

``Seen`` remembers the ids of calls a receiver has run until their deadline, so a sealed call
captured on the bus and published again is not run twice (a call without a deadline bound
cannot be remembered, so one whose deadline is further away than ``max_ahead_s``, a day, is refused).

``Supervisor`` runs each background task: if one dies anyway (a bug, not a message), it is logged
with its traceback, its readiness check fails (``nhigw.common.health``), and it is started again
after a capped exponential backoff; the check passes again once it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from nhigw.bus.base import Subscription
from nhigw.bus.seal import SealError, open_envelope
from nhigw.common.health import Readiness
from nhigw.common.logging import get_logger

log = get_logger("nhigw.bus.guard")

# Biggest message each kind of receiver accepts (bytes, as received). Real ones are far smaller:
# a presence or an enrolment is < 2 KB, a call or a reply carries one 6.0 component body (a few KB);
# a ``done`` message carries a whole NHI cloud answer, sealed.
MAX_SMALL_BYTES = 16 * 1024  # presence, enrolment
MAX_CALL_BYTES = 256 * 1024  # calls, session calls, replies
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # done (a stored answer)


class Drop(Exception):
    """Raised by a handler to drop the message with a named ``reason`` (counted, logged by interval)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Drops:
    """Dropped bus messages by (receiver, reason); one log line per receiver per ``log_every_s``."""

    log_every_s: float = 10.0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _unlogged: dict[str, Counter[str]] = field(default_factory=dict)
    _logged_at: dict[str, float] = field(default_factory=dict)

    def drop(self, receiver: str, reason: str) -> None:
        self.counts[(receiver, reason)] += 1
        pending = self._unlogged.setdefault(receiver, Counter())
        pending[reason] += 1
        now = time.monotonic()
        if now - self._logged_at.get(receiver, -1e9) >= self.log_every_s:
            self._logged_at[receiver] = now
            log.warning("bus_messages_dropped", receiver=receiver, dropped=dict(pending), interval_s=self.log_every_s)
            pending.clear()

    def total(self, receiver: str | None = None) -> int:
        return sum(n for (r, _), n in self.counts.items() if receiver is None or r == receiver)


def reason_of(exc: BaseException) -> str:
    """The drop reason for an exception a handler raised: short, stable names for the metric's label."""
    if isinstance(exc, Drop):
        return exc.reason
    if isinstance(exc, RecursionError):
        return "too_deep"
    if isinstance(exc, UnicodeError):
        return "bad_utf8"
    if isinstance(exc, ValueError):  # pydantic's ValidationError and json's JSONDecodeError are ValueErrors
        return "malformed"
    return "error"


async def serve(sub: Subscription, receiver: str, handle: Callable[[str, bytes], Awaitable[object]], drops: Drops, *, max_bytes: int) -> None:
    """Feed ``sub``'s messages to ``handle`` one by one, until the subscription closes; no message ends it."""
    async for channel, data in sub:
        if len(data) > max_bytes:
            drops.drop(receiver, "oversized")
            continue
        try:
            await handle(channel, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any message, any failure: that message only
            drops.drop(receiver, reason_of(exc))


class _Call(Protocol):
    @property
    def workstation(self) -> str: ...
    @property
    def requestId(self) -> str: ...
    @property
    def deadline(self) -> float: ...


C = TypeVar("C", bound=_Call)


class Seen:
    """Ids already run, each remembered until its deadline (epoch seconds)."""

    def __init__(self, *, max_ahead_s: float = 86400.0) -> None:
        # Calls are sealed, so only a gateway sets their deadline (at most minutes ahead of its clock); the
        # bound is for a gateway clock far ahead of the agent's: up to a day still works, and memory stays
        # bounded by the calls of that day.
        self.max_ahead_s = max_ahead_s
        self._until: dict[str, float] = {}
        self._next_sweep = 0.0

    def first(self, request_id: str, deadline: float) -> bool:
        """True the first time ``request_id`` is seen before ``deadline`` (and remembers it); raises ``Drop`` otherwise."""
        now = time.time()
        self.sweep(now)
        if deadline < now:
            raise Drop("expired")
        if deadline > now + self.max_ahead_s:
            raise Drop("deadline_too_far")  # could not be remembered until it passes
        if not self.remember(request_id, deadline):
            raise Drop("replayed")
        return True

    def remember(self, request_id: str, until: float) -> bool:
        """Remember ``request_id`` until ``until``; False if it was already remembered."""
        self.sweep(time.time())
        if request_id in self._until:
            return False
        self._until[request_id] = until
        return True

    def open_call(self, key: bytes, workstation: str, channel: str, data: bytes, parse: Callable[[bytes], C]) -> C:
        """A sealed call for ``workstation``, as the agent's receivers take it: opened under its ``key`` on
        ``channel``, parsed, addressed to it and first seen before its deadline; raises ``Drop`` otherwise."""
        try:
            _ws, plain = open_envelope(lambda w: key if w == workstation else None, channel, data)
        except SealError as exc:
            raise Drop("forged") from exc
        call = parse(plain)
        if call.workstation != workstation:
            raise Drop("wrong_workstation")
        self.first(call.requestId, call.deadline)  # Drop: expired, replayed
        return call

    def sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            for k in [k for k, t in self._until.items() if t < now]:
                del self._until[k]

    def __len__(self) -> int:
        return len(self._until)


class Supervisor:
    """Background tasks that are restarted, with backoff, when they die; each one a readiness check."""

    def __init__(self, readiness: Readiness | None = None, *, first_backoff_s: float = 0.1, max_backoff_s: float = 5.0) -> None:
        self.readiness = readiness
        self.first_backoff_s, self.max_backoff_s = first_backoff_s, max_backoff_s
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.running: dict[str, bool] = {}
        self.restarts: Counter[str] = Counter()

    def start(self, name: str, fn: Callable[[], Awaitable[object]]) -> asyncio.Task[None]:
        self.running[name] = True
        if self.readiness is not None:
            self.readiness.add(f"task:{name}", lambda: self.running.get(name, False))
        t = self.tasks[name] = asyncio.create_task(self._keep(name, fn), name=name)
        return t

    async def _keep(self, name: str, fn: Callable[[], Awaitable[object]]) -> None:
        backoff = self.first_backoff_s
        while True:
            self.running[name] = True
            started = time.monotonic()
            try:
                await fn()
                log.error("task_ended", task=name)  # a receiver returns only when its subscription was closed under it
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- logged with its traceback; restarted below
                log.exception("task_died", task=name)
            self.running[name] = False
            self.restarts[name] += 1
            if time.monotonic() - started > 30.0:
                backoff = self.first_backoff_s  # it had been running fine: a fresh failure, not a loop
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def stop(self, *names: str) -> None:
        """Cancel the named tasks (all of them without names) and wait for them to end."""
        tasks = [self.tasks.pop(n) for n in (names or list(self.tasks)) if n in self.tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for n in names or list(self.running):
            self.running.pop(n, None)
            if self.readiness is not None:
                self.readiness.remove(f"task:{n}")

    async def close(self) -> None:
        await self.stop()
