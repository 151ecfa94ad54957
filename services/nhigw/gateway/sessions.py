"""Device sessions at the gateway: readerless devices (tablets, phones, kiosks) use virtual HCs.

A device opens a session (``POST /api/sessions {"device": "bed-12"}``) and gets
``{sessionId, token, expiresAt, workstation}``. The ``token`` goes into the
``X-Device-Session`` header of every later call; ``sessionId`` is its public name (audit,
logs). The gateway picks a *serving agent* (an online workstation the client may use whose
agent serves device sessions: a cloud SAM, ``nhigw agent --no-pcsc``; or the one named in
``workstation``), and from then on forwards that session's card operations to it, sealed
under that agent's key (``SessionCall`` on ``BusKeys.sessions(ws)``):

- ``POST /api/sessions/hc/v1/Verification/VirtualHc {"token"}``: a patient's QR token;
- ``GET|POST /api/sessions/hc/v1/VirtualHc/Import``: export the transfer code (the virtual HC
  is logged out of this session) / import one into this session;
- ``POST /api/sessions/hpc/v1/Verification/MobileHca``: the doctor's mobile HCA login;
- ``POST /api/sessions/{hc,hpc}/v1/Logout``; ``GET /api/sessions`` (states); ``DELETE /api/sessions``;
- business routes ``POST /api/v1/...`` with ``X-Device-Session``: one call, as with
  ``X-Workstation``, but the signature comes from that session's cards on its serving agent.

What the gateway keeps (``DeviceSessionRecord``, sealed with the gateway key in its KV, TTL
= the idle timeout, renewed by every call): the session id, a hash of its token, device,
hospital, client, serving workstation and agent. No card number, name or ID number: those
stay on the serving agent (``nhigw.agent.sessions``); audit records carry only the masked
patient ID from the signature, as for workstations.

Bounds: live sessions per device (``per_device``, default 2) and per hospital
(``per_hospital``, default 200), counted in sorted sets scored by expiry (one Lua script on
Redis, so replicas share the count); the serving agent has its own cap. Over a bound: 9409 (429).
A closed, expired or unknown session, or another client's: 9410 (410). Error bodies are the
documented ``ErrorBody`` (no extra fields); ``POST /api/sessions`` answers 200.

Session lifecycle events (open, verify, import, export, close) are audited in the same
hash chain as business requests (``eventType`` ``session``), each naming the device
session and the serving agent.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nhigw.bus.rpc import RpcClient
from nhigw.bus.seal import SealError
from nhigw.common.http import json_response, parse_body
from nhigw.common.logging import get_logger
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code, StatusError, http_status
from nhigw.contracts.models import (
    DeviceSessionOpenRequest,
    DeviceSessionRecord,
    DeviceSessionResponse,
    MobileHcaRequest,
    SessionCall,
    SessionReply,
    SessionStates,
    SignatureKind,
    SignatureObject,
    TokenRequest,
    VirtualHcExportResponse,
)
from nhigw.gateway.admission import GATE
from nhigw.gateway.audit import AuditRecord, outcome_of
from nhigw.gateway.auth import Client, forbid

if TYPE_CHECKING:
    from nhigw.bus.base import Bus
    from nhigw.bus.guard import Drops, Supervisor
    from nhigw.bus.seal import Sealer
    from nhigw.gateway.agents import AgentKeys
    from nhigw.gateway.audit import AuditLog
    from nhigw.gateway.registry import Registry
    from nhigw.gateway.store import KV

log = get_logger("nhigw.gateway.sessions")

HEADER = "X-Device-Session"


class _SessionKeys(BusKeys):
    """``RpcClient`` sends on ``calls(ws)``; for sessions that is the agent's sessions channel."""

    def calls(self, workstation: str) -> str:
        return self.sessions(workstation)


class SessionRpc(RpcClient):
    async def session(self, workstation: str, op: str, session_id: str, *, timeout_s: float, **fields: Any) -> SessionReply:
        req = SessionCall(
            requestId=uuid.uuid4().hex,
            workstation=workstation,
            sessionId=session_id,
            op=op,
            replyTo=self.keys.replies(self.node_id),
            deadline=time.time() + timeout_s,
            **fields,
        )
        return SessionReply.model_validate_json(await self._call(workstation, req.requestId, req, timeout_s))


# --------------------------------------------------------------------------- bounds


class SessionIndex:
    """Live session ids per scope with their expiry; ``reserve`` checks every bound and adds atomically."""

    def __init__(self) -> None:
        self._d: dict[str, dict[str, float]] = {}

    def _live(self, key: str, now: float) -> dict[str, float]:
        d = self._d.setdefault(key, {})
        for sid in [s for s, exp in d.items() if exp <= now]:
            del d[sid]
        return d

    async def reserve(self, bounds: list[tuple[str, int]], sid: str, expires: float) -> int:
        """0 when added to every scope; else the 1-based index of the first bound that is full."""
        now = time.time()
        for i, (key, limit) in enumerate(bounds, 1):
            d = self._live(key, now)
            if sid not in d and len(d) >= limit:
                return i
        for key, _ in bounds:
            self._d[key][sid] = expires
        return 0

    async def touch(self, keys: list[str], sid: str, expires: float) -> None:
        for k in keys:
            if sid in self._d.get(k, {}):
                self._d[k][sid] = expires

    async def remove(self, keys: list[str], sid: str) -> None:
        for k in keys:
            self._d.get(k, {}).pop(sid, None)

    async def count(self, key: str) -> int:
        return len(self._live(key, time.time()))


class RedisSessionIndex(SessionIndex):
    _RESERVE = """
local now, sid, exp, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i, k in ipairs(KEYS) do redis.call('ZREMRANGEBYSCORE', k, '-inf', now) end
for i, k in ipairs(KEYS) do
  if not redis.call('ZSCORE', k, sid) and redis.call('ZCARD', k) >= tonumber(ARGV[4 + i]) then return i end
end
for i, k in ipairs(KEYS) do redis.call('ZADD', k, exp, sid); redis.call('PEXPIRE', k, ttl) end
return 0
"""

    def __init__(self, client: Any, max_ttl_s: float) -> None:
        super().__init__()
        self.client, self.max_ttl_s = client, max_ttl_s

    async def reserve(self, bounds: list[tuple[str, int]], sid: str, expires: float) -> int:
        args = [repr(time.time()), sid, repr(expires), int(self.max_ttl_s * 1000), *[limit for _, limit in bounds]]
        return int(await self.client.eval(self._RESERVE, len(bounds), *[k for k, _ in bounds], *args))

    async def touch(self, keys: list[str], sid: str, expires: float) -> None:
        async with self.client.pipeline(transaction=False) as p:
            for k in keys:
                p.zadd(k, {sid: expires}, xx=True)
            await p.execute()

    async def remove(self, keys: list[str], sid: str) -> None:
        async with self.client.pipeline(transaction=False) as p:
            for k in keys:
                p.zrem(k, sid)
            await p.execute()

    async def count(self, key: str) -> int:
        await self.client.zremrangebyscore(key, "-inf", time.time())
        return int(await self.client.zcard(key))


# --------------------------------------------------------------------------- the manager


def _record_aad(session_id: str) -> str:
    """A session's record is bound to its id: a copy under another session's key does not open."""
    return f"device-session:{session_id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DeviceSessions:
    """Opens, finds, renews and closes device sessions; forwards their card operations."""

    def __init__(
        self, *, bus: "Bus", keys: BusKeys, agents: "AgentKeys", registry: "Registry", kv: "KV", index: "SessionIndex", box: "Sealer", audit: "AuditLog",
        drops: "Drops", supervisor: "Supervisor", instance: str, site: str,
        idle_s: float = 900.0, per_device: int = 2, per_hospital: int = 200, call_timeout_s: float = 10.0,
    ) -> None:
        self.kv, self.box, self.audit_log, self.registry, self.agents = kv, box, audit, registry, agents
        self.instance, self.site = instance, site
        self.idle_s, self.per_device, self.per_hospital, self.call_timeout_s = idle_s, per_device, per_hospital, call_timeout_s
        self.keys = keys
        self.rpc = SessionRpc(bus, _SessionKeys(keys.prefix), agents, drops=drops, supervisor=supervisor, receiver="session-replies")
        self.rpc.alive = registry.online  # a session call waiting on an agent that goes away: 9400 at once
        self.index = index  # shared by the replicas on Redis (``nhigw.gateway.backend``)
        self.served: Counter[str] = Counter()  # this replica's opens per workstation: least-loaded first

    async def start(self) -> None:
        await self.rpc.start()

    async def close(self) -> None:
        await self.rpc.close()

    # ------------------------------------------------------------------ records

    def _scopes(self, rec: DeviceSessionRecord) -> list[str]:
        return [self.keys.device_index(f"h:{rec.hospitalId}"), self.keys.device_index(f"d:{rec.hospitalId}:{rec.device}"), self.keys.device_index("all")]

    async def live(self) -> int:
        """Device sessions open now, on every replica (``nhigw_gateway_device_sessions``)."""
        return await self.index.count(self.keys.device_index("all"))

    async def _store(self, rec: DeviceSessionRecord) -> None:
        ttl = max(0.05, rec.expiresAt - time.time())
        await self.kv.set(self.keys.device_session(rec.sessionId), self.box.seal(rec.model_dump_json().encode(), _record_aad(rec.sessionId)), ttl_s=ttl)
        await self.kv.set(self.keys.device_token(rec.tokenHash), rec.sessionId.encode(), ttl_s=ttl)

    async def record(self, session_id: str, *, touch: bool = True) -> DeviceSessionRecord:
        """The live session named ``session_id`` (renewed when ``touch``), or 9410."""
        raw = await self.kv.get(self.keys.device_session(session_id))
        rec = None
        if raw:
            try:
                rec = DeviceSessionRecord.model_validate_json(self.box.open(raw, _record_aad(session_id)))
            except (SealError, ValueError):
                log.error("device_session_unreadable", sessionId=session_id)
        if rec is None or rec.expiresAt <= time.time():
            raise StatusError(Code.SESSION_GONE, "device session closed, expired or unknown")
        if touch:
            rec.expiresAt = time.time() + rec.idle_s
            await self._store(rec)
            await self.index.touch(self._scopes(rec), rec.sessionId, rec.expiresAt)
        return rec

    async def resolve(self, req: web.Request, client: Client) -> DeviceSessionRecord:
        """The session named by the request's ``X-Device-Session`` token, for this client only."""
        token = req.headers.get(HEADER, "")
        if not token or len(token) > 200:
            raise StatusError(Code.SESSION_GONE, f"{HEADER} is missing or malformed")
        sid = await self.kv.get(self.keys.device_token(token_hash(token)))
        if sid is None:
            raise StatusError(Code.SESSION_GONE, "device session closed, expired or unknown")
        rec = await self.record(sid.decode())
        if rec.client != client.name or rec.tokenHash != token_hash(token):
            raise StatusError(Code.SESSION_GONE, "device session closed, expired or unknown")
        return rec

    # ------------------------------------------------------------------ agent calls

    async def call(self, rec: DeviceSessionRecord, op: str, **fields: Any) -> SessionReply:
        if not self.registry.online(rec.workstation):
            raise StatusError(Code.WORKSTATION_OFFLINE, f"the serving agent {rec.workstation!r} is offline")
        reply = await self.rpc.session(rec.workstation, op, rec.sessionId, timeout_s=self.call_timeout_s, **fields)
        if not reply.ok:
            err = reply.error
            code = err.statusCode if err else Code.INTERNAL
            raise StatusError(code, err.detail if err else "agent failed")
        return reply

    async def sign(self, session_id: str, kind: SignatureKind, service_type: str) -> tuple[SignatureObject, DeviceSessionRecord, str | None]:
        """For the gateway's worker: a one-call signature from this session's cards on its serving agent,
        the session's record and the HCA logged in to the session (signature with it or not)."""
        rec = await self.record(session_id)
        reply = await self.call(rec, "sign", kind=kind, serviceType=service_type)
        assert reply.signature is not None
        return reply.signature, rec, reply.hpcId

    async def open(self, client: Client, req: DeviceSessionOpenRequest) -> DeviceSessionResponse:
        hospital = req.hospitalId or client.hospitalId
        if not client.may_act_for(hospital):
            raise forbid(f"client {client.name!r} may not act for hospital {hospital!r}")
        if req.workstation is not None:
            if not client.may_use(req.workstation):
                raise forbid(f"client {client.name!r} may not use workstation {req.workstation!r}")
            candidates = [req.workstation]
        else:
            candidates = sorted((str(w["workstation"]) for w in self.registry.snapshot(client.may_use) if w["online"]), key=lambda w: (self.served[w], w))
        if not candidates:
            raise StatusError(Code.WORKSTATION_OFFLINE, "no agent online serves device sessions for this client")
        idle = min(self.idle_s, req.idle_s or self.idle_s)
        sid = "ds-" + secrets.token_hex(8)
        last: StatusError | None = None
        for ws in candidates:
            if not self.registry.online(ws):
                last = StatusError(Code.WORKSTATION_OFFLINE, f"workstation {ws!r} is offline")
                continue
            self.served[ws] += 1  # counted before the call, so concurrent opens spread over the agents
            try:
                reply = await self.rpc.session(ws, "open", sid, timeout_s=self.call_timeout_s, device=req.device, hospitalId=hospital, idle_s=idle)
            except StatusError as err:
                self.served[ws] -= 1
                last = err
                continue
            if reply.ok and reply.states is not None:
                break
            self.served[ws] -= 1
            err_body = reply.error
            last = StatusError(err_body.statusCode if err_body else Code.INTERNAL, err_body.detail if err_body else None)
        else:
            assert last is not None  # the last refusal, as a plain error body (no extra fields)
            raise StatusError(last.code, f"no agent took the device session: {last.detail or 'refused'}")
        states = reply.states
        now = time.time()
        token = "dst_" + secrets.token_urlsafe(32)
        rec = DeviceSessionRecord(
            sessionId=sid, tokenHash=token_hash(token), device=req.device, hospitalId=states.hospitalId or hospital or "-", client=client.name,
            workstation=ws, agentId=self.agents.agent_id(ws), idle_s=idle, openedAt=now, expiresAt=now + idle,
        )
        scopes = self._scopes(rec)
        full = await self.index.reserve([(scopes[0], self.per_hospital), (scopes[1], self.per_device), (scopes[2], 2**31)], sid, rec.expiresAt)
        if full:
            await self._agent_close(rec)
            what = "hospital" if full == 1 else "device"
            raise StatusError(Code.SESSION_LIMIT, f"too many device sessions for this {what}")
        await self._store(rec)
        await self.audit(rec, "open", "E")
        log.info("device_session_opened", sessionId=sid, device=req.device, workstation=ws)
        return DeviceSessionResponse(sessionId=sid, token=token, device=rec.device, workstation=ws, agentId=rec.agentId, expiresAt=rec.expiresAt, states=states)

    async def _agent_close(self, rec: DeviceSessionRecord) -> None:
        try:
            await self.rpc.session(rec.workstation, "close", rec.sessionId, timeout_s=self.call_timeout_s)
        except StatusError as err:  # the agent forgets it at its own idle timeout anyway
            log.warning("device_session_close_not_delivered", sessionId=rec.sessionId, statusCode=err.code)

    async def close_session(self, rec: DeviceSessionRecord) -> None:
        await self.kv.delete(self.keys.device_session(rec.sessionId))
        await self.kv.delete(self.keys.device_token(rec.tokenHash))
        await self.index.remove(self._scopes(rec), rec.sessionId)
        await self._agent_close(rec)
        if self.served[rec.workstation] > 0:
            self.served[rec.workstation] -= 1
        await self.audit(rec, "close", "D")
        log.info("device_session_closed", sessionId=rec.sessionId)

    async def audit(self, rec: DeviceSessionRecord, op: str, action: str, status_code: int = 0) -> None:
        await self.audit_log.append(
            AuditRecord(
                eventType="session",
                action=action,
                route=f"sessions/{op}",
                outcome=outcome_of(status_code),
                statusCode=status_code,
                httpStatus=http_status(status_code),
                client=rec.client,
                hospitalId=rec.hospitalId,
                workstation=rec.workstation,
                agentId=rec.agentId,
                deviceSession=rec.sessionId,
                instance=self.instance,
                site=self.site,
                requestId=uuid.uuid4().hex,
                idempotencyKey="",
            )
        )


# --------------------------------------------------------------------------- HTTP


def _states_body(rec: DeviceSessionRecord, states: SessionStates | None) -> dict[str, Any]:
    body = DeviceSessionResponse(sessionId=rec.sessionId, device=rec.device, workstation=rec.workstation, agentId=rec.agentId, expiresAt=rec.expiresAt, states=states)
    return body.model_dump(mode="json", exclude_none=True)


SESSIONS = web.AppKey("device-sessions", DeviceSessions)


async def _session(req: web.Request) -> tuple[DeviceSessions, DeviceSessionRecord]:
    """The device session the request's token names, for the client its key names only."""
    ds = req.app[SESSIONS]
    return ds, await ds.resolve(req, req.app[GATE].client(req))


async def open_session(req: web.Request) -> web.Response:
    client = req.app[GATE].client(req)
    body = await parse_body(req, DeviceSessionOpenRequest, empty_ok=False)
    res = await req.app[SESSIONS].open(client, body)
    return json_response(res.model_dump(mode="json", exclude_none=True))


async def session_status(req: web.Request) -> web.Response:
    ds, rec = await _session(req)
    reply = await ds.call(rec, "status")
    return json_response(_states_body(rec, reply.states))


async def close_session(req: web.Request) -> web.Response:
    ds, rec = await _session(req)
    await ds.close_session(rec)
    return json_response({"sessionId": rec.sessionId, "statusCode": 0})


async def _token_op(req: web.Request, op: str) -> web.Response:
    """A call that carries a virtual HC token (verify, import): audited, refused or not."""
    ds, rec = await _session(req)
    body = await parse_body(req, TokenRequest, empty_ok=False)
    try:
        reply = await ds.call(rec, op, token=body.token)
    except StatusError as err:
        await ds.audit(rec, op, "E", err.code)
        raise
    await ds.audit(rec, op, "E")
    return json_response(_states_body(rec, reply.states))


async def verify_virtual_hc(req: web.Request) -> web.Response:
    return await _token_op(req, "verify")


async def import_virtual_hc(req: web.Request) -> web.Response:
    return await _token_op(req, "import")


async def export_virtual_hc(req: web.Request) -> web.Response:
    ds, rec = await _session(req)
    reply = await ds.call(rec, "export")
    await ds.audit(rec, "export", "E")
    assert reply.transfer is not None
    return json_response(VirtualHcExportResponse.model_validate(reply.transfer.model_dump()).model_dump(mode="json"))


async def mobile_hca(req: web.Request) -> web.Response:
    ds, rec = await _session(req)
    body = await parse_body(req, MobileHcaRequest, empty_ok=False)
    reply = await ds.call(rec, "mobile-hca", mobileHca=body)
    return json_response(_states_body(rec, reply.states))


async def _simple(req: web.Request, op: str) -> web.Response:
    ds, rec = await _session(req)
    reply = await ds.call(rec, op)
    return json_response(_states_body(rec, reply.states))


async def hc_logout(req: web.Request) -> web.Response:
    return await _simple(req, "hc-logout")


async def hpc_logout(req: web.Request) -> web.Response:
    return await _simple(req, "hpc-logout")


ROUTES = [
    web.post("/api/sessions", open_session),
    web.get("/api/sessions", session_status),
    web.delete("/api/sessions", close_session),
    web.post("/api/sessions/hc/v1/Verification/VirtualHc", verify_virtual_hc),
    web.get("/api/sessions/hc/v1/VirtualHc/Import", export_virtual_hc),
    web.post("/api/sessions/hc/v1/VirtualHc/Import", import_virtual_hc),
    web.post("/api/sessions/hc/v1/Logout", hc_logout),
    web.post("/api/sessions/hpc/v1/Verification/MobileHca", mobile_hca),
    web.post("/api/sessions/hpc/v1/Logout", hpc_logout),
]


def add_session_routes(app: web.Application, ds: DeviceSessions) -> None:
    """Device sessions' routes (``/api/sessions...``); the app's ``GATE`` finds each request's client."""
    app[SESSIONS] = ds
    app.router.add_routes(ROUTES)
