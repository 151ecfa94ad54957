"""The gateway's rolling history of business requests: per minute and route, the count, the errors
and a latency histogram, for the last ``WINDOW_S`` (6 h), shared by the replicas through Redis.

The dashboard's latency / error chart and its per-route table (count, error rate, p50, p99) read it
(``GET /api/ops/history?hours=3``), so a page opened now shows the last hours at once, whichever
replica served the requests. Counts are kept per hospital (the audit record's ``hospitalId``): a
hospital's key sees its hospital's requests, an all-hospitals key every request. Long-term history
is Prometheus's (``/metrics``).

Each replica counts in memory as jobs end (off the request's path) and adds its counts to Redis every
``flush_s`` (2 s): one pipeline of ``HINCRBY`` on the minute's hash (``BusKeys.history``), which expires
after the window. So Redis sees one small write every two seconds per replica, not one per request;
counts of the last ``flush_s`` of a replica that dies are lost. In one process (in-memory bus) the
counts stay in memory. Choices (the seed is silent): minutes as the resolution, latency buckets
from 5 ms to 30 s (as the Prometheus histogram's), quantiles interpolated within a bucket as
Prometheus's ``histogram_quantile`` does, "error" = FHIR outcome not 0 (``nhigw.gateway.audit.outcome_of``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, Field

from nhigw.common.logging import get_logger
from nhigw.gateway.store import REDIS_ERRORS, redis_errors

if TYPE_CHECKING:
    from nhigw.bus.guard import Supervisor
    from nhigw.contracts.buskeys import BusKeys

log = get_logger("nhigw.gateway.history")

WINDOW_S = 6 * 3600
BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, math.inf)
# A minute's fields, per hospital (empty: a request of no known hospital) and route: "<hospital>|<route>|n",
# "...|err", "...|us" (latency sum, µs), "...|b<i>" (bucket i). Fields without a hospital ("<route>|n", as
# written before hospitals were kept) count for no hospital: only an all-hospitals key sees them.
Counts = dict[str, int]


def bucket_of(ms: float) -> int:
    return next(i for i, b in enumerate(BOUNDS_MS) if ms <= b)


def quantile(q: float, buckets: list[int]) -> float | None:
    """Pure: the ``q`` quantile (ms) of a latency histogram (counts per ``BOUNDS_MS`` bucket), linear within
    the bucket it falls in; the last (open) bucket answers its lower bound. None: no observations."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            lo = BOUNDS_MS[i - 1] if i else 0.0
            hi = BOUNDS_MS[i]
            if math.isinf(hi):
                return lo
            return round(lo + (hi - lo) * (rank - seen) / n, 2)
        seen += n
    return BOUNDS_MS[-2]


class HistoryPoint(BaseModel):
    at: int  # the minute's start, ms since the epoch
    count: int
    errors: int
    meanMs: float | None = None
    p99Ms: float | None = None


class RouteRow(BaseModel):
    route: str
    count: int
    errors: int
    errorRate: float
    p50Ms: float | None = None
    p99Ms: float | None = None


class HistoryView(BaseModel):
    """``GET /api/ops/history``: one point per minute with traffic, oldest first, and a row per route."""

    hours: float
    points: list[HistoryPoint] = Field(default_factory=list)
    routes: list[RouteRow] = Field(default_factory=list)
    statusCode: int = 0


def split_field(name: str) -> tuple[str, str, str]:
    """Pure: a minute's field name as (hospital, route, what); hospital "" when none is known."""
    head, _, what = name.rpartition("|")
    hospital, sep, route = head.partition("|")
    return (hospital, route, what) if sep else ("", head, what)


def view(minutes: dict[int, Counts], hours: float, hospital: str | None = None) -> HistoryView:
    """Pure: the chart's points and the per-route table from minute hashes (minute start in ms -> fields),
    of one hospital's requests, or of every request when ``hospital`` is None (an all-hospitals key)."""
    out = HistoryView(hours=hours)
    per_route: dict[str, list[int]] = {}
    for minute in sorted(minutes):
        fields = minutes[minute]
        n = err = us = 0
        hist = [0] * len(BOUNDS_MS)
        for name, v in fields.items():
            of, route, what = split_field(name)
            if hospital is not None and of != hospital:
                continue
            row = per_route.setdefault(route, [0, 0] + [0] * len(BOUNDS_MS))
            if what == "n":
                n += v
                row[0] += v
            elif what == "err":
                err += v
                row[1] += v
            elif what == "us":
                us += v
            elif what.startswith("b") and what[1:].isdigit() and int(what[1:]) < len(BOUNDS_MS):
                hist[int(what[1:])] += v
                row[2 + int(what[1:])] += v
        if n:
            out.points.append(HistoryPoint(at=minute, count=n, errors=err, meanMs=round(us / n / 1000, 2), p99Ms=quantile(0.99, hist)))
    for route, row in sorted(per_route.items(), key=lambda kv: -kv[1][0]):
        if row[0]:
            out.routes.append(RouteRow(route=route, count=row[0], errors=row[1], errorRate=round(row[1] / row[0], 4), p50Ms=quantile(0.5, row[2:]), p99Ms=quantile(0.99, row[2:])))
    return out


class History:
    """This replica's side of the shared history: ``observe`` (in memory), ``flush`` (to Redis), ``read``."""

    TASK = "history-flush"

    def __init__(self, client: Any, keys: "BusKeys", *, window_s: float = WINDOW_S, flush_s: float = 2.0) -> None:
        self.client, self.keys, self.window_s, self.flush_s = client, keys, window_s, flush_s
        self._pending: dict[int, Counts] = defaultdict(lambda: defaultdict(int))
        self._local: dict[int, Counts] = defaultdict(lambda: defaultdict(int))  # no Redis: the history itself

    def observe(self, route: str, error: bool, latency_ms: float, *, hospital: str | None = None, at: float | None = None) -> None:
        minute = int((at if at is not None else time.time()) // 60) * 60_000
        c = self._pending[minute]
        f = f"{(hospital or '').replace('|', '')}|{route}"
        c[f"{f}|n"] += 1
        if error:
            c[f"{f}|err"] += 1
        c[f"{f}|us"] += int(latency_ms * 1000)
        c[f"{f}|b{bucket_of(latency_ms)}"] += 1
        if self.client is None:
            self.flush_local()

    def flush_local(self) -> None:
        for minute, c in self._pending.items():
            for k, v in c.items():
                self._local[minute][k] += v
        self._pending.clear()
        oldest = (time.time() - self.window_s) * 1000
        for minute in [m for m in self._local if m < oldest - 60_000]:
            del self._local[minute]

    async def flush(self) -> None:
        """Add this replica's counts to Redis (one pipeline); on failure they stay pending for the next flush."""
        if self.client is None or not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        try:
            async with self.client.pipeline(transaction=False) as p:
                for minute, c in pending.items():
                    key = self.keys.history(minute)
                    for k, v in c.items():
                        p.hincrby(key, k, v)
                    p.pexpire(key, int((self.window_s + 120) * 1000))
                await p.execute()
        except REDIS_ERRORS as exc:
            for minute, c in pending.items():  # kept for the next flush (a partial pipeline may count some twice: a chart, not a ledger)
                for k, v in c.items():
                    self._pending[minute][k] += v
            log.warning("history_flush_failed", error=str(exc))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    def start(self, supervisor: "Supervisor") -> None:
        if self.client is not None:
            supervisor.start(self.TASK, self._run)

    async def close(self, supervisor: "Supervisor") -> None:
        if self.client is not None:
            await supervisor.stop(self.TASK)
            await self.flush()

    async def read(self, hours: float, hospital: str | None = None) -> HistoryView:
        """The last ``hours`` of one hospital's requests (None: every request)."""
        now_min = int(time.time() // 60) * 60_000
        first = now_min - int(hours * 3600 * 1000) + 60_000
        minutes = list(range(first, now_min + 1, 60_000))
        if self.client is None:
            return view({m: dict(self._local[m]) for m in minutes if m in self._local}, hours, hospital)
        with redis_errors("history read"):
            async with self.client.pipeline(transaction=False) as p:
                for m in minutes:
                    p.hgetall(self.keys.history(m))
                replies = await p.execute()
        data: dict[int, Counts] = {}
        for m, h in zip(minutes, replies, strict=True):
            if h:
                data[m] = {_s(k): int(v) for k, v in cast("dict[bytes, bytes]", h).items()}
        for m, c in self._pending.items():  # this replica's counts not flushed yet
            if m >= first:
                d = data.setdefault(m, {})
                for k, v in c.items():
                    d[k] = d.get(k, 0) + v
        return view(data, hours, hospital)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
