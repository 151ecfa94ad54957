"""The 6.0 component API over HTTPS (default https://127.0.0.1:5066).

Routes, bodies and field names as the seed and real HIS code use them (public facts
3.2). Each call is recorded (function and result code) for ``/api/common/v1/Record``,
newest first, bounded (``Agent.max_records``). The states each call needs are in
``nhigw.agent.rules.NEEDS``.

CORS: only listed origins (default ``*.nhi.gov.tw``, seed Q7; ``https`` only unless a pattern
names its scheme, ``nhigw.common.guard.origin_allowed``): the list comes from ``--cors`` or the
persisted settings, and ``PUT /api/common/v1/Settings/Cors`` changes it at once. A browser
request from an unlisted origin gets no CORS headers (a preflight gets 403). A granted preflight
says ``Access-Control-Max-Age`` and answers Chrome's Private Network Access question
(``Access-Control-Request-Private-Network: true`` -> ``Access-Control-Allow-Private-Network: true``). Every request
passes ``nhigw.common.guard`` first: loopback ``Host`` names only (plus the address the agent
was explicitly bound to), and a state-changing request needs ``Content-Type: application/json``
and, with an ``Origin``, this agent's own (the console) or a listed one (JSON 403, 9404).

Settings endpoints (this project's; the seed's console page 設定 as JSON): see
``nhigw.agent.settings``. Importing a cloud SAM: ``POST /api/common/v1/Settings/CloudSam``
with the file's JSON as the body (``nhigw.agent.cloudsam``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from nhigw import __version__
from nhigw.agent.console import add_console_routes
from nhigw.agent.core import Agent
from nhigw.agent.rules import com_index
from nhigw.common.guard import Guard, guard_middleware, origin_allowed
from nhigw.common.http import error_middleware, healthz, json_response, parse_body
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    AgentSettingsResponse,
    CloudSamListResponse,
    CorsSettingRequest,
    InitialRequest,
    MobileHcaRequest,
    NameResponse,
    NewPinRequest,
    OrganDonateRequest,
    PinRequest,
    PukRequest,
    ReaderSettingRequest,
    RecordResponse,
    SignatureKind,
    SignatureRequest,
    StatusCodeBody,
    StatusResponse,
    TokenRequest,
    VersionResponse,
)

AGENT = web.AppKey("agent", Agent)
CORS_HOSTS = web.AppKey("cors_hosts", list)


def _record_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def mw(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        resp = await handler(request)
        if request.path.startswith("/api/") and not request.path.startswith("/api/swagger/") and isinstance(resp, web.Response) and resp.content_type == "application/json":
            code = 0
            if isinstance(resp.body, (bytes, bytearray)) and resp.body:  # every coded answer is HTTP 200: the code is in the body
                try:
                    data = json.loads(resp.body)
                    code = int(data.get("statusCode", 0)) if isinstance(data, dict) else 0
                except (ValueError, TypeError):
                    code = Code.INTERNAL
            request.app[AGENT].record(f"{request.method} {request.path}", code)
        return resp

    return mw


# How long a browser may keep a granted preflight (Chromium caps it at 7200 s): a changed list is
# seen by pages within ten minutes.
CORS_MAX_AGE_S = 600


def _cors_middleware(hosts: list[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Answers preflights: 204 for a listed origin, 403 for another (the headers: :func:`_cors_headers`)."""

    @web.middleware
    async def mw(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin:
            return web.Response(status=204 if origin_allowed(origin, hosts) else 403)
        return await handler(request)

    return mw


def _cors_headers(hosts: list[str]) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """CORS headers for a listed origin, on every response just before its headers go out
    (``on_response_prepare``): a streamed one (the event stream) sends them from inside its handler,
    too early for a middleware to add them afterwards."""

    async def on_prepare(request: web.Request, resp: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if not origin or not origin_allowed(origin, hosts):
            return
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
        resp.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            resp.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
            # Chrome's Private Network Access: a public page calling this loopback agent asks first.
            if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
                resp.headers["Access-Control-Allow-Private-Network"] = "true"

    return on_prepare


def ok() -> web.Response:
    return json_response(StatusCodeBody(statusCode=0))


def create_app(agent: Agent, *, cors_hosts: list[str] | None = None, allowed_hosts: tuple[str, ...] = ()) -> web.Application:
    """``allowed_hosts``: Host names served besides loopback ones (the address given to ``--host``)."""
    hosts: list[str] = list(cors_hosts) if cors_hosts is not None else list(agent.settings.settings.corsHosts)
    guard = Guard(check_host=True, allowed_hosts=allowed_hosts, csrf=True, listed=lambda: hosts, navigable=("/console",))
    app = web.Application(middlewares=[guard_middleware(guard), _cors_middleware(hosts), _record_middleware(), error_middleware])
    app.on_response_prepare.append(_cors_headers(hosts))
    app[AGENT] = agent
    app[CORS_HOSTS] = hosts
    r = app.router
    location = str(Path(__file__).resolve().parent.parent)

    # ------------------------------------------------------------------ common

    async def status(_req: web.Request) -> web.Response:
        return json_response(StatusResponse(status=agent.status()))

    async def name(_req: web.Request) -> web.Response:
        return json_response(NameResponse(names=await agent.names()))

    async def version(_req: web.Request) -> web.Response:
        return json_response(VersionResponse(fileVersion=__version__, longVersion=f"nhigw {__version__} (6.0 component API)", shortVersion=__version__, location=location))

    async def initial(req: web.Request) -> web.Response:
        body = await parse_body(req, InitialRequest)
        await agent.initial(body.name)
        return ok()

    async def finalize(_req: web.Request) -> web.Response:
        await agent.finalize()
        return ok()

    async def record_get(_req: web.Request) -> web.Response:
        return json_response(RecordResponse(records=agent.record_entries()))

    async def record_delete(_req: web.Request) -> web.Response:
        agent.clear_records()
        return ok()

    async def server_date_time(_req: web.Request) -> web.Response:
        return json_response(await agent.server_date_time())

    # ------------------------------------------------------------------ settings

    def settings_body() -> AgentSettingsResponse:
        s = agent.settings.settings
        return AgentSettingsResponse(defaultReader=s.defaultReader, corsHosts=list(hosts), lastDevice=s.lastDevice, tls=agent.tls_expiry())

    async def settings_get(_req: web.Request) -> web.Response:
        return json_response(settings_body())

    async def settings_reader(req: web.Request) -> web.Response:
        body = await parse_body(req, ReaderSettingRequest, empty_ok=False)
        if body.reader is not None:
            readers = await agent._readers()
            idx = com_index(body.reader)
            if idx is not None and 0 <= idx < len(readers):
                body.reader = readers[idx]
            if body.reader not in readers:
                raise StatusError(Code.NO_READER_BY_NAME, f"no PC/SC reader named {body.reader!r}")
        agent.settings.update(defaultReader=body.reader)
        return json_response(settings_body())

    async def settings_cors(req: web.Request) -> web.Response:
        body = await parse_body(req, CorsSettingRequest, empty_ok=False)
        agent.settings.update(corsHosts=body.hosts)
        hosts[:] = body.hosts
        return json_response(settings_body())

    async def cloudsam_list(_req: web.Request) -> web.Response:
        return json_response(CloudSamListResponse(cloudSams=agent.cloud_sams.infos()))

    async def cloudsam_import(req: web.Request) -> web.Response:
        raw = await req.read()
        if not raw.strip():
            raise StatusError(Code.PARAM_MISSING, "the cloud SAM file is the request body")
        sam = agent.cloud_sams.import_file(raw)
        return json_response(CloudSamListResponse(cloudSams=[sam.info()]))

    async def cloudsam_delete(req: web.Request) -> web.Response:
        sam_id = req.match_info["samId"]
        if agent.cloud is not None and agent.cloud.sam_id == sam_id:
            raise StatusError(Code.ALREADY_INITIALIZED, "this cloud SAM is in use: Finalize first")
        agent.cloud_sams.remove(sam_id)
        return ok()

    # ------------------------------------------------------------------ SAM

    async def sam_verify(_req: web.Request) -> web.Response:
        await agent.sam_verify()
        return ok()

    async def sam_logout(_req: web.Request) -> web.Response:
        await agent.sam_logout()
        return ok()

    async def sam_basic(_req: web.Request) -> web.Response:
        return json_response(agent.sam_basic())

    def signer(kind: SignatureKind) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(req: web.Request) -> web.Response:
            body = await parse_body(req, SignatureRequest)
            return json_response(await agent.sign(kind, body.serviceType))

        return handler

    # ------------------------------------------------------------------ HPC

    async def hpc_verify(req: web.Request) -> web.Response:
        body = await parse_body(req, PinRequest, empty_ok=False)
        await agent.hpc_verify_pin(body.pin)
        return ok()

    async def hpc_mobile(req: web.Request) -> web.Response:
        body = await parse_body(req, MobileHcaRequest, empty_ok=False)
        await agent.hpc_mobile_login(body)
        return ok()

    async def hpc_basic(_req: web.Request) -> web.Response:
        return json_response(agent.hpc_basic())

    async def hpc_pin_change(req: web.Request) -> web.Response:
        body = await parse_body(req, NewPinRequest, empty_ok=False)
        await agent.hpc_change_pin(body.newPin)
        return ok()

    async def hpc_pin_unlock(req: web.Request) -> web.Response:
        body = await parse_body(req, PukRequest, empty_ok=False)
        await agent.hpc_unlock(body.puk, body.newPin)
        return ok()

    async def hpc_logout(_req: web.Request) -> web.Response:
        await agent.hpc_logout()
        return ok()

    # ------------------------------------------------------------------ HC

    async def hc_basic(_req: web.Request) -> web.Response:
        return json_response(await agent.hc_basic())

    async def hc_logout(_req: web.Request) -> web.Response:
        await agent.hc_logout()
        return ok()

    async def hc_pin_get(_req: web.Request) -> web.Response:
        return json_response(await agent.hc_pin_status())

    async def hc_pin_verify(req: web.Request) -> web.Response:
        body = await parse_body(req, PinRequest, empty_ok=False)
        await agent.hc_pin_verify(body.pin)
        return ok()

    async def hc_pin_set(req: web.Request) -> web.Response:
        body = await parse_body(req, NewPinRequest, empty_ok=False)
        await agent.hc_pin_set_new(body.newPin)
        return ok()

    async def hc_pin_disable(_req: web.Request) -> web.Response:
        await agent.hc_pin_disable()
        return ok()

    async def hc_organ_get(_req: web.Request) -> web.Response:
        return json_response(await agent.hc_organ_donate())

    async def hc_organ_put(req: web.Request) -> web.Response:
        body = await parse_body(req, OrganDonateRequest, empty_ok=False)
        await agent.hc_write_organ_donate(body.organDonate)
        return ok()

    async def vhc_verify(req: web.Request) -> web.Response:
        body = await parse_body(req, TokenRequest, empty_ok=False)
        await agent.vhc_verify(body.token)
        return ok()

    async def vhc_read_basic(req: web.Request) -> web.Response:
        body = await parse_body(req, TokenRequest, empty_ok=False)
        res = await agent.vhc_read_basic(body.token)
        return json_response(res.model_dump(mode="json"))  # keeps dataIssue: null, as the seed shows

    async def vhc_export(_req: web.Request) -> web.Response:
        return json_response(await agent.vhc_export())

    async def vhc_import(req: web.Request) -> web.Response:
        body = await parse_body(req, TokenRequest, empty_ok=False)
        await agent.vhc_import(body.token)
        return ok()

    async def readyz(_req: web.Request) -> web.Response:
        """Ready while every named check passes: the bus links' tasks run (``task:presence``, ``task:bus-calls``,
        ``task:session-calls``...; none without a bus). A task that died fails its check until it is restarted."""
        checks = await agent.readiness.run()
        failing = [name for name, passed in checks.items() if not passed]
        return web.json_response({"status": "ok" if not failing else "not ready: " + ", ".join(failing), "checks": checks}, status=503 if failing else 200)

    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/api/common/v1/Status", status)
    r.add_get("/api/common/v1/Name", name)
    r.add_get("/api/common/v1/Version", version)
    r.add_post("/api/common/v1/Initial", initial)
    r.add_post("/api/common/v1/Finalize", finalize)
    r.add_get("/api/common/v1/Record", record_get)
    r.add_delete("/api/common/v1/Record", record_delete)
    r.add_get("/api/common/v1/ServerDateTime", server_date_time)
    r.add_get("/api/common/v1/Settings", settings_get)
    r.add_put("/api/common/v1/Settings/Reader", settings_reader)
    r.add_put("/api/common/v1/Settings/Cors", settings_cors)
    r.add_get("/api/common/v1/Settings/CloudSam", cloudsam_list)
    r.add_post("/api/common/v1/Settings/CloudSam", cloudsam_import)
    r.add_delete(r"/api/common/v1/Settings/CloudSam/{samId:\d{12}}", cloudsam_delete)
    r.add_post("/api/sam/v1/Verification", sam_verify)
    r.add_post("/api/sam/v1/Logout", sam_logout)
    r.add_get("/api/sam/v1/Basic", sam_basic)
    r.add_post("/api/sam/v1/Signature", signer(SignatureKind.SAM))
    r.add_post("/api/hpc/v1/Verification/Hpc", hpc_verify)
    r.add_post("/api/hpc/v1/Verification/MobileHca", hpc_mobile)
    r.add_get("/api/hpc/v1/Basic", hpc_basic)
    r.add_post("/api/hpc/v1/Pin", hpc_pin_change)
    r.add_put("/api/hpc/v1/Pin", hpc_pin_unlock)
    r.add_post("/api/hpc/v1/Signature", signer(SignatureKind.HPC))
    r.add_delete("/api/hpc/v1/Logout", hpc_logout)
    r.add_get("/api/hc/v1/Basic", hc_basic)
    r.add_get("/api/hc/v1/Pin", hc_pin_get)
    r.add_post("/api/hc/v1/Pin", hc_pin_verify)
    r.add_put("/api/hc/v1/Pin", hc_pin_set)
    r.add_delete("/api/hc/v1/Pin", hc_pin_disable)
    r.add_get("/api/hc/v1/OrganDonate", hc_organ_get)
    r.add_put("/api/hc/v1/OrganDonate", hc_organ_put)
    r.add_post("/api/hc/v1/Verification/VirtualHc", vhc_verify)
    r.add_post("/api/hc/v1/VirtualHc/ReadBasic", vhc_read_basic)
    r.add_get("/api/hc/v1/VirtualHc/Import", vhc_export)
    r.add_post("/api/hc/v1/VirtualHc/Import", vhc_import)
    r.add_post("/api/hc/v1/Signature/Hc", signer(SignatureKind.HC))
    r.add_post("/api/hc/v1/Signature/HpcHc", signer(SignatureKind.HPCHC))
    r.add_delete("/api/hc/v1/Logout", hc_logout)
    add_console_routes(app, agent)
    return app
