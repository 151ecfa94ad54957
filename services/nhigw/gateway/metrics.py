"""Prometheus metrics of one gateway replica (``GET /metrics``, text format).

Counters and histograms are updated as requests run; queue depth, oldest pending age,
dead letters, breaker state (as time has it: open past its cool-down reads half-open), agents
online and device sessions open are read at scrape time, so they move on an idle replica too. Each gateway
has its own ``CollectorRegistry`` (several gateways can live in one test process).

What the alert rules (``deploy/prometheus/nhigw-rules.yml``) need besides:

- ``nhigw_gateway_cloud_up``: can this replica open a TCP connection to the NHI cloud's host and
  port (``upstream.tcp_reachable``)? Probed at scrape time, at most every ``probe_every_s``: an
  idle replica (no business call, so no breaker news) still knows the cloud is gone before the
  clinic's first patient. Choices (the seed is silent): a TCP connect, no HTTP request (the NHI
  documents no health endpoint, and a business call would need a signature).
- ``nhigw_gateway_breaker_opened_total``: how often the breaker opened.
- ``nhigw_gateway_workstation_online{workstation}``, ``nhigw_gateway_workstation_sam_state{workstation}``
  (0 none, 1 present, 2 verified: ``SamState``), per workstation this replica has heard since it started.
- ``nhigw_gateway_audit_chain_ok`` (1 / 0) with ``..._checked_timestamp_seconds`` and ``..._records``:
  the last check of the audit chain (the gateway's periodic one or ``GET /api/audit/verify``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nhigw.bus.guard import Drops, Supervisor
    from nhigw.bus.rpc import RpcClient
    from nhigw.gateway.audit import VerifyResult
    from nhigw.gateway.queue import WorkQueue
    from nhigw.gateway.registry import Registry
    from nhigw.gateway.sessions import DeviceSessions
    from nhigw.gateway.upstream import Breaker


class Metrics:
    """The replica's metrics; its collaborators (read at scrape time) are passed in, not the whole gateway."""

    def __init__(self, *, queue: "WorkQueue", breaker: "Breaker", registry: "Registry", rpc: "RpcClient", drops: "Drops", supervisor: "Supervisor", sessions: "DeviceSessions",
                 cloud_probe: "Callable[[], Awaitable[bool]] | None" = None, probe_every_s: float = 5.0) -> None:
        self._queue, self._breaker, self._registry, self._rpc, self._sessions = queue, breaker, registry, rpc, sessions
        self._probe, self.probe_every_s = cloud_probe, probe_every_s
        self._probed_at = -float("inf")
        r = self.registry = CollectorRegistry()
        self.requests = Counter("nhigw_gateway_requests", "business requests run, by route and 6.0 statusCode", ["route", "statusCode"], registry=r)
        self.latency = Histogram("nhigw_gateway_request_seconds", "business request latency (worker: sign + upstream + audit)", ["route"], registry=r,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self._series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}  # (route, statusCode) -> its request counter and latency histogram
        self.retries = Counter("nhigw_gateway_upstream_retries", "upstream retries", registry=r)
        self.enqueued = Counter("nhigw_gateway_enqueued", "jobs added to the queue", registry=r)
        self.job_failures = Counter("nhigw_gateway_job_failures", "jobs that failed unexpectedly (left pending for redelivery)", registry=r)
        self.admission = Counter("nhigw_gateway_admission_refusals", "requests refused at admission, by 6.0 statusCode", ["statusCode"], registry=r)
        self.queue_length = Gauge("nhigw_gateway_queue_length", "entries in the work stream", registry=r)
        self.queue_pending = Gauge("nhigw_gateway_queue_pending", "entries delivered and not yet acknowledged", registry=r)
        self.oldest_pending = Gauge("nhigw_gateway_queue_oldest_pending_seconds", "age of the oldest pending entry", registry=r)
        self.dead = Gauge("nhigw_gateway_dead_letters", "entries in the dead-letter stream", registry=r)
        self.breaker = Gauge("nhigw_gateway_breaker_state", "NHI cloud circuit breaker: 0 closed, 1 open, 2 half-open", registry=r)
        self.agents = Gauge("nhigw_gateway_agents_online", "workstations online", registry=r)
        self.device_sessions = Gauge("nhigw_gateway_device_sessions", "device sessions open now (every replica: shared through Redis)", registry=r)
        self.rejected = Gauge("nhigw_gateway_bus_messages_rejected", "presence and reply messages dropped (every receiver, by reason: nhigw_gateway_bus_messages_dropped_total)", registry=r)
        self.cloud_up: bool | None = None  # the last probe's answer (None: not probed yet, not exported)
        self.audit_check: tuple[bool, int, float] | None = None  # the last audit chain check: ok, records, when (None: none yet)
        r.register(_DropsCollector(drops, supervisor))
        r.register(_StateCollector(self))
        r.register(_CertExpiryCollector(registry))

    def audit_checked_now(self, res: "VerifyResult") -> None:
        self.audit_check = (res.ok, res.count, time.time())

    def observe(self, route: str, code: int, seconds: float, retries: int) -> None:
        series = self._series.get((route, code))
        if series is None:  # ``labels()`` looks a child up under a lock: once per route and code, not per request
            series = self._series[(route, code)] = (self.requests.labels(route, str(code)), self.latency.labels(route))
        series[0].inc()
        series[1].observe(seconds)
        if retries:
            self.retries.inc(retries)

    async def render(self) -> bytes:
        d = await self._queue.depth()
        self.queue_length.set(d.length)
        self.queue_pending.set(d.pending)
        self.oldest_pending.set(d.oldest_pending_age_s)
        self.dead.set(d.dead)
        self.breaker.set(self._breaker.current())
        self.agents.set(self._registry.online_count())
        self.device_sessions.set(await self._sessions.live())
        self.rejected.set(self._registry.rejected + self._rpc.rejected)
        if self._probe is not None and time.monotonic() - self._probed_at >= self.probe_every_s:
            self._probed_at = time.monotonic()
            self.cloud_up = await self._probe()
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """What the breaker, the registry, the cloud probe and the audit check know, read at scrape time.
    The probe's and the check's series appear only once they have run (a 0 before would be a false alert)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self.breaker, self.registry = metrics._breaker, metrics._registry

    def collect(self):
        opened = CounterMetricFamily("nhigw_gateway_breaker_opened", "times the NHI cloud circuit breaker opened")
        opened.add_metric([], self.breaker.opened_count)
        yield opened
        if self.m.cloud_up is not None:
            yield GaugeMetricFamily("nhigw_gateway_cloud_up", "1 while a TCP connection to the NHI cloud opens (probed at scrape time), else 0", value=1 if self.m.cloud_up else 0)
        if self.m.audit_check is not None:
            ok, records, at = self.m.audit_check
            yield GaugeMetricFamily("nhigw_gateway_audit_chain_ok", "last audit chain check: 1 passed, 0 failed", value=1 if ok else 0)
            yield GaugeMetricFamily("nhigw_gateway_audit_chain_records", "records in the audit chain at its last check", value=records)
            yield GaugeMetricFamily("nhigw_gateway_audit_chain_checked_timestamp_seconds", "when the audit chain was last checked (epoch s)", value=at)
        online = GaugeMetricFamily("nhigw_gateway_workstation_online", "1 online, 0 offline, per workstation heard since this replica started", labels=["workstation"])
        sam = GaugeMetricFamily("nhigw_gateway_workstation_sam_state", "SAM state per workstation: 0 none, 1 present, 2 verified with the NHI centre", labels=["workstation"])
        for ws, e in sorted(self.registry.entries.items()):
            online.add_metric([ws], 1 if self.registry.online(ws) else 0)
            sam.add_metric([ws], e.presence.states.sam)
        yield online
        yield sam


class _DropsCollector(Collector):
    """``nhigw_gateway_bus_messages_dropped_total{receiver, reason}`` from the gateway's ``Drops``
    (``nhigw.bus.guard``: malformed, oversized, forged, replayed ... bus messages and stream entries),
    and ``nhigw_gateway_task_restarts_total{task}`` from its ``Supervisor``."""

    def __init__(self, drops: "Drops", supervisor: "Supervisor") -> None:
        self.drops, self.supervisor = drops, supervisor

    def collect(self):
        dropped = CounterMetricFamily("nhigw_gateway_bus_messages_dropped", "bus messages and stream entries dropped, by receiver and reason", labels=["receiver", "reason"])
        for (receiver, reason), n in sorted(self.drops.counts.items()):
            dropped.add_metric([receiver, reason], n)
        yield dropped
        restarts = CounterMetricFamily("nhigw_gateway_task_restarts", "background tasks restarted after they died, by task", labels=["task"])
        for task, n in sorted(self.supervisor.restarts.items()):
            restarts.add_metric([task], n)
        yield restarts


class _CertExpiryCollector(Collector):
    """``nhigw_agent_cert_expiry_seconds{workstation, kind}``: when an online agent's HTTPS certificate
    (``kind="server"``) and local CA (``kind="ca"``) end, epoch seconds as agents report them in their
    presence (``TlsExpiry``); an agent serving plain HTTP, or older than the field, has no series.
    Alert on ``nhigw_agent_cert_expiry_seconds - time() < 14 * 86400``: the agent renews its server
    certificate at two thirds of its life, so a near end there means renewal is failing."""

    def __init__(self, registry: "Registry") -> None:
        self.registry = registry

    def collect(self):
        g = GaugeMetricFamily("nhigw_agent_cert_expiry_seconds", "agent HTTPS certificate end (epoch seconds), by workstation and kind (server, ca)", labels=["workstation", "kind"])
        for ws, e in sorted(self.registry.entries.items()):
            tls = e.presence.tls
            if tls is not None and self.registry.online(ws):
                g.add_metric([ws, "server"], tls.serverNotAfter)
                g.add_metric([ws, "ca"], tls.caNotAfter)
        yield g
