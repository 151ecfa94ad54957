"""The agent's side of the bus: presence heartbeats, signature calls and component calls.

The agent must be enrolled (``nhigw.bus.enrol``): every message it sends or accepts is
a ``SealedEnvelope`` under its own agent key, so no other host can speak for it or to it.

Presence goes out on start, every ``interval_s`` and at once on any state change;
``leaving=True`` on a clean stop, so the gateway marks the workstation offline at
once rather than after the 3-second silence. A call past its deadline is dropped, and so is a
call whose ``requestId`` already ran (a sealed call captured on the bus and published again:
ids are remembered until their deadline, ``nhigw.bus.guard.Seen``). No message of any size or
shape stops the receiving task; a task that dies anyway is restarted with backoff
(``nhigw.bus.guard``). Drops are counted in ``drops`` and logged once per interval.

Component calls (``ComponentCall``: the gateway forwards an HIS's
``/api/workstations/{id}/hpc/v1/...``) are run against the agent's own HTTP(S)
component API on loopback (``component_url``), so they pass the same middlewares
(records, errors) as a local HIS call. Chosen over dispatching into the aiohttp app
in-process: no private aiohttp API, and the agent's HTTP contract is the one thing
both paths share. Only ``/api/{common,sam,hpc,hc}/v1/...`` paths are forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import aiohttp
from pydantic import Field, TypeAdapter

from nhigw import __version__
from nhigw.agent.core import CardBackend
from nhigw.bus.base import Bus, BusError, Subscription
from nhigw.bus.enrol import AgentIdentity
from nhigw.bus.guard import MAX_CALL_BYTES, Drops, Seen, Supervisor, serve
from nhigw.bus.seal import seal_envelope
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, StatusError, http_status, message
from nhigw.contracts.models import (
    ComponentCall,
    ComponentReply,
    ErrorBody,
    Presence,
    SignatureObject,
    SignCall,
    SignReply,
)

log = get_logger("nhigw.agent.bus")

_CALLS: TypeAdapter[SignCall | ComponentCall] = TypeAdapter(Annotated[SignCall | ComponentCall, Field(discriminator="type")])
COMPONENT_PATH = re.compile(r"^/api/(common|sam|hpc|hc)/v1/[A-Za-z0-9/]+$")


Forward = Callable[[str, str, str, float], Awaitable[tuple[int, str]]]  # (method, path, body, timeout_s) -> (HTTP status, body)


class BusLink:
    """``agent``: the workstation's card backend (``nhigw.agent.core.CardBackend``). Component calls go to
    ``forward`` when given (a bridged agent: ``ComponentBridge.forward``), else to ``component_url``."""

    def __init__(self, agent: CardBackend, bus: Bus, keys: BusKeys, identity: AgentIdentity, *, interval_s: float = 1.0, component_url: str | None = None,
                 forward: Forward | None = None, cloud_env: str | None = None) -> None:
        if identity.workstation != agent.workstation:
            raise ValueError(f"bus identity is for {identity.workstation!r}, agent is {agent.workstation!r}")
        self.agent, self.bus, self.keys, self.identity = agent, bus, keys, identity
        self.interval_s = interval_s
        self.component_url = component_url.rstrip("/") if component_url else None
        self.forward = forward
        self.cloud_env = cloud_env  # the NHI cloud its SAM is verified against, announced (nhigw.common.cloudtls)
        self.agent_id = identity.agentId
        self.drops = Drops()
        self.supervisor = Supervisor(agent.readiness)  # each task a check of the agent's /readyz
        self.seen = Seen()
        self._calls: set[asyncio.Task[None]] = set()
        self._kick = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._sub: Subscription | None = None

    def presence(self, leaving: bool = False) -> Presence:
        return Presence(
            workstation=self.agent.workstation,
            agentId=self.agent_id,
            version=__version__,
            sentAt=time.time(),
            interval_s=self.interval_s,
            states=self.agent.card_states(),
            leaving=leaving or not self.agent.available,  # a backend that cannot serve: offline at the gateway at once
            tls=self.agent.tls_expiry(),
            cloudEnv=self.cloud_env if self.cloud_env in ("production", "test") else None,
        )

    def _seal(self, channel: str, data: bytes) -> bytes:
        return seal_envelope(self.identity.key, channel, self.agent.workstation, data)

    async def start(self) -> None:
        sub = self._sub = await self.bus.subscribe(self.keys.calls(self.agent.workstation))
        self.agent.listeners.append(self._kick.set)
        self.supervisor.start("presence", self._heartbeat)
        self.supervisor.start("bus-calls", lambda: serve(sub, "calls", self._serve_one, self.drops, max_bytes=MAX_CALL_BYTES))

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self.bus.publish(self.keys.presence, self._seal(self.keys.presence, self.presence().model_dump_json().encode()))
            except BusError as exc:
                log.warning("presence_failed", error=str(exc))
            self._kick.clear()
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval_s)

    async def _serve_one(self, channel: str, data: bytes) -> None:
        call = self.seen.open_call(self.identity.key, self.agent.workstation, channel, data, _CALLS.validate_json)
        t = asyncio.create_task(self._answer(call))
        self._calls.add(t)
        t.add_done_callback(self._calls.discard)

    async def _answer(self, call: SignCall | ComponentCall) -> None:
        reply = await (self._sign(call) if isinstance(call, SignCall) else self._component(call))
        try:
            await self.bus.publish(call.replyTo, self._seal(call.replyTo, reply.model_dump_json().encode()))
        except BusError as exc:
            log.warning("reply_failed", error=str(exc))

    async def _sign(self, call: SignCall) -> SignReply:
        try:
            sig = await self.agent.sign(call.kind, call.serviceType)
            reply = SignReply(
                requestId=call.requestId, workstation=self.agent.workstation, ok=True, signature=SignatureObject.model_validate(sig.model_dump(exclude={"statusCode"})),
                hpcId=sig.hpcId or self.agent.signer_hpc(),
            )
        except StatusError as err:
            zh, en = message(err.code)
            reply = SignReply(requestId=call.requestId, workstation=self.agent.workstation, ok=False, error=ErrorBody(statusCode=err.code, message=zh, messageEn=en, detail=err.detail))
        self.agent.record(f"BUS sign {call.kind.value}", 0 if reply.ok else (reply.error.statusCode if reply.error else 0))
        return reply

    async def _component(self, call: ComponentCall) -> ComponentReply:
        def refuse(code: Code, detail: str) -> ComponentReply:
            return ComponentReply(requestId=call.requestId, workstation=self.agent.workstation, httpStatus=http_status(code), body=_error_json(code, detail))

        if not COMPONENT_PATH.match(call.path):
            return refuse(Code.NOT_FOUND, f"not a component API path: {call.path}")
        if self.forward is not None:
            status, body = await self.forward(call.method, call.path, call.body, max(0.5, call.deadline - time.time()))
            return ComponentReply(requestId=call.requestId, workstation=self.agent.workstation, httpStatus=status, body=body)
        if self.component_url is None:
            return refuse(Code.UNSUPPORTED, "this agent does not forward component calls")
        if self._http is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # our own self-signed certificate on loopback
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        timeout = aiohttp.ClientTimeout(total=max(0.5, call.deadline - time.time()))
        try:
            async with self._http.request(call.method, self.component_url + call.path, data=call.body.encode() or None, headers={"Content-Type": "application/json"}, timeout=timeout) as r:
                body = await r.text()
                return ComponentReply(requestId=call.requestId, workstation=self.agent.workstation, httpStatus=r.status, body=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return refuse(Code.WORKSTATION_TIMEOUT, f"local component API unreachable: {type(exc).__name__}")

    async def stop(self) -> None:
        await self.supervisor.close()
        for t in list(self._calls):
            t.cancel()
        for t in list(self._calls):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(BusError):
            await self.bus.publish(self.keys.presence, self._seal(self.keys.presence, self.presence(leaving=True).model_dump_json().encode()))
        if self._sub:
            await self._sub.close()
        if self._http:
            await self._http.close()


def _error_json(code: Code, detail: str) -> str:
    return json.dumps(StatusError(code, detail).body(), ensure_ascii=False)
