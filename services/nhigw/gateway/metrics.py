"""Prometheus metrics of one gateway replica (``GET /metrics``, text format).

Counters and histograms are updated as requests run; queue depth, oldest pending age,
dead letters, breaker state (as time has it: open past its cool-down reads half-open), agents
online and device sessions open are read at scrape time, so they move on an idle replica too. Each gateway
has its own ``CollectorRegistry`` (several gateways can live in one test process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from nhigw.bus.guard import Drops, Supervisor
    from nhigw.bus.rpc import RpcClient
    from nhigw.gateway.queue import WorkQueue
    from nhigw.gateway.registry import Registry
    from nhigw.gateway.sessions import DeviceSessions
    from nhigw.gateway.upstream import Breaker


class Metrics:
    """The replica's metrics; its collaborators (read at scrape time) are passed in, not the whole gateway."""

    def __init__(self, *, queue: "WorkQueue", breaker: "Breaker", registry: "Registry", rpc: "RpcClient", drops: "Drops", supervisor: "Supervisor", sessions: "DeviceSessions") -> None:
        self._queue, self._breaker, self._registry, self._rpc, self._sessions = queue, breaker, registry, rpc, sessions
        r = self.registry = CollectorRegistry()
        self.requests = Counter("nhigw_gateway_requests", "business requests run, by route and 6.0 statusCode", ["route", "statusCode"], registry=r)
        self.latency = Histogram("nhigw_gateway_request_seconds", "business request latency (worker: sign + upstream + audit)", ["route"], registry=r,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
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
        r.register(_DropsCollector(drops, supervisor))
        r.register(_CertExpiryCollector(registry))

    def observe(self, route: str, code: int, seconds: float, retries: int) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)
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
        return generate_latest(self.registry)


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
