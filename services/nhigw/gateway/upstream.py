"""The NHI cloud client: retries, retry budget, circuit breaker, timeouts.

Exception tree (the line a retry policy needs is the first split)::

    UpstreamError
    ├── NoResponse                no HTTP response came back
    │   ├── NotSent               provably never reached the cloud (connect refused, DNS,
    │   │   │                     connect timeout): safe to retry, even a write
    │   │   └── Untrusted         the cloud's TLS certificate did not verify (``--cloud-ca``):
    │   │                         not retried, it would not verify the next time either
    │   └── MaybeSent             the request may have landed (timeout after sending,
    │                             connection dropped): a read may retry, a write may not
    ├── BadStatus                 the cloud answered 5xx (``.response`` kept): reads retry
    └── Refused                   refused here, never sent
        └── CircuitOpen           the upstream's breaker is open

aiohttp's errors are translated to this tree in one place, ``AiohttpTransport.send``;
the transport is a seam (``Transport``), so the policy is also driven by a plain
handler in unit tests (``HandlerTransport``). 4xx answers are the cloud's business
answers (6.0 status codes) and are returned, not raised.

Policy (``UpstreamSettings``):
- reads: at most ``max_attempts`` (3), full-jitter exponential backoff
  (sleep uniform(0, min(cap, base * 2**n))), and a retry budget: every call deposits
  ``budget_ratio`` (0.1) token, every retry spends one, the bucket starts at and is
  capped by ``budget_min`` / ``budget_max``: retries stay near 10 % of calls under load.
- writes: retried only after ``NotSent``; after ``MaybeSent`` the caller answers 9403
  "outcome unknown" with the idempotency key. Writes use a fresh connection each time
  (``force_close``), so a stale pooled keep-alive connection never turns a write into
  an "outcome unknown".
- breaker per upstream base URL: ``breaker_failures`` consecutive failures (transport
  errors or 5xx) open it for ``breaker_cooldown_s``; then one probe is let through
  (half-open): success closes it, failure re-opens it.
- TLS and proxies: ``UpstreamSettings.tls`` (``nhigw.common.cloudtls``: the CA bundle or the
  system's store, proxies from the environment when the command line says so). While the breaker
  is open after an untrusted certificate, ``CircuitOpen.last_failure`` still says so.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import aiohttp
from yarl import URL

from nhigw.common.cloudtls import CloudTls, is_untrusted


class UpstreamError(Exception):
    def __init__(self, message: str, *, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)  # what was tried before it was raised (``UpstreamClient.call``: every attempt)

    def with_attempts(self, attempts: Sequence[Attempt]) -> UpstreamError:
        """The same failure, raised by the policy with every attempt it made (the transport knows only its own)."""
        return type(self)(str(self), attempts=attempts)


class NoResponse(UpstreamError):
    pass


class NotSent(NoResponse):
    pass


class Untrusted(NotSent):
    pass


class MaybeSent(NoResponse):
    pass


class BadStatus(UpstreamError):
    def __init__(self, response: "UpstreamResponse", *, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(f"upstream answered HTTP {response.status}", attempts=attempts)
        self.response = response

    def with_attempts(self, attempts: Sequence[Attempt]) -> BadStatus:
        return BadStatus(self.response, attempts=attempts)


class Refused(UpstreamError):
    pass


class CircuitOpen(Refused):
    def __init__(self, message: str, *, attempts: Sequence[Attempt] = (), last_failure: UpstreamError | None = None) -> None:
        super().__init__(message, attempts=attempts)
        self.last_failure = last_failure  # what opened it (an ``Untrusted`` keeps its message)


@dataclass(frozen=True)
class UpstreamRequest:
    path: str
    body: bytes
    write: bool
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: bytes


@dataclass(frozen=True)
class UpstreamSettings:
    connect_timeout_s: float = 3.0
    total_timeout_s: float = 20.0
    max_attempts: int = 3
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 2.0
    budget_ratio: float = 0.1
    budget_min: float = 10.0
    budget_max: float = 100.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 5.0
    rate_per_s: float = 50.0  # each client's (or peer's) token bucket at admission (``nhigw.gateway.admission``)
    rate_burst: float = 100.0
    tls: CloudTls = field(default_factory=CloudTls)


class Transport(abc.ABC):
    @abc.abstractmethod
    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        """One HTTP attempt; raises only ``NotSent`` / ``MaybeSent``."""

    async def close(self) -> None:
        return None


class AiohttpTransport(Transport):
    def __init__(self, settings: UpstreamSettings, base_url: str | None = None) -> None:
        """``base_url``: the one host this transport sends to (its proxy is looked up once, ``CloudTls.session``)."""
        t = aiohttp.ClientTimeout(total=settings.total_timeout_s, connect=settings.connect_timeout_s)
        self._reads = settings.tls.session(base_url, timeout=t)
        self._writes = settings.tls.session(base_url, timeout=t, connector_kw={"force_close": True})

    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        session = self._writes if req.write else self._reads
        headers = {"Content-Type": "application/json", **req.headers}
        try:
            async with session.post(base_url + req.path, data=req.body, headers=headers) as r:
                return UpstreamResponse(r.status, await r.read())
        except aiohttp.ClientConnectorError as exc:
            if is_untrusted(exc):  # the handshake failed before any request byte was sent
                raise Untrusted(f"certificate not trusted: {exc}") from exc
            raise NotSent(f"{type(exc).__name__}: could not connect") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise NotSent(f"{type(exc).__name__}: could not connect") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MaybeSent(f"{type(exc).__name__} after the request was sent") from exc

    async def close(self) -> None:
        await self._reads.close()
        await self._writes.close()

    @property
    def closed(self) -> bool:
        return self._reads.closed and self._writes.closed


class HandlerTransport(Transport):
    """Drive the client with ``handler(base_url, req)`` (unit tests)."""

    def __init__(self, handler: Callable[[str, UpstreamRequest], Awaitable[UpstreamResponse]]) -> None:
        self.handler = handler

    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        return await self.handler(base_url, req)


class BreakerState(IntEnum):
    """The values are the ``nhigw_gateway_breaker_state`` gauge (0 closed, 1 open, 2 half-open)."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Breaker:
    CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open, self.cooldown_s, self.clock = failures, cooldown_s, clock
        self.state: BreakerState = self.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probe = False
        self.opened_count = 0

    def current(self) -> BreakerState:
        """The state as time has it, without a call: an open breaker past its cool-down is half-open
        (the next call probes). For the metric, which must not stay "open" on an idle replica."""
        if self.state == self.OPEN and self.clock() - self.opened_at >= self.cooldown_s:
            return self.HALF_OPEN
        return self.state

    def allow(self) -> bool:
        if self.state == self.OPEN and self.clock() - self.opened_at >= self.cooldown_s:
            self.state, self._probe = self.HALF_OPEN, False
        if self.state == self.CLOSED:
            return True
        if self.state == self.HALF_OPEN and not self._probe:
            self._probe = True
            return True
        return False

    def success(self) -> None:
        self.state, self.failures, self._probe = self.CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.state == self.HALF_OPEN or self.failures >= self.failures_to_open:
            if self.state != self.OPEN:
                self.opened_count += 1
            self.state, self.opened_at, self._probe = self.OPEN, self.clock(), False


@dataclass
class Attempt:
    n: int
    outcome: str  # "ok", http status, or the error class name
    latency_ms: float


@dataclass
class CallResult:
    response: UpstreamResponse
    attempts: list[Attempt]


async def tcp_reachable(base_url: str, timeout_s: float = 2.0) -> bool:
    """Does a TCP connection to ``base_url``'s host and port open within ``timeout_s``? (No request is sent.)"""
    url = URL(base_url)
    if not url.host:
        return False
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(url.host, url.explicit_port or url.port or 443), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class UpstreamClient:
    def __init__(self, base_url: str, settings: UpstreamSettings | None = None, transport: Transport | None = None, *, rng: random.Random | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings or UpstreamSettings()
        self.transport = transport or AiohttpTransport(self.settings, self.base_url)
        self.breaker = Breaker(self.settings.breaker_failures, self.settings.breaker_cooldown_s)
        self.budget = self.settings.budget_min
        self.rng = rng or random.Random()
        self.calls = 0
        self.retries = 0
        self.last_failure: UpstreamError | None = None

    def backoff_s(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2**attempt))

    async def call(self, req: UpstreamRequest, *, before_send: Callable[[int], Awaitable[None]] | None = None) -> CallResult:
        """Send with the policy. Raises ``UpstreamError`` subclasses carrying every attempt (``.attempts``)."""
        self.calls += 1
        self.budget = min(self.settings.budget_max, self.budget + self.settings.budget_ratio)
        attempts: list[Attempt] = []
        n = 0
        while True:
            n += 1
            if not self.breaker.allow():
                raise CircuitOpen(f"circuit open for {self.base_url}", attempts=attempts, last_failure=self.last_failure)
            if before_send:
                await before_send(n)
            t0 = time.monotonic()
            try:
                resp = await self.transport.send(self.base_url, req)
            except NoResponse as exc:
                attempts.append(Attempt(n, type(exc).__name__, (time.monotonic() - t0) * 1000))
                self.breaker.failure()
                self.last_failure = exc
                retry = not isinstance(exc, Untrusted) and (isinstance(exc, NotSent) or not req.write)
                if not retry or not self._may_retry(n):
                    raise exc.with_attempts(attempts) from exc
                await asyncio.sleep(self.backoff_s(n))
                continue
            attempts.append(Attempt(n, str(resp.status), (time.monotonic() - t0) * 1000))
            if resp.status >= 500:
                self.breaker.failure()
                self.last_failure = BadStatus(resp)
                if req.write or not self._may_retry(n):
                    raise BadStatus(resp, attempts=attempts)
                await asyncio.sleep(self.backoff_s(n))
                continue
            self.breaker.success()
            self.last_failure = None
            return CallResult(resp, attempts)

    def _may_retry(self, n: int) -> bool:
        if n >= self.settings.max_attempts or self.budget < 1.0:
            return False
        self.budget -= 1.0
        self.retries += 1
        return True

    async def close(self) -> None:
        await self.transport.close()
