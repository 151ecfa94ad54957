"""Admission: every decision made before a request is queued or forwarded, in one place (the ``Gate``).

In the order the gate asks them of a business request (the first refusal answers):

1. *who* — the client its key names (``Clients.authenticate``: 401/9411 without a valid key);
   found once per request by ``gate_middleware`` and kept on the request;
2. *scope* — a one-call workstation (or a device session's) the client's patterns match, or the
   hospital a pass-through body names the client's own (9411, HTTP 403);
3. *online* — the workstation is there (9400 at once; 9411 retry-shortly while this replica has
   not heard its agents yet); the worker asks the same question again before it signs;
4. *key and deadline* — ``Idempotency-Key`` 1-200 printable ASCII (generated when absent) and
   ``X-Deadline-Ms`` (default ``default_deadline_s``, at most ``max_deadline_s``, at least 50 ms);
5. *rate* — one token of the client's bucket (9407 with the key).

Every other route takes its token in ``gate_middleware`` (the bucket of the client its key names,
or of the peer address without a valid key); component calls ask scope, the HIS-call list (other
calls need an operator key) and online. Refusals of business requests are counted by code
(``nhigw_gateway_admission_refusals``).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter

from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.routes import VNHI_UPLOAD
from nhigw.gateway.auth import Action, Client, Clients, forbid
from nhigw.gateway.registry import Registry

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT = web.RequestKey("client", Client)
IDEM_RE = re.compile(r"^[\x21-\x7e]{1,200}$")
MIN_DEADLINE_S = 0.05
MAX_BUCKETS = 10_000  # many peers: buckets that refilled are forgotten (nothing to remember)

# The component calls an HIS client may forward to a workstation's agent: the 6.0 calls HIS code
# makes (cards, PINs, signatures, Initial/Finalize, status). The others — Settings (CORS list,
# default reader, cloud SAM files) and clearing the call record — change how the agent works for
# everyone and need an operator key. Device sessions (``/api/sessions/...``) offer only HIS calls.
HIS_COMPONENT_CALLS = frozenset(
    {
        ("GET", "common/v1/Status"), ("GET", "common/v1/Name"), ("GET", "common/v1/Version"), ("GET", "common/v1/ServerDateTime"),
        ("GET", "common/v1/Record"), ("POST", "common/v1/Initial"), ("POST", "common/v1/Finalize"),
        ("POST", "sam/v1/Verification"), ("POST", "sam/v1/Logout"), ("GET", "sam/v1/Basic"), ("POST", "sam/v1/Signature"),
        ("POST", "hpc/v1/Verification/Hpc"), ("POST", "hpc/v1/Verification/MobileHca"), ("GET", "hpc/v1/Basic"),
        ("POST", "hpc/v1/Pin"), ("PUT", "hpc/v1/Pin"), ("POST", "hpc/v1/Signature"), ("DELETE", "hpc/v1/Logout"),
        ("GET", "hc/v1/Basic"), ("GET", "hc/v1/Pin"), ("POST", "hc/v1/Pin"), ("PUT", "hc/v1/Pin"), ("DELETE", "hc/v1/Pin"),
        ("GET", "hc/v1/OrganDonate"), ("PUT", "hc/v1/OrganDonate"), ("POST", "hc/v1/Verification/VirtualHc"),
        ("POST", "hc/v1/VirtualHc/ReadBasic"), ("GET", "hc/v1/VirtualHc/Import"), ("POST", "hc/v1/VirtualHc/Import"),
        ("POST", "hc/v1/Signature/Hc"), ("POST", "hc/v1/Signature/HpcHc"), ("DELETE", "hc/v1/Logout"),
    }
)  # fmt: skip


def his_may_call(method: str, rest: str) -> bool:
    """Pure: may an HIS client (no operator key) forward ``method`` ``/api/{rest}`` to an agent?"""
    return (method, rest) in HIS_COMPONENT_CALLS


def idempotency_key(headers: Mapping[str, str]) -> str:
    """The request's ``Idempotency-Key``, or a fresh one (always echoed to the HIS)."""
    idem = headers.get("Idempotency-Key") or uuid.uuid4().hex
    if not IDEM_RE.match(idem):
        raise StatusError(Code.PARAM_VALUE, "Idempotency-Key must be 1-200 printable ASCII characters")
    return idem


def deadline_s(headers: Mapping[str, str], default_s: float, max_s: float) -> float:
    """Pure: how long the HIS waits (``X-Deadline-Ms``), clamped to [50 ms, ``max_s``]."""
    if "X-Deadline-Ms" not in headers:
        return default_s
    try:
        return min(max_s, max(MIN_DEADLINE_S, int(headers["X-Deadline-Ms"]) / 1000))
    except ValueError as exc:
        raise StatusError(Code.PARAM_VALUE, "X-Deadline-Ms must be an integer (milliseconds)") from exc


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate_per_s, burst, clock
        self.tokens, self.at = burst, clock()

    def take(self, n: float = 1.0) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


@dataclass(frozen=True)
class Ticket:
    """A business request let in: the workstation that signs it (None: pass-through), its key, how long the HIS waits."""

    workstation: str | None
    idempotency_key: str
    deadline_s: float


class Gate:
    """The gateway's admission decisions (see the module docstring); one per replica, rate buckets per replica."""

    def __init__(
        self, clients: Clients, registry: Registry, refusals: Counter, *,
        rate_per_s: float, rate_burst: float, default_deadline_s: float, max_deadline_s: float,
    ) -> None:  # fmt: skip
        self.clients, self.registry, self.refusals = clients, registry, refusals
        self.rate_per_s, self.rate_burst = rate_per_s, rate_burst
        self.default_deadline_s, self.max_deadline_s = default_deadline_s, max_deadline_s
        self._buckets: dict[str, TokenBucket] = {}

    # ------------------------------------------------------------------ who, at what rate

    def client(self, req: web.Request) -> Client:
        """The client the request's key names (found once by ``gate_middleware``), or 401/9411."""
        known = req.get(CLIENT)
        return known if known is not None else self.clients.authenticate(req)

    def take(self, bucket: str, *, idempotency_key: str | None = None) -> None:
        """One token of ``bucket`` (an HIS client, or a peer address), or 9407."""
        b = self._buckets.get(bucket)
        if b is None:
            if len(self._buckets) >= MAX_BUCKETS:
                for k in [k for k, v in self._buckets.items() if v.take(0) and v.tokens >= v.burst]:
                    del self._buckets[k]
            b = self._buckets[bucket] = TokenBucket(self.rate_per_s, self.rate_burst)
        if not b.take():
            extra = {"idempotencyKey": idempotency_key} if idempotency_key is not None else {}
            raise StatusError(Code.RATE_LIMITED, f"rate limit reached ({bucket})", **extra)

    # ------------------------------------------------------------------ scope, online

    @staticmethod
    def may_use(client: Client, workstation: str) -> None:
        if not client.may_use(workstation):
            raise forbid(f"client {client.name!r} may not use workstation {workstation!r}")

    @staticmethod
    def may_act_for(client: Client, hospital: str | None) -> None:
        if not client.may_act_for(hospital):
            raise forbid(f"client {client.name!r} may not act for hospital {hospital!r}")

    async def online(self, workstation: str, *, count: bool = True) -> None:
        """The one decision "is this workstation there?": 9400 only when the registry knows; 9411 (503,
        retry shortly) while this replica has not heard its agents yet (``Registry.settled``).
        ``count``: a refusal at admission (the worker's re-check before it signs is not one)."""
        state = await self.registry.settled(workstation)
        if state is None:
            err = StatusError(Code.NOT_READY, "this gateway replica has not heard its agents yet (just started, or its Redis reconnected); retry in a second", workstation=workstation, retryAfter_s=1)
        elif not state:
            err = StatusError(Code.WORKSTATION_OFFLINE, f"workstation {workstation!r} is offline", workstation=workstation)
        else:
            return
        if count:
            self.refused(err.code)
        raise err

    def refused(self, code: int) -> None:
        self.refusals.labels(str(int(code))).inc()

    # ------------------------------------------------------------------ whole requests

    async def business(self, client: Client, headers: Mapping[str, str], *, workstation: str | None, hospital: str | None) -> Ticket:
        """A business request (one call when ``workstation``, else pass-through for ``hospital``): scope, online, key, deadline, rate."""
        if workstation:
            self.may_use(client, workstation)
            await self.online(workstation)
        else:
            self.may_act_for(client, hospital)
        idem = idempotency_key(headers)
        wait_s = deadline_s(headers, self.default_deadline_s, self.max_deadline_s)
        try:
            self.take(f"client:{client.name}", idempotency_key=idem)
        except StatusError as err:
            self.refused(err.code)
            raise
        return Ticket(workstation, idem, wait_s)

    async def component(self, client: Client, workstation: str, method: str, rest: str) -> None:
        """A 6.0 component call forwarded to ``workstation``'s agent (``/api/{rest}``)."""
        self.may_use(client, workstation)
        if not his_may_call(method, rest) and not client.may(Action.AGENT_SETTINGS):
            raise forbid(f"{method} /api/{rest} changes the agent's settings: it needs an operator key (HIS clients may make the calls listed in README)")
        await self.online(workstation)


GATE = web.AppKey("gate", Gate)


def takes_own_token(path: str) -> bool:
    """Business routes take their token in ``Gate.business``, with the client's key (and its idempotency key)."""
    return path.startswith("/api/v1/") or path == VNHI_UPLOAD.url


@web.middleware
async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the client once per request; one token of its bucket (of the peer's without a valid key)."""
    gate = request.app[GATE]
    try:
        client = gate.clients.authenticate(request)
    except StatusError:
        bucket = f"peer:{request.remote}"
    else:
        request[CLIENT] = client
        bucket = f"client:{client.name}"
    if not takes_own_token(request.path):
        gate.take(bucket)
    return await handler(request)
