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
# The CORS host patterns in force: one list, changed in place by ``PUT .../Settings/Cors`` (the guard reads it too).
CORS_HOSTS: web.AppKey[list[str]] = web.AppKey("cors_hosts")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOCATION = str(Path(__file__).resolve().parent.parent)


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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


# How long a browser may keep a granted preflight (Chromium caps it at 7200 s): a changed list is
# seen by pages within ten minutes.
CORS_MAX_AGE_S = 600


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers preflights: 204 for a listed origin, 403 for another (the headers: :func:`cors_headers`)."""
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS" and origin:
        return web.Response(status=204 if origin_allowed(origin, request.app[CORS_HOSTS]) else 403)
    return await handler(request)


async def cors_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """CORS headers for a listed origin, on every response just before its headers go out
    (``on_response_prepare``): a streamed one (the event stream) sends them from inside its handler,
    too early for a middleware to add them afterwards."""
    origin = request.headers.get("Origin")
    if not origin or not origin_allowed(origin, request.app[CORS_HOSTS]):
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


def ok() -> web.Response:
    return json_response(StatusCodeBody(statusCode=0))


# ------------------------------------------------------------------ common


async def status(req: web.Request) -> web.Response:
    return json_response(StatusResponse(status=req.app[AGENT].status()))


async def name(req: web.Request) -> web.Response:
    return json_response(NameResponse(names=await req.app[AGENT].names()))


async def version(_req: web.Request) -> web.Response:
    return json_response(VersionResponse(fileVersion=__version__, longVersion=f"nhigw {__version__} (6.0 component API)", shortVersion=__version__, location=LOCATION))


async def initial(req: web.Request) -> web.Response:
    body = await parse_body(req, InitialRequest)
    await req.app[AGENT].initial(body.name)
    return ok()


async def finalize(req: web.Request) -> web.Response:
    await req.app[AGENT].finalize()
    return ok()


async def record_get(req: web.Request) -> web.Response:
    return json_response(RecordResponse(records=req.app[AGENT].record_entries()))


async def record_delete(req: web.Request) -> web.Response:
    req.app[AGENT].clear_records()
    return ok()


async def server_date_time(req: web.Request) -> web.Response:
    return json_response(await req.app[AGENT].server_date_time())


async def readyz(req: web.Request) -> web.Response:
    """Ready while every named check passes: the bus links' tasks run (``task:presence``, ``task:bus-calls``,
    ``task:session-calls``...; none without a bus). A task that died fails its check until it is restarted."""
    checks = await req.app[AGENT].readiness.run()
    failing = [name for name, passed in checks.items() if not passed]
    return web.json_response({"status": "ok" if not failing else "not ready: " + ", ".join(failing), "checks": checks}, status=503 if failing else 200)


# ------------------------------------------------------------------ settings


def settings_body(app: web.Application) -> AgentSettingsResponse:
    agent, hosts = app[AGENT], app[CORS_HOSTS]
    s = agent.settings.settings
    return AgentSettingsResponse(defaultReader=s.defaultReader, corsHosts=list(hosts), lastDevice=s.lastDevice, tls=agent.tls_expiry())


async def settings_get(req: web.Request) -> web.Response:
    return json_response(settings_body(req.app))


async def settings_reader(req: web.Request) -> web.Response:
    agent = req.app[AGENT]
    body = await parse_body(req, ReaderSettingRequest, empty_ok=False)
    if body.reader is not None:
        readers = await agent._readers()
        idx = com_index(body.reader)
        if idx is not None and 0 <= idx < len(readers):
            body.reader = readers[idx]
        if body.reader not in readers:
            raise StatusError(Code.NO_READER_BY_NAME, f"no PC/SC reader named {body.reader!r}")
    agent.settings.update(defaultReader=body.reader)
    return json_response(settings_body(req.app))


async def settings_cors(req: web.Request) -> web.Response:
    body = await parse_body(req, CorsSettingRequest, empty_ok=False)
    req.app[AGENT].settings.update(corsHosts=body.hosts)
    req.app[CORS_HOSTS][:] = body.hosts
    return json_response(settings_body(req.app))


async def cloudsam_list(req: web.Request) -> web.Response:
    return json_response(CloudSamListResponse(cloudSams=req.app[AGENT].cloud_sams.infos()))


async def cloudsam_import(req: web.Request) -> web.Response:
    raw = await req.read()
    if not raw.strip():
        raise StatusError(Code.PARAM_MISSING, "the cloud SAM file is the request body")
    sam = req.app[AGENT].cloud_sams.import_file(raw)
    return json_response(CloudSamListResponse(cloudSams=[sam.info()]))


async def cloudsam_delete(req: web.Request) -> web.Response:
    agent = req.app[AGENT]
    sam_id = req.match_info["samId"]
    if agent.cloud is not None and agent.cloud.sam_id == sam_id:
        raise StatusError(Code.ALREADY_INITIALIZED, "this cloud SAM is in use: Finalize first")
    agent.cloud_sams.remove(sam_id)
    return ok()


# ------------------------------------------------------------------ SAM


async def sam_verify(req: web.Request) -> web.Response:
    await req.app[AGENT].sam_verify()
    return ok()


async def sam_logout(req: web.Request) -> web.Response:
    await req.app[AGENT].sam_logout()
    return ok()


async def sam_basic(req: web.Request) -> web.Response:
    return json_response(req.app[AGENT].sam_basic())


def signer(kind: SignatureKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(req: web.Request) -> web.Response:
        body = await parse_body(req, SignatureRequest)
        return json_response(await req.app[AGENT].sign(kind, body.serviceType))

    return handler


# ------------------------------------------------------------------ HPC


async def hpc_verify(req: web.Request) -> web.Response:
    body = await parse_body(req, PinRequest, empty_ok=False)
    await req.app[AGENT].hpc_verify_pin(body.pin)
    return ok()


async def hpc_mobile(req: web.Request) -> web.Response:
    body = await parse_body(req, MobileHcaRequest, empty_ok=False)
    await req.app[AGENT].hpc_mobile_login(body)
    return ok()


async def hpc_basic(req: web.Request) -> web.Response:
    return json_response(req.app[AGENT].hpc_basic())


async def hpc_pin_change(req: web.Request) -> web.Response:
    body = await parse_body(req, NewPinRequest, empty_ok=False)
    await req.app[AGENT].hpc_change_pin(body.newPin)
    return ok()


async def hpc_pin_unlock(req: web.Request) -> web.Response:
    body = await parse_body(req, PukRequest, empty_ok=False)
    await req.app[AGENT].hpc_unlock(body.puk, body.newPin)
    return ok()


async def hpc_logout(req: web.Request) -> web.Response:
    await req.app[AGENT].hpc_logout()
    return ok()


# ------------------------------------------------------------------ HC


async def hc_basic(req: web.Request) -> web.Response:
    return json_response(await req.app[AGENT].hc_basic())


async def hc_logout(req: web.Request) -> web.Response:
    await req.app[AGENT].hc_logout()
    return ok()


async def hc_pin_get(req: web.Request) -> web.Response:
    return json_response(await req.app[AGENT].hc_pin_status())


async def hc_pin_verify(req: web.Request) -> web.Response:
    body = await parse_body(req, PinRequest, empty_ok=False)
    await req.app[AGENT].hc_pin_verify(body.pin)
    return ok()


async def hc_pin_set(req: web.Request) -> web.Response:
    body = await parse_body(req, NewPinRequest, empty_ok=False)
    await req.app[AGENT].hc_pin_set_new(body.newPin)
    return ok()


async def hc_pin_disable(req: web.Request) -> web.Response:
    await req.app[AGENT].hc_pin_disable()
    return ok()


async def hc_organ_get(req: web.Request) -> web.Response:
    return json_response(await req.app[AGENT].hc_organ_donate())


async def hc_organ_put(req: web.Request) -> web.Response:
    body = await parse_body(req, OrganDonateRequest, empty_ok=False)
    await req.app[AGENT].hc_write_organ_donate(body.organDonate)
    return ok()


async def vhc_verify(req: web.Request) -> web.Response:
    body = await parse_body(req, TokenRequest, empty_ok=False)
    await req.app[AGENT].vhc_verify(body.token)
    return ok()


async def vhc_read_basic(req: web.Request) -> web.Response:
    body = await parse_body(req, TokenRequest, empty_ok=False)
    res = await req.app[AGENT].vhc_read_basic(body.token)
    return json_response(res.model_dump(mode="json"))  # keeps dataIssue: null, as the seed shows


async def vhc_export(req: web.Request) -> web.Response:
    return json_response(await req.app[AGENT].vhc_export())


async def vhc_import(req: web.Request) -> web.Response:
    body = await parse_body(req, TokenRequest, empty_ok=False)
    await req.app[AGENT].vhc_import(body.token)
    return ok()


ROUTES: list[web.RouteDef] = [
    web.get("/healthz", healthz),
    web.get("/readyz", readyz),
    web.get("/api/common/v1/Status", status),
    web.get("/api/common/v1/Name", name),
    web.get("/api/common/v1/Version", version),
    web.post("/api/common/v1/Initial", initial),
    web.post("/api/common/v1/Finalize", finalize),
    web.get("/api/common/v1/Record", record_get),
    web.delete("/api/common/v1/Record", record_delete),
    web.get("/api/common/v1/ServerDateTime", server_date_time),
    web.get("/api/common/v1/Settings", settings_get),
    web.put("/api/common/v1/Settings/Reader", settings_reader),
    web.put("/api/common/v1/Settings/Cors", settings_cors),
    web.get("/api/common/v1/Settings/CloudSam", cloudsam_list),
    web.post("/api/common/v1/Settings/CloudSam", cloudsam_import),
    web.delete(r"/api/common/v1/Settings/CloudSam/{samId:\d{12}}", cloudsam_delete),
    web.post("/api/sam/v1/Verification", sam_verify),
    web.post("/api/sam/v1/Logout", sam_logout),
    web.get("/api/sam/v1/Basic", sam_basic),
    web.post("/api/sam/v1/Signature", signer(SignatureKind.SAM)),
    web.post("/api/hpc/v1/Verification/Hpc", hpc_verify),
    web.post("/api/hpc/v1/Verification/MobileHca", hpc_mobile),
    web.get("/api/hpc/v1/Basic", hpc_basic),
    web.post("/api/hpc/v1/Pin", hpc_pin_change),
    web.put("/api/hpc/v1/Pin", hpc_pin_unlock),
    web.post("/api/hpc/v1/Signature", signer(SignatureKind.HPC)),
    web.delete("/api/hpc/v1/Logout", hpc_logout),
    web.get("/api/hc/v1/Basic", hc_basic),
    web.get("/api/hc/v1/Pin", hc_pin_get),
    web.post("/api/hc/v1/Pin", hc_pin_verify),
    web.put("/api/hc/v1/Pin", hc_pin_set),
    web.delete("/api/hc/v1/Pin", hc_pin_disable),
    web.get("/api/hc/v1/OrganDonate", hc_organ_get),
    web.put("/api/hc/v1/OrganDonate", hc_organ_put),
    web.post("/api/hc/v1/Verification/VirtualHc", vhc_verify),
    web.post("/api/hc/v1/VirtualHc/ReadBasic", vhc_read_basic),
    web.get("/api/hc/v1/VirtualHc/Import", vhc_export),
    web.post("/api/hc/v1/VirtualHc/Import", vhc_import),
    web.post("/api/hc/v1/Signature/Hc", signer(SignatureKind.HC)),
    web.post("/api/hc/v1/Signature/HpcHc", signer(SignatureKind.HPCHC)),
    web.delete("/api/hc/v1/Logout", hc_logout),
]


def create_app(agent: Agent, *, cors_hosts: list[str] | None = None, allowed_hosts: tuple[str, ...] = ()) -> web.Application:
    """``allowed_hosts``: Host names served besides loopback ones (the address given to ``--host``)."""
    hosts: list[str] = list(cors_hosts) if cors_hosts is not None else list(agent.settings.settings.corsHosts)
    guard = Guard(check_host=True, allowed_hosts=allowed_hosts, csrf=True, listed=lambda: hosts, navigable=("/console",))
    app = web.Application(middlewares=[guard_middleware(guard), cors_middleware, record_middleware, error_middleware])
    app.on_response_prepare.append(cors_headers)
    app[AGENT] = agent
    app[CORS_HOSTS] = hosts
    app.router.add_routes(ROUTES)
    add_console_routes(app, agent)
    return app
