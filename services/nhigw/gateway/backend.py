"""Where a gateway deployment keeps what its replicas share: Redis, or this process's memory.

Decided once, by ``make_backend`` from the bus the deployment runs on (a ``RedisBus``: every
replica shares its Redis; the in-memory bus of ``nhigw up``: one process). The engine uses the
parts it gets (``kv``, ``queue``, ``audit``, ``sessions``, ``history``) and ``end_job``, and never asks which
kind it has.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nhigw.bus.base import Bus
from nhigw.bus.redis import RedisBus
from nhigw.bus.redisurl import is_sentinel
from nhigw.bus.resp import ReplicaWait
from nhigw.bus.seal import Sealer
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import QueuedJob
from nhigw.gateway.audit import AuditLog, AuditRecord, FileAudit, JobEnd, JobStream, MemoryAudit, RedisAudit, audit_key
from nhigw.gateway.history import History
from nhigw.gateway.queue import MAX_DELIVERIES, Delivery, MemoryQueue, RedisQueue, WorkQueue
from nhigw.gateway.sessions import RedisSessionIndex, SessionIndex
from nhigw.gateway.store import KV, MemoryKV, RedisKV

SESSION_INDEX_TTL_S = 86400.0  # a device-session index key outlives every session it counts


@dataclass(frozen=True)
class BackendSettings:
    """What the shared parts need to know (from ``GatewaySettings``)."""

    keys: BusKeys
    box: Sealer  # seals queued jobs
    instance: str  # this replica (the consumer name; ``done`` is not sent to itself)
    gateway_key: bytes | None = None  # keys the audit chain
    max_deliveries: int = MAX_DELIVERIES
    idempotency_window_s: float = 24 * 3600.0
    audit_path: Path | None = None  # the one-process audit file (memory); None: in memory
    replica_wait: int | None = None  # None: 1 under Sentinel, 0 (off) on one Redis
    replica_wait_ms: int = 1000


class Backend(abc.ABC):
    """The parts one deployment shares (``make_backend``)."""

    shared: bool  # True: other processes see the same state (Redis)
    kv: KV
    queue: WorkQueue
    audit: AuditLog
    sessions: SessionIndex  # device-session bounds
    history: History  # the dashboard's last hours (per minute and route)

    @abc.abstractmethod
    async def end_job(self, rec: AuditRecord | None, end: JobEnd, known: Mapping[str, QueuedJob]) -> Delivery | None:
        """The job's audit record (if any), then its end: the answer stored (``end.store``, never over
        one already stored) or the key released, ``done`` to the replicas that wait, the entry acknowledged.
        With ``end.take``, the next new entry for this replica, delivered in the same step (None: none
        waiting, or a backend whose worker loop reads them); ``known`` as for ``WorkQueue.read``."""


class RedisBackend(Backend):
    shared = True

    def __init__(self, bus: RedisBus, s: BackendSettings) -> None:
        client, keys = bus.client, s.keys
        n = s.replica_wait if s.replica_wait is not None else (1 if is_sentinel(bus.url) else 0)
        wait = ReplicaWait(n, s.replica_wait_ms) if n > 0 else None
        self.kv = RedisKV(client, wait=wait)
        self.queue = self._queue = RedisQueue(client, keys.jobs, keys.jobs_group, keys.dead, max_deliveries=s.max_deliveries, box=s.box, wait=wait, answer_prefix=keys.answer(""))
        jobs = JobStream(keys.jobs, keys.jobs_group, int(s.idempotency_window_s * 1000), keys.done(""), s.instance, keys.answer(""))
        self._audit = RedisAudit(client, keys, audit_key(s.gateway_key), jobs, wait=wait)
        self.audit = self._audit
        self.sessions = RedisSessionIndex(client, SESSION_INDEX_TTL_S)
        self.history = History(client, keys)

    async def end_job(self, rec: AuditRecord | None, end: JobEnd, known: Mapping[str, QueuedJob]) -> Delivery | None:
        handed = await self._audit.finish_job(rec, end)  # one script, batched with other jobs' ends (``RedisAudit``)
        return self._queue.handed(handed.id, handed.fields, known) if handed is not None else None


class MemoryBackend(Backend):
    """One process: the state in memory (the audit in a file when ``audit_path`` is set)."""

    shared = False

    def __init__(self, bus: Bus, s: BackendSettings) -> None:
        self.bus, self.window_s = bus, s.idempotency_window_s
        self.kv = MemoryKV()
        self.queue = MemoryQueue(max_deliveries=s.max_deliveries)
        akey = audit_key(s.gateway_key, s.audit_path.with_name("audit.key") if s.audit_path else None)
        self.audit = FileAudit(s.audit_path, akey) if s.audit_path else MemoryAudit(akey)
        self.sessions = SessionIndex()
        self.history = History(None, s.keys)
        self.keys, self.instance = s.keys, s.instance

    async def end_job(self, rec: AuditRecord | None, end: JobEnd, known: Mapping[str, QueuedJob]) -> Delivery | None:
        if rec is not None:
            await self.audit.append(rec)
        if end.store:
            await self.kv.set(end.answer, end.sealed, ttl_s=self.window_s, nx=True)
        else:
            await self.kv.delete(end.inflight)
            if end.marker and await self.kv.get(end.attempted) == end.marker:
                await self.kv.delete(end.attempted)
        if end.origin and end.origin != self.instance:  # gateways sharing one in-memory bus (tests)
            await self.bus.publish(self.keys.done(end.origin), end.message)
        await self.queue.ack(end.entry_id)
        return None  # the worker loop reads the next entry (in memory it costs no round trip)


def make_backend(bus: Bus, settings: BackendSettings) -> Backend:
    """The deployment's one decision "Redis or memory", made from its bus."""
    if isinstance(bus, RedisBus):
        return RedisBackend(bus, settings)
    return MemoryBackend(bus, settings)
