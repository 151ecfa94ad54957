"""The gateway's engine: admission, the queue, the workers, the upstream call, the audit, the answers.

Life of a business request (any replica may run any step after admission):

1. *Admission* (the replica the HIS called): authenticate, route, scope, workstation
   online check (9400 at once), ``Idempotency-Key`` (taken from the header or generated),
   deadline, rate limit (all in ``nhigw.gateway.admission``). A stored answer for that client+key is returned as it is
   (``Idempotent-Replayed: true``); a key reused for a different request is refused
   (1706). Otherwise the first request with the key sets ``inflight`` and adds a
   ``QueuedJob`` to the stream in one atomic step (a Lua script); a concurrent or retried
   duplicate only waits.
2. *Work* (any replica's worker): one-call signature from the agent, the upstream call
   with the retry policy, the audit record, the answer stored for the idempotency
   window, ``done`` published, and only then XACK. A worker that dies leaves the entry
   pending; another replica reclaims it after ``claim_idle_s`` (XAUTOCLAIM). A write whose
   ``attempted`` marker is set is never sent again on a later delivery: it is answered
   9403 "outcome unknown" with its idempotency key. After ``max_deliveries`` an entry
   goes to the dead-letter stream.
3. *Answer*: the admitting replica waits for the answer up to the HIS's deadline
   (``X-Deadline-Ms``, default 30 s); past it the HIS gets 202 with 9408 and the key, and a
   retry with the same key later gets the answer.

Hot path (the gateway's own cost per request, measured in ``bench/``): two Redis round trips per request, each group-committed with the
other requests in flight (``nhigw.bus.batch``: sent at once when idle, shared under load).
*Admission* is one script for the batch (``RedisQueue.admit``): marker, XADD, and for every
request that found a free worker slot an entry delivered to this replica at once (its own job,
or an older one still waiting), so the replica that took the request normally runs it without
the worker loop's read. Entries admitted with no free slot wait: while this replica has such
entries of its own, each job's end hands its slot the next new entry in the same script (``JobEnd.take``,
``_slot``), so at saturation a slot goes from one job to the next without a read; otherwise any
replica's worker loop reads them (XREADGROUP, once it holds the slots to start them). An entry this
replica admitted runs from the job it holds (``_queued_here``: nothing to open, parse or check for a
replay). The *job's end* is one script for the batch
(``RedisAudit.finish_job``): each audit record, then its answer stored for the idempotency
window, ``done`` published, XACK + XDEL (and the hand-over). So nothing is acknowledged before the audit and the
stored answer, and a crash before the script leaves the entry pending (reclaimed).
``done`` goes only to replicas that wait: each replica subscribes to its own channel
(``BusKeys.done(instance)``); the job names the replica that admitted it (``origin``), and a
replica whose request joined a run already queued adds itself to the run's waiters set in the
admission script. Waiters on the replica that ran the job are answered in process; the others
get the answer from the message. A request waits on its future and one timer (its deadline); a
message lost while Redis reconnected is made up for by one background look (``_answer_poll``, every
0.5 s, for the keys waited on since the last look), not by a poll of each request's own.

Which answers are kept for the key: answers from the NHI cloud and 9403 (outcome unknown)
are final and stored. Answers the gateway made before anything could reach the cloud —
9400/9401 (workstation), 9402 (breaker open, not sent, or a *read* that got no answer),
9407, agent and card refusals (e.g. 1501), a malformed body — are given to the waiting
request(s) but not stored: the in-flight marker (and a write's ``attempted`` marker) is
removed instead, so a retry with the same key runs again (e.g. once the workstation is
back after a Redis restart) instead of replaying the refusal for the whole window.

Where the time went (``Phases``, sent to the HIS as a ``Server-Timing`` header, W3C):
``queue`` the admission round trip (Redis), ``sign`` the signature from the agent or device
session, ``cloud`` the NHI cloud call with its retries, ``audit`` the job's end (audit record,
stored answer, XACK: Redis), ``total`` from the request's arrival to its answer, all in ms.
``sign``, ``cloud`` and ``audit`` are known only where the job ran on the replica the HIS
called (the usual case); a joined or replayed answer has ``queue`` and ``total`` only. The
job's log line and metrics are written while the job's end is on its way to Redis (they are
not on the request's critical path).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from nhigw.bus.base import Bus, BusError, NotConfirmed
from nhigw.bus.batch import GroupCommit
from nhigw.bus.guard import MAX_ANSWER_BYTES, Drop, Drops, Seen, Supervisor, serve
from nhigw.bus.rpc import RpcClient
from nhigw.bus.seal import Sealer, SealError
from nhigw.common.cloudtls import untrusted_error
from nhigw.common.health import Readiness
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, StatusError, http_status
from nhigw.contracts.models import JobAnswer, QueuedJob, SignatureObject
from nhigw.contracts.routes import VNHI_UPLOAD, Route, lookup
from nhigw.gateway.admission import Gate
from nhigw.gateway.agents import AgentKeys
from nhigw.gateway.audit import AuditAttempt, AuditLog, AuditRecord, JobEnd, VerifyResult, mask_card, mask_patient, outcome_of, patient_key
from nhigw.gateway.auth import Client, Clients
from nhigw.gateway.backend import BackendSettings, make_backend
from nhigw.gateway.deadletters import DeadLetters
from nhigw.gateway.metrics import Metrics
from nhigw.gateway.queue import MAX_DELIVERIES, Admission, Delivery, WorkQueue
from nhigw.gateway.registry import Registry
from nhigw.gateway.sessions import DeviceSessions
from nhigw.gateway.store import KV, answer_aad
from nhigw.gateway.trail import SentMarker, Trail, TrailEntry, error_detail
from nhigw.gateway.upstream import (
    Attempt,
    BadStatus,
    CircuitOpen,
    MaybeSent,
    NotSent,
    Transport,
    Untrusted,
    UpstreamClient,
    UpstreamError,
    UpstreamRequest,
    UpstreamSettings,
    tcp_reachable,
)

if TYPE_CHECKING:
    from nhigw.gateway.auditsyslog import SyslogSettings, SyslogStream

log = get_logger("nhigw.gateway.service")


# A request's wait for its answer: (answer, the job's phases when it ran here), or None at its deadline.
Waiter = asyncio.Future["tuple[JobAnswer, Phases | None] | None"]


def _expire(fut: Waiter) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class Phases:
    """Milliseconds spent in each step of one request (``Server-Timing``; see the module docstring)."""

    queue: float | None = None
    sign: float | None = None
    cloud: float | None = None
    audit: float | None = None

    def named(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in (("queue", self.queue), ("sign", self.sign), ("cloud", self.cloud), ("audit", self.audit)) if v is not None}

    def header(self, total_ms: float) -> str:
        parts = [f"{k};dur={v:.3f}" for k, v in (("queue", self.queue), ("sign", self.sign), ("cloud", self.cloud), ("audit", self.audit)) if v is not None]
        return ", ".join([*parts, f"total;dur={total_ms:.3f}"])


def _instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass
class GatewaySettings:
    cloud_url: str
    upload_url: str | None = None  # the upload host (/V2000/VNHI_Upload); None: the business cloud
    prefix: str = "nhigw"
    gateway_key: bytes | None = None  # seals agent keys and enrolment tokens at rest
    instance: str = field(default_factory=_instance)
    site: str = "clinic"
    clients: Clients = field(default_factory=Clients)
    idempotency_window_s: float = 24 * 3600.0
    default_deadline_s: float = 30.0
    max_deadline_s: float = 300.0
    max_deliveries: int = MAX_DELIVERIES
    claim_idle_s: float = 10.0
    claim_every_s: float = 1.0
    worker_concurrency: int = 32
    offline_after_s: float = 3.0
    sign_timeout_s: float = 10.0
    drain_s: float = 5.0
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    audit_path: Path | None = None
    audit_checkpoints: Path | None = None  # the audit's signed checkpoints (nhigw.gateway.audit); None: logged only
    audit_checkpoint_s: float = 5.0
    audit_check_every_s: float = 3600.0  # the whole chain checked this often (metric nhigw_gateway_audit_chain_ok); 0: never
    transport: Transport | None = None
    session_idle_s: float = 900.0  # device sessions (nhigw.gateway.sessions)
    sessions_per_device: int = 2
    sessions_per_hospital: int = 200
    # Replica waiting (``WAIT N timeout``, README "Redis Sentinel"): after admission, a write's
    # ``attempted`` marker and the job's end. None: 1 replica under Sentinel, off (0) on one Redis.
    replica_wait: int | None = None
    replica_wait_ms: int = 1000
    cloud_env: str | None = None  # "production" / "test" (``nhigw.common.cloudtls.cloud_env``); None: not known
    audit_syslog: SyslogSettings | None = None  # stream audit records to an ATNA / syslog receiver (nhigw.gateway.auditsyslog)


class Gateway:
    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus, self.settings = bus, settings
        self.keys = keys = BusKeys(settings.prefix)
        self.instance = settings.instance
        # Jobs and answers carry signatures and personal data: sealed with the gateway key in Redis.
        self.box = Sealer(settings.gateway_key)
        self.backend = make_backend(bus, BackendSettings(
            keys=keys, box=self.box, instance=self.instance, gateway_key=settings.gateway_key, max_deliveries=settings.max_deliveries,
            idempotency_window_s=settings.idempotency_window_s, audit_path=settings.audit_path,
            replica_wait=settings.replica_wait, replica_wait_ms=settings.replica_wait_ms,
        ))
        self.kv: KV = self.backend.kv
        self.queue: WorkQueue = self.backend.queue
        self.audit.keep_checkpoints(settings.audit_checkpoints, self.instance, settings.audit_checkpoint_s)
        # Readiness as named checks (``/readyz``); every background task supervised (restarted with
        # backoff, its check failing until it runs again); every bus message that is dropped counted.
        self.readiness = Readiness()
        self.readiness.add("bus", bus.ping)
        self.drops = Drops()
        self.supervisor = Supervisor(self.readiness)
        self._ran = Seen()  # ids of jobs run here, until their deadline (a re-added entry is not run twice)
        # The replay check's "is an answer stored?" of jobs starting at once, asked in one round trip.
        self._answered: GroupCommit[str, bool] = GroupCommit(self.kv.exists_many)
        self.agents = AgentKeys(bus, self.kv, keys, settings.gateway_key, drops=self.drops, supervisor=self.supervisor)
        self.registry = Registry(bus, keys, self.agents, settings.offline_after_s)
        self.rpc = RpcClient(bus, keys, self.agents, drops=self.drops, supervisor=self.supervisor)
        self.rpc.alive = self.registry.online  # a waiting call fails as soon as its agent is known gone (9400)
        self.readiness.add("registry", self.registry.caught_up)  # heard the agents online (after start, after a Redis restart)
        self.cloud = UpstreamClient(settings.cloud_url, settings.upstream, settings.transport)
        same = not settings.upload_url or settings.upload_url.rstrip("/") == settings.cloud_url.rstrip("/")
        self.upload_cloud = self.cloud if same else UpstreamClient(settings.upload_url or "", settings.upstream, settings.transport)
        self.sessions = DeviceSessions(
            bus=bus, keys=keys, agents=self.agents, registry=self.registry, kv=self.kv, index=self.backend.sessions, box=self.box, audit=self.audit,
            drops=self.drops, supervisor=self.supervisor, instance=self.instance, site=settings.site,
            idle_s=settings.session_idle_s, per_device=settings.sessions_per_device, per_hospital=settings.sessions_per_hospital,
        )
        self.metrics = Metrics(queue=self.queue, breaker=self.cloud.breaker, registry=self.registry, rpc=self.rpc, drops=self.drops, supervisor=self.supervisor, sessions=self.sessions,
                               cloud_probe=lambda: tcp_reachable(settings.cloud_url))
        self.gate = Gate(  # admission: who, scope, online, key, deadline, rate (nhigw.gateway.admission)
            settings.clients, self.registry, self.metrics.admission, rate_per_s=settings.upstream.rate_per_s, rate_burst=settings.upstream.rate_burst,
            default_deadline_s=settings.default_deadline_s, max_deadline_s=settings.max_deadline_s,
        )
        self.syslog: SyslogStream | None = None  # the audit streamed to an ATNA repository (imported only then: FHIR models load slowly)
        if settings.audit_syslog is not None:
            from nhigw.gateway.auditsyslog import SyslogStream

            self.syslog = SyslogStream(self.audit, settings.audit_syslog, instance=self.instance)
            self.metrics.registry.register(self.syslog.collector())
        self.history = self.backend.history  # the dashboard's last hours, shared through Redis (nhigw.gateway.history)
        self.trail = Trail(self.kv, keys, settings.idempotency_window_s)  # deliveries of requests that did not run cleanly
        self.dead_letters = DeadLetters(
            kv=self.kv, keys=keys, box=self.box, queue=self.queue, audit=self.audit, trail=self.trail, instance=self.instance, site=settings.site,
            window_s=settings.idempotency_window_s, deadline_s=settings.default_deadline_s, store_answer=self.store_answer, resolve=self._resolve,
        )  # a dead-lettered job's final answer; the operators' actions
        self.queue.dead_hook = self.dead_letters
        self._working: set[str] = set()
        # The ``attempted`` marker each running write delivery placed, by (requestId, delivery): its
        # job's end removes that marker only (a concurrent delivery's is never touched).
        self._markers: dict[tuple[str, int], bytes] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        # Jobs admitted here that found no free slot, by stream entry, while their request waits: when the
        # worker loop reads one of these entries it runs the job it holds (nothing to open, parse or check).
        self._queued_here: dict[str, QueuedJob] = {}
        # The body's fields as the request's handler parsed them, by requestId, while the request waits:
        # a job run here takes them instead of parsing its body again (``_sign``).
        self._parsed: dict[str, dict[str, Any]] = {}
        self._slots = asyncio.Semaphore(settings.worker_concurrency)  # jobs running here (worker loop and admission)
        self.handed_over = 0  # entries a job's end handed to its slot (``_slot``), for tests and benchmarks
        self._workers = False
        # answer key -> waiting requests here: future -> the requestId it waits for (None: any run's answer)
        self._waiters: dict[str, dict[Waiter, str | None]] = {}
        self.done_channel = keys.done(self.instance)  # this replica's own: answers for requests waiting here
        self._running: contextlib.AsyncExitStack | None = None  # what ``start`` opened

    @property
    def audit(self) -> AuditLog:
        return self.backend.audit

    # ------------------------------------------------------------------ lifecycle

    def lifetimes(self, *, workers: bool = True) -> list[Callable[[], AbstractAsyncContextManager[None]]]:
        """The gateway's parts in the order they start (each opens, yields, closes; they close in reverse):
        the app gives each its own ``cleanup_ctx``; ``start``/``close`` run them for code without an app."""
        parts: list[Callable[[], AbstractAsyncContextManager[None]]] = [
            self._clouds, self._queue_part, self._audit_part, self._bus_link, self._history_part, self._done_listener, self._audit_checks,
        ]
        return [*parts, self._workers_part] if workers else parts

    async def start(self, *, workers: bool = True) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            for part in self.lifetimes(workers=workers):
                await stack.enter_async_context(part())
        except BaseException:
            await stack.aclose()
            raise
        self._running = stack

    async def close(self) -> None:
        """Close what ``start`` opened; the cloud sessions (open since construction) in any case."""
        stack, self._running = self._running, None
        if stack is not None:
            await stack.aclose()
        else:
            await self._close_clouds()

    async def _close_clouds(self) -> None:
        await self.cloud.close()
        if self.upload_cloud is not self.cloud:
            await self.upload_cloud.close()

    @contextlib.asynccontextmanager
    async def _clouds(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self._close_clouds()

    @contextlib.asynccontextmanager
    async def _queue_part(self) -> AsyncIterator[None]:
        await self.queue.start()
        try:
            yield
        finally:
            await self.queue.close()

    @contextlib.asynccontextmanager
    async def _audit_part(self) -> AsyncIterator[None]:
        """The audit log, and its stream to an ATNA receiver when configured."""
        await self.audit.start(self.supervisor)
        try:
            if self.syslog is not None:
                self.syslog.start(self.supervisor)
            try:
                yield
            finally:
                if self.syslog is not None:
                    await self.syslog.close()
        finally:
            await self.audit.close()

    @contextlib.asynccontextmanager
    async def _bus_link(self) -> AsyncIterator[None]:
        """The agents' side of the bus: enrolment, presence, RPC, device sessions (closed in reverse)."""
        async with contextlib.AsyncExitStack() as stack:
            for part in (self.agents, self.registry, self.rpc, self.sessions):
                await part.start()
                stack.push_async_callback(part.close)
            yield

    @contextlib.asynccontextmanager
    async def _history_part(self) -> AsyncIterator[None]:
        self.history.start(self.supervisor)
        try:
            yield
        finally:
            await self.history.close(self.supervisor)

    @contextlib.asynccontextmanager
    async def _done_listener(self) -> AsyncIterator[None]:
        """Answers finished by any replica for requests waiting here (this replica's own channel)."""
        sub = await self.bus.subscribe(self.done_channel)
        try:
            self.supervisor.start("done-listener", lambda: serve(sub, "done", self._on_done, self.drops, max_bytes=MAX_ANSWER_BYTES))
            self.supervisor.start("answer-poll", self._answer_poll)
            yield
        finally:
            await self.supervisor.stop("done-listener", "answer-poll")
            await sub.close()

    @contextlib.asynccontextmanager
    async def _audit_checks(self) -> AsyncIterator[None]:
        if self.settings.audit_check_every_s > 0:
            self.supervisor.start("audit-check", self._audit_check_loop)
        try:
            yield
        finally:
            await self.supervisor.stop("audit-check")

    @contextlib.asynccontextmanager
    async def _workers_part(self) -> AsyncIterator[None]:
        self._workers = True
        self.supervisor.start("worker", self._work_loop)
        self.supervisor.start("worker-keepalive", self._keepalive)
        try:
            yield
        finally:
            self._workers = False
            await self.supervisor.stop("worker", "worker-keepalive")
            await self._drain()

    async def check_audit(self) -> VerifyResult:
        """The whole audit chain and its checkpoints checked; the result goes to the metrics (and is logged if it fails)."""
        res = await self.audit.verify()
        self.metrics.audit_checked_now(res)
        if not res.ok:
            log.error("audit_chain_check_failed", problems=res.problems[:5], count=res.count)
        return res

    async def _audit_check_loop(self) -> None:
        while True:
            await self.check_audit()
            await asyncio.sleep(self.settings.audit_check_every_s)

    async def _drain(self) -> None:
        # A clean stop drains: jobs in flight get ``drain_s`` to finish (answer stored, XACK).
        # Past it they are cancelled; their entries stay pending and another replica (or this
        # one after a restart) reclaims them. A write already sent keeps its marker (9403).
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=self.settings.drain_s)
        for t in list(self._jobs):
            t.cancel()
        for t in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # ------------------------------------------------------------------ queueing and answers

    def answer_key(self, client: Client, idem_key: str) -> str:
        return hashlib.sha256(f"{client.name}|{idem_key}".encode()).hexdigest()[:40]

    async def stored_answer(self, answer_key: str) -> JobAnswer | None:
        # With replica waiting, an answer another replica's job end stored is given only once the
        # replicas have it (a retry, a joined request, the poll): never one a failover can take back.
        raw = await self.kv.get_replicated(self.keys.answer(answer_key), self.keys.replica_barrier(self.instance))
        if not raw:
            return None
        try:
            return JobAnswer.model_validate_json(self.box.open(raw, answer_aad(answer_key)))
        except (SealError, ValueError):
            log.error("answer_unreadable", answerKey=answer_key)
            return None

    async def store_answer(self, answer_key: str, ans: JobAnswer, origin: str | None = None) -> None:
        sealed = self.box.seal(ans.model_dump_json().encode(), answer_aad(answer_key))
        await self.kv.set(self.keys.answer(answer_key), sealed, ttl_s=self.settings.idempotency_window_s)
        if origin and origin != self.instance:  # (waiters elsewhere that joined the run find it by polling)
            await self.bus.publish(self.keys.done(origin), answer_key.encode() + b" " + sealed)
        self._resolve(answer_key, ans)

    def _resolve(self, answer_key: str, ans: JobAnswer, phases: Phases | None = None) -> None:
        for fut, want in list(self._waiters.get(answer_key, {}).items()):
            # A request that queued its own job takes only that job's answer, never a late ``done``
            # of an earlier run with the same key (an answer not kept, whose retry runs again).
            if not fut.done() and want in (None, ans.requestId):
                fut.set_result((ans, phases if want is not None else None))

    async def _on_done(self, _channel: str, data: bytes) -> None:
        """One message on the replica's own channel: an answer finished by any replica, for requests waiting here."""
        akey_b, sep, sealed = data.partition(b" ")
        if not sep:
            raise Drop("malformed")
        akey = akey_b.decode("ascii")
        if not self._waiters.get(akey):
            return  # nobody waits for it on this replica (or already answered in process)
        try:
            ans = JobAnswer.model_validate_json(self.box.open(sealed, answer_aad(akey)))
        except SealError as exc:
            raise Drop("forged") from exc  # not sealed by a gateway, or another key's answer
        self._resolve(akey, ans)

    async def submit(self, *, client: Client, route: Route, path: str, body: bytes, workstation: str | None, idem_key: str, deadline_s: float, hospital: str | None, device_session: str | None = None, fields: dict[str, Any] | None = None) -> tuple[JobAnswer | None, bool, Phases]:
        """Queue (or join) the request and wait for its answer. Returns (answer or None at the deadline, replayed, where the time went).
        ``fields``: ``body`` already parsed (a JSON object), kept for the job's run here."""
        akey = self.answer_key(client, idem_key)
        fingerprint = hashlib.sha256(b"|".join([path.lower().encode(), (workstation or "").encode(), (device_session or "").encode(), body])).hexdigest().encode()
        inflight = self.keys.inflight(akey)
        loop = asyncio.get_running_loop()
        fut: Waiter = loop.create_future()
        phases = Phases()
        waiting = self._waiters.setdefault(akey, {})
        entry: str | None = None  # our job's stream entry while it waits for a slot (``_queued_here``)
        job: QueuedJob | None = None
        try:
            now = time.time()
            job = QueuedJob(
                requestId=secrets.token_hex(16),  # uuid4().hex's shape, a third of its cost
                idempotencyKey=idem_key,
                answerKey=akey,
                path=path,
                body=body.decode("utf-8"),
                workstation=workstation,
                client=client.name,
                hospitalId=hospital,
                write=route.write,
                enqueuedAt=now,
                deadline=now + deadline_s,
                deviceSession=device_session,
                origin=self.instance,
            )
            waiting[fut] = job.requestId  # before queueing: its answer cannot come before we listen
            if fields is not None:
                self._parsed[job.requestId] = fields
            take = self._workers and not self._slots.locked()
            if take:
                await self._slots.acquire()  # free: does not wait
            t_admit = time.perf_counter()
            try:
                admitted = await self.queue.admit(self.instance, Admission(job, inflight, self.keys.waiters(akey), fingerprint, self.settings.idempotency_window_s, take, deadline_s), self.kv)
            except BaseException:
                if take:
                    self._slots.release()
                raise
            phases.queue = (time.perf_counter() - t_admit) * 1000
            if admitted.delivery is not None:
                self._spawn(admitted.delivery)  # holds the slot until the job ends
            elif take:
                self._slots.release()
            first = admitted.first
            if admitted.entry is not None and (admitted.delivery is None or admitted.delivery.id != admitted.entry):
                entry = admitted.entry
                self._queued_here[entry] = job
            if not first:
                waiting[fut] = None  # joined a run queued by an earlier request: its answer, whatever its requestId
                if await self.kv.get(inflight) not in (fingerprint, None):
                    raise StatusError(Code.PARAM_VALUE, "Idempotency-Key already used for a different request", idempotencyKey=idem_key)
                ans = await self.stored_answer(akey)
                if ans is not None:
                    return ans, True, phases
            else:
                self.metrics.enqueued.inc()
            return await self._await_answer(fut, deadline_s, not first, phases)
        finally:
            if job is not None:
                self._parsed.pop(job.requestId, None)
            if entry is not None:
                self._queued_here.pop(entry, None)
            waiting.pop(fut, None)
            if not waiting and self._waiters.get(akey) is waiting:
                del self._waiters[akey]

    async def _await_answer(self, fut: Waiter, deadline_s: float, replayed: bool, phases: Phases) -> tuple[JobAnswer | None, bool, Phases]:
        """The queued job's answer, or None at the deadline: one timer and the future, nothing else on the
        request's path (an answer whose ``done`` was lost is found by ``_answer_poll``)."""
        timer = asyncio.get_running_loop().call_later(deadline_s, _expire, fut)
        try:
            got = await fut
        finally:
            timer.cancel()
        if got is None:
            return None, False, phases
        ans, ran = got  # ran: the job's own phases, when it ran here
        if ran is not None:
            phases.sign, phases.cloud, phases.audit = ran.sign, ran.cloud, ran.audit
        return ans, replayed, phases

    async def _answer_poll(self) -> None:
        """Requests waiting here for an answer whose ``done`` message was lost (published while this replica's
        subscription reconnected, or by a replica that stopped before it published): every 0.5 s, each answer
        key waited on since the last look is looked for in Redis, and a stored answer answers its waiters.
        A look that fails (Redis unavailable, or its replicas do not confirm the answer) fails its waiters with
        ``BusError``: their HIS gets 9402 with its key, as when admission could not be confirmed."""
        seen: set[str] = set()
        while True:
            await asyncio.sleep(0.5)
            now = set(self._waiters)
            for akey in now & seen:
                try:
                    stored: JobAnswer | BusError | None = await self.stored_answer(akey)
                except BusError as exc:
                    stored = exc
                if stored is None:
                    continue
                for fut in list(self._waiters.get(akey, {})):
                    if fut.done():
                        continue
                    if isinstance(stored, BusError):
                        fut.set_exception(stored)
                    else:
                        fut.set_result((stored, None))
            seen = now

    # ------------------------------------------------------------------ workers

    async def _work_loop(self) -> None:
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Slots first, then a read of as many entries as they can start: an entry read here never
            # waits behind the entries that jobs' ends hand to their slots (``_slot``).
            held = await self._free_slots(10)
            try:
                batch: list[Delivery] = []
                if loop.time() - last_claim >= self.settings.claim_every_s:
                    last_claim = loop.time()
                    batch += await self.queue.claim_stale(self.instance, min_idle_s=self.settings.claim_idle_s)
                batch += await self.queue.read(self.instance, count=held, block_s=min(0.5, self.settings.claim_every_s), known=self._queued_here)
            except BusError as exc:
                self._release(held)
                log.warning("queue_unavailable", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            except BaseException:
                self._release(held)
                raise
            # Entries read but still waiting for a free slot (more reclaimed than slots held) are touched
            # too: untouched for ``claim_idle_s`` (slots held by slow jobs, e.g. while replicas do not
            # confirm) they would be reclaimed and run a second time beside this replica's own run of them.
            waiting = {d.id for d in batch}
            self._working.update(waiting)
            try:
                with contextlib.suppress(BusError):  # not known: each entry's replay check asks for itself
                    await self._stored_already(batch)
                for d in batch:
                    if held:
                        held -= 1
                    else:
                        await self._slots.acquire()
                    waiting.discard(d.id)
                    self._spawn(d)
            finally:
                self._working.difference_update(waiting)  # not started here (cancelled): left to a reclaim
                self._release(held)

    async def _free_slots(self, most: int) -> int:
        """Wait for one free worker slot, then take the others free now, up to ``most``; returns how many are held."""
        await self._slots.acquire()
        held = 1
        while held < most and not self._slots.locked():
            await self._slots.acquire()  # free: does not wait
            held += 1
        return held

    def _release(self, held: int) -> None:
        for _ in range(held):
            self._slots.release()

    async def _stored_already(self, batch: list[Delivery]) -> None:
        """For the replay check (``_replayed``): which first deliveries of a read already have a stored
        answer, asked in one round trip for the whole read instead of one GET per entry."""
        todo: list[Delivery] = []
        for d in batch:
            if d.deliveries == 1 and d.known is None:
                with contextlib.suppress(ValueError):  # malformed: ``_run`` drops it
                    d.job()
                    todo.append(d)
        found = await self.kv.exists_many([self.keys.answer(d.job().answerKey) for d in todo])
        for d, f in zip(todo, found, strict=True):
            d.answered = f

    def _spawn(self, d: Delivery) -> None:
        """Run a delivered entry in a task of its own; it holds one of ``_slots`` (already acquired) until it
        ends, and runs each entry a job's end hands to it after it (``_slot``)."""
        self._working.add(d.id)
        t = asyncio.create_task(self._slot(d))
        self._jobs.add(t)

        def ended(t: asyncio.Task[None]) -> None:
            self._slots.release()
            self._jobs.discard(t)

        t.add_done_callback(ended)

    async def _slot(self, d: Delivery) -> None:
        """One worker slot's task: its delivery, then every entry its job's end handed over (``JobEnd.take``)."""
        while True:  # ``_spawn`` marked the first one working; each handed one is marked here
            try:
                handed = await self._run(d)
            finally:
                self._working.discard(d.id)
            if handed is None:
                return
            self.handed_over += 1
            self._working.add(handed.id)
            d = handed

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.settings.claim_idle_s / 3))
            with contextlib.suppress(BusError):
                await self.queue.touch(self.instance, list(self._working))

    async def _run(self, d: Delivery) -> Delivery | None:
        """Run one delivered entry; returns the entry its job's end handed to this slot, if any."""
        try:
            job = d.job()
        except ValueError:
            self.drops.drop("jobs", "malformed")  # left pending: dead-lettered after max_deliveries
            return None
        structlog.contextvars.bind_contextvars(request_id=job.requestId, workstation=job.workstation, client=job.client)  # this task's own context
        phases = Phases()
        traced = d.deliveries > 1 or job.rerunOf is not None  # not one clean run: its deliveries go into its trail
        try:
            if await self._replayed(d, job):
                return None
            if d.deliveries > 1:
                await self._trail(job, "redelivered", d.deliveries, detail=f"delivery {d.deliveries - 1} ended without an answer (its replica stopped, crashed or stalled)")
            try:
                ans, final, rec, phases = await self.process(job, d.deliveries, phases)
            except HeldElsewhere:
                # Another delivery of this write placed its marker first and sends it (or did): it
                # answers and acknowledges the entry; this one sends nothing and answers nothing.
                log.warning("write_held_by_another_delivery", requestId=job.requestId, entry=d.id, deliveries=d.deliveries)
                await self._trail(job, "failed", d.deliveries, phases=phases, detail="another delivery of this write holds its attempted marker: not sent by this one")
                return None
            # The log line and metrics run while the job's end is on its way to Redis (the first
            # thing the loop does once ``_finish`` waits), not between the cloud's answer and the HIS.
            asyncio.get_running_loop().call_soon(self._job_done, job, ans, final, rec, d.deliveries)
            # Entries this replica admitted wait for a slot: its job's end hands this one the next.
            handed = await self._finish(d.id, job, ans, final, rec, phases, d.deliveries, take=self._workers and bool(self._queued_here))
            if traced:
                await self._trail(job, "answered", d.deliveries, rec=rec, phases=phases, status_code=rec.statusCode if rec else None)
            return handed
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.job_failures.inc()
            # The trail first: once this task ends its entry may be reclaimed (and dead-lettered) at
            # any moment, and a traceback's rendering is the slowest thing here.
            await self._trail(job, "failed", d.deliveries, phases=phases, detail=error_detail(exc))
            log.exception("job_failed", requestId=job.requestId, entry=d.id, deliveries=d.deliveries)
        finally:
            self._markers.pop((job.requestId, d.deliveries), None)
        return None

    async def _trail(self, job: QueuedJob, event: Any, delivery: int, *, rec: AuditRecord | None = None, phases: Phases | None = None, status_code: int | None = None, detail: str | None = None) -> None:
        """One entry of the job's trail (``nhigw.gateway.trail``); a Redis failure here loses the entry, never the job."""
        entry = TrailEntry(
            event=event, instance=self.instance, requestId=job.requestId, delivery=delivery, statusCode=status_code,
            attempts=rec.attempts if rec else [], phases=phases.named() if phases else {}, detail=detail,
        )
        try:
            await self.trail.add(job.answerKey, entry)
        except BusError as exc:
            log.warning("trail_unwritable", requestId=job.requestId, error=str(exc))

    async def _replayed(self, d: Delivery, job: QueuedJob) -> bool:
        """A sealed entry captured and added to the stream again is not run again: acknowledged and dropped.

        Known by its ``requestId`` run here before (remembered until its deadline), or, for an entry
        read from the stream (not the one this replica admitted just now), by its answer already
        stored. A redelivery (``deliveries > 1``, a reclaimed entry) is the same entry, not a replay:
        ``process`` answers it from the stored answer or with 9403, as before.
        """
        if d.deliveries > 1:
            return False
        first = self._ran.remember(job.requestId, max(job.deadline, time.time()) + 60.0)
        # ``answered`` False: no answer was stored when the entry was read (asked for the whole read);
        # an answer found there is read again here (with replica waiting, once the replicas have it).
        if first and (d.known is not None or d.answered is False or not await self._answered.submit(self.keys.answer(job.answerKey)) or await self.stored_answer(job.answerKey) is None):
            return False
        self.drops.drop("jobs", "replayed")
        await self.queue.ack(d.id)
        return True

    def _job_done(self, job: QueuedJob, ans: JobAnswer, final: bool, rec: AuditRecord | None, deliveries: int) -> None:
        if rec is not None:
            self.metrics.observe(rec.route, rec.statusCode, rec.latency_ms / 1000, max(0, len(rec.attempts) - 1))
            self.history.observe(rec.route, rec.outcome != 0, rec.latency_ms, hospital=rec.hospitalId)
        log.info("job_done", route=job.path, httpStatus=ans.httpStatus, attempts=ans.attempts, deliveries=deliveries, stored=final)

    async def _finish(self, entry_id: str, job: QueuedJob, ans: JobAnswer, final: bool, rec: AuditRecord | None, phases: Phases, deliveries: int = 1, *, take: bool = False) -> Delivery | None:
        """Audit, store (or release) the key, announce the answer, XACK (``Backend.end_job``: one script on Redis, batched);
        with ``take``, returns the next entry for this replica, delivered in the same step."""
        t0 = time.perf_counter()
        akey = job.answerKey
        sealed = self.box.seal(ans.model_dump_json().encode(), answer_aad(akey))
        k = self.keys
        marker = self._markers.get((job.requestId, deliveries), b"")
        end = JobEnd(answer=k.answer(akey), inflight=k.inflight(akey), attempted=k.attempted(akey), waiters=k.waiters(akey), store=final, sealed=sealed, entry_id=entry_id, key=akey, origin=job.origin, marker=marker, take=take)
        handed = await self.backend.end_job(rec, end, self._queued_here)
        phases.audit = (time.perf_counter() - t0) * 1000
        self._resolve(akey, ans, phases)  # this replica's waiters: no round trip through Redis
        return handed

    async def process(self, job: QueuedJob, deliveries: int, phases: Phases | None = None) -> tuple[JobAnswer, bool, AuditRecord | None, Phases]:
        """Run one job: sign (one call, device session), call the cloud, make its audit record. Returns its
        answer, whether it is final, its audit record (written by ``_finish``) and the time its signature
        and cloud call took (in ``phases``, filled as it goes: a job that raises leaves in it how far it got).

        Final (stored for the key): the cloud's answer, 9403. Not final: answers made here before
        anything could reach the cloud (see the module docstring).
        """
        if deliveries > 1:  # a first delivery has no stored answer: its key was free when it was queued
            existing = await self.stored_answer(job.answerKey)
            if existing is not None:
                return existing, True, None, Phases()  # finished (and audited) before a crash prevented the XACK
        phases = phases if phases is not None else Phases()
        run, final = Run(), True
        t0 = time.monotonic()
        try:
            route = lookup(job.path)
            if route is None:
                raise StatusError(Code.NOT_FOUND, f"no business route {job.path}")
            if job.write and deliveries > 1 and await self.kv.get(self.keys.attempted(job.answerKey)) is not None:
                raise StatusError(Code.OUTCOME_UNKNOWN, "a previous delivery of this write may have reached the NHI cloud; not sent again", idempotencyKey=job.idempotencyKey)
            body = await self._sign(job, route, run, phases)
            status, payload = await self._call_cloud(job, route, body, deliveries, run, phases)
        except StatusError as err:
            final = err.code == Code.OUTCOME_UNKNOWN
            status, payload = err.http_status, json.dumps(err.body(), ensure_ascii=False).encode()
        except ValueError:
            final = False
            bad = StatusError(Code.NOT_JSON, "malformed JSON body")
            status, payload = bad.http_status, json.dumps(bad.body(), ensure_ascii=False).encode()
        code, payload = _coded(payload, status)
        status = http_status(code)  # the cloud's 4xx/5xx too: an HIS reads the code (nhigw.contracts.codes)
        rec = self._audit_record(job, run, code, status, latency_ms=(time.monotonic() - t0) * 1000)
        ans = JobAnswer(requestId=job.requestId, idempotencyKey=job.idempotencyKey, httpStatus=status, body=payload.decode("utf-8", "replace"), attempts=len(run.attempts), instance=self.instance)
        return ans, final, rec, phases

    async def _sign(self, job: QueuedJob, route: Route, run: Run, phases: Phases) -> str:
        """The body to send: the job's, with the signature of its device session or one-call workstation
        (a pass-through body carries the HIS's own). Raises ``ValueError`` for a body that is not JSON."""
        known = self._parsed.pop(job.requestId, None)  # parsed by the request's handler, when it ran there
        run.fields = known if known is not None else json.loads(job.body) if job.body.strip() else {}
        if not (job.deviceSession or job.workstation):
            return job.body
        t_sign = time.perf_counter()
        if job.deviceSession:
            # A device session: the signature comes from that session's cards on its serving agent.
            sig, srec, run.signer_hpc = await self.sessions.sign(job.deviceSession, route.kind, route.serviceType)
            run.agent_id = srec.agentId
        else:
            assert job.workstation is not None
            await self.gate.online(job.workstation, count=False)  # asked again: it may have gone since admission
            self._same_cloud(job.workstation)
            reply = await self.rpc.sign(job.workstation, route.kind, route.serviceType, timeout_s=self.settings.sign_timeout_s)
            run.agent_id = self.agents.agent_id(job.workstation)
            if not reply.ok or reply.signature is None:
                err = reply.error
                raise StatusError(err.statusCode if err else Code.INTERNAL, err.detail if err else "agent failed", workstation=job.workstation)
            sig, run.signer_hpc = reply.signature, reply.hpcId
        run.signed_hospital = sig.hospitalId
        run.fields = {**run.fields, **signed_fields(route, sig)}
        phases.sign = (time.perf_counter() - t_sign) * 1000
        return json.dumps(run.fields, ensure_ascii=False)

    async def _call_cloud(self, job: QueuedJob, route: Route, body: str, deliveries: int, run: Run, phases: Phases) -> tuple[int, bytes]:
        """The cloud's HTTP status and body, its 5xx to a read included; raises ``StatusError`` for what
        did not get an answer (9402 not sent, 9403 a write that may have landed)."""
        async def before_send(n: int) -> None:
            if job.write and n == 1:
                await self._place_marker(job, deliveries)

        headers = {"Idempotency-Key": job.idempotencyKey, "X-Request-Id": job.requestId, "X-Nhigw-Instance": self.instance}
        cloud, url = (self.upload_cloud, route.url) if route is VNHI_UPLOAD else (self.cloud, "/api/v1/" + _route_path(job))
        t_cloud = time.perf_counter()
        try:
            try:
                result = await cloud.call(UpstreamRequest(url, body.encode(), job.write, headers), before_send=before_send)
            finally:
                phases.cloud = (time.perf_counter() - t_cloud) * 1000
        except BadStatus as exc:
            run.attempts = exc.attempts
            if job.write:
                # The write reached the cloud and got a 5xx: it may have been executed, so it is not repeated
                # and the HIS gets "outcome unknown" with the key to ask again.
                raise StatusError(Code.OUTCOME_UNKNOWN, f"the NHI cloud answered HTTP {exc.response.status} to the write: it may have been executed; not repeated", idempotencyKey=job.idempotencyKey) from exc
            return exc.response.status, exc.response.body
        except UpstreamError as exc:
            run.attempts = exc.attempts
            raise self._upstream_status(exc, job) from exc
        run.attempts = result.attempts
        return result.response.status, result.response.body

    async def _place_marker(self, job: QueuedJob, deliveries: int) -> None:
        """The write's ``attempted`` marker, before its first byte goes to the cloud; ``HeldElsewhere`` when another delivery holds it."""
        marker = SentMarker(instance=self.instance, requestId=job.requestId, delivery=deliveries)  # who sent it, when (the dead-letter view)
        value = marker.model_dump_json().encode()
        # NX: of two deliveries of one write running at once (a replica stalled past
        # ``claim_idle_s`` and its entry reclaimed), only the one that places the marker sends.
        try:
            placed = await self.kv.set(self.keys.attempted(job.answerKey), value, ttl_s=self.settings.idempotency_window_s, nx=True)
        except NotConfirmed as exc:
            if not exc.applied:
                raise HeldElsewhere() from exc
            self._markers[(job.requestId, deliveries)] = value
            # The marker is on the primary, its replicas did not confirm it, and this delivery
            # sends nothing. Failing the job would leave the entry and the marker for a
            # redelivery, which would answer 9403 for a write that never left; answered 9402
            # "not sent" instead (not stored: the job's end removes both markers, so the HIS's
            # retry with the key runs it once the replicas are back).
            raise StatusError(Code.UPSTREAM_UNAVAILABLE, f"Redis replicas did not confirm the write's marker ({exc}); not sent", idempotencyKey=job.idempotencyKey) from exc
        if not placed:
            raise HeldElsewhere()
        self._markers[(job.requestId, deliveries)] = value

    def _audit_record(self, job: QueuedJob, run: Run, code: int, status: int, *, latency_ms: float) -> AuditRecord:
        """The job's audit record, from what its run got (masked card and patient ids, a keyed patient hash)."""
        fields = run.fields
        patient_id = _s(fields.get("hcIdNo")) or _s(fields.get("idCardNum"))
        return AuditRecord(
            action=("C" if job.write else "R"),
            route=_route_path(job),
            outcome=outcome_of(code, status),
            statusCode=code,
            httpStatus=status,
            client=job.client,
            # A client without a hospital cannot put invented hospital ids into the audit: a pass-through
            # body's hospital id counts only once the NHI cloud accepted that hospital's SAM signature.
            hospitalId=job.hospitalId or run.signed_hospital or ((_s(fields.get("hospitalId")) or _s(fields.get("sHospId"))) if code == 0 else None),
            workstation=job.workstation,
            agentId=run.agent_id,
            deviceSession=job.deviceSession,
            hpc=mask_card(_s(fields.get("hpcId")) or run.signer_hpc),
            patient=mask_patient(patient_id),
            patientKey=patient_key(self.audit.key, patient_id),
            instance=self.instance,
            site=self.settings.site,
            requestId=job.requestId,
            idempotencyKey=job.idempotencyKey,
            attempts=[AuditAttempt(n=a.n, outcome=a.outcome, latency_ms=round(a.latency_ms, 2)) for a in run.attempts],
            latency_ms=round(latency_ms, 2),
        )

    async def test_api(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The cloud's test-card API (``/test/v1/...``) passed through: HIS code points one base URL at the
        cloud for everything (public facts 3.3a). Not queued and not audited (test cards, no patient's
        business); sent with the write policy (never repeated once it may have landed)."""
        try:
            res = await self.cloud.call(UpstreamRequest(path, body, True, {"X-Nhigw-Instance": self.instance}))
            status, payload = res.response.status, res.response.body
        except BadStatus as exc:
            status, payload = exc.response.status, exc.response.body
        except UpstreamError as exc:
            cause = exc.last_failure if isinstance(exc, CircuitOpen) else exc
            if isinstance(cause, Untrusted):
                err = untrusted_error(Code.UPSTREAM_UNAVAILABLE, self.settings.cloud_url, cause)
            elif isinstance(exc, MaybeSent):
                err = StatusError(Code.OUTCOME_UNKNOWN, f"the test API call may have reached the NHI cloud ({exc}); not repeated")
            else:
                err = StatusError(Code.UPSTREAM_UNAVAILABLE, f"NHI cloud test API unavailable ({exc}); not sent")
            return err.http_status, json.dumps(err.body(), ensure_ascii=False).encode()
        code, payload = _coded(payload, status)
        return http_status(code), payload

    def _same_cloud(self, workstation: str) -> None:
        """1003 when this workstation's SAM is verified against the other NHI cloud (test vs production; ``nhigw.common.cloudtls``)."""
        entry = self.registry.entries.get(workstation)
        theirs, ours = (entry.presence.cloudEnv if entry else None), self.settings.cloud_env
        if theirs and ours and theirs != ours:
            raise StatusError(
                Code.PROD_TEST_MIXED,
                f"workstation {workstation!r} verifies its SAM against the {theirs} NHI cloud; this gateway sends to the {ours} cloud: "
                "point the agent's and the gateway's --cloud at the same one (medvpndc production, medvpndct test)",
                workstation=workstation,
            )

    def _upstream_status(self, exc: UpstreamError, job: QueuedJob) -> StatusError:
        cause = exc.last_failure if isinstance(exc, CircuitOpen) else exc
        if isinstance(cause, Untrusted):
            return untrusted_error(Code.UPSTREAM_UNAVAILABLE, self.settings.cloud_url, cause)
        if isinstance(exc, CircuitOpen):
            return StatusError(Code.UPSTREAM_UNAVAILABLE, "NHI cloud circuit open; not sent")
        if isinstance(exc, NotSent):
            return StatusError(Code.UPSTREAM_UNAVAILABLE, f"NHI cloud unreachable ({exc}); not sent")
        if isinstance(exc, MaybeSent) and job.write:
            return StatusError(Code.OUTCOME_UNKNOWN, f"the write may have reached the NHI cloud ({exc}); not repeated", idempotencyKey=job.idempotencyKey)
        return StatusError(Code.UPSTREAM_UNAVAILABLE, f"NHI cloud did not answer ({exc})")


@dataclass
class Run:
    """How far one run of a job got: what its audit record says, whether it ended in an answer or a refusal."""

    fields: dict[str, Any] = field(default_factory=dict)  # the body's fields, signed ones included once signed
    agent_id: str | None = None
    signed_hospital: str | None = None  # the hospital of the SAM that signed for us (one call, device session)
    signer_hpc: str | None = None  # the HPC verified at the signing workstation, signature with it or not
    attempts: list[Attempt] = field(default_factory=list)


def _route_path(job: QueuedJob) -> str:
    return job.path.removeprefix("/api/v1/").lstrip("/")


class HeldElsewhere(Exception):
    """Another delivery of this write holds its ``attempted`` marker: this one must not send it."""


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def signed_fields(route: Route, sig: SignatureObject) -> dict[str, Any]:
    """The signature an agent made, as the route's body carries it (the upload host has its own names)."""
    if route is VNHI_UPLOAD:
        return {"sSamId": sig.samId, "sHospId": sig.hospitalId, "sClientRandom": sig.clientRandom, "sSignature": sig.signature}
    out = sig.model_dump(exclude_none=True)
    out.pop("serviceType", None)
    return out


def _coded(payload: bytes, status: int) -> tuple[int, bytes]:
    """An answer's 6.0 ``statusCode`` (the upload host's ``RtnCode`` as a number) and its body;
    an HTTP error without a code (a proxy's 502 page) becomes 1702."""
    try:
        d = json.loads(payload)
        if isinstance(d, dict) and isinstance(d.get("statusCode"), int):
            return int(d["statusCode"]), payload
        if isinstance(d, dict) and str(d.get("RtnCode", "")).isdigit():
            return int(d["RtnCode"]), payload
    except ValueError:
        pass
    if status < 400:
        return 0, payload
    err = StatusError(Code.DC_HTTP, f"the NHI cloud answered HTTP {status} without a 6.0 statusCode")
    return err.code, json.dumps(err.body(), ensure_ascii=False).encode()
