"""The 6.0 component API over HTTPS (default https://127.0.0.1:5066).

Routes, bodies and field names as the seed and real HIS code use them (public facts
3.2). Each call is recorded (function and result code) for ``/api/common/v1/Record``.
CORS: only listed origins (default ``*.nhi.gov.tw``, seed Q7).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web

from nhigw import __version__
from nhigw.agent.console import add_console_routes
from nhigw.agent.core import Agent
from nhigw.common.http import error_middleware, healthz, json_response, parse_body
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    InitialRequest,
    Model,
    NameResponse,
    SignatureKind,
    SignatureRequest,
    StatusCodeBody,
    StatusResponse,
    VersionResponse,
)

AGENT = web.AppKey("agent", Agent)
CORS_HOSTS = web.AppKey("cors_hosts", list)


class PinRequest(Model):
    pin: str


def _record_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def mw(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        resp = await handler(request)
        if request.path.startswith("/api/") and isinstance(resp, web.Response) and resp.content_type == "application/json":
            code = 0
            if resp.status >= 400 and resp.body:
                import json

                try:
                    code = int(json.loads(resp.body).get("statusCode", 0))  # type: ignore[arg-type]
                except (ValueError, AttributeError):
                    code = Code.INTERNAL
            request.app[AGENT].record(f"{request.method} {request.path}", code)
        return resp

    return mw


def _cors_middleware(hosts: list[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def mw(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = bool(origin) and any(fnmatch.fnmatch(urlparse(origin).hostname or "", h) for h in hosts)  # type: ignore[arg-type]
        if request.method == "OPTIONS" and origin:
            resp: web.StreamResponse = web.Response(status=204 if allowed else 403)
        else:
            resp = await handler(request)
        if allowed and origin:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
            resp.headers["Vary"] = "Origin"
        return resp

    return mw


def ok() -> web.Response:
    return json_response(StatusCodeBody(statusCode=0))


def create_app(agent: Agent, *, cors_hosts: list[str] | None = None) -> web.Application:
    hosts = cors_hosts if cors_hosts is not None else ["*.nhi.gov.tw", "nhi.gov.tw"]
    app = web.Application(middlewares=[_cors_middleware(hosts), _record_middleware(), error_middleware])
    app[AGENT] = agent
    app[CORS_HOSTS] = hosts
    r = app.router

    async def status(_req: web.Request) -> web.Response:
        return json_response(StatusResponse(status=agent.status()))

    async def name(_req: web.Request) -> web.Response:
        return json_response(NameResponse(names=await agent.names()))

    location = str(Path(__file__).resolve().parent.parent)

    async def version(_req: web.Request) -> web.Response:
        loc = location
        return json_response(VersionResponse(fileVersion=__version__, longVersion=f"nhigw {__version__} (6.0 component API)", shortVersion=__version__, location=loc))

    async def initial(req: web.Request) -> web.Response:
        body = await parse_body(req, InitialRequest)
        await agent.initial(body.name)
        return ok()

    async def finalize(_req: web.Request) -> web.Response:
        await agent.finalize()
        return ok()

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

    async def hc_basic(_req: web.Request) -> web.Response:
        return json_response(await agent.hc_basic())

    async def hc_logout(_req: web.Request) -> web.Response:
        await agent.hc_logout()
        return ok()

    async def hpc_verify(req: web.Request) -> web.Response:
        body = await parse_body(req, PinRequest, empty_ok=False)
        await agent.hpc_verify_pin(body.pin)
        return ok()

    async def hpc_logout(_req: web.Request) -> web.Response:
        await agent.hpc_logout()
        return ok()

    r.add_get("/healthz", healthz)
    r.add_get("/api/common/v1/Status", status)
    r.add_get("/api/common/v1/Name", name)
    r.add_get("/api/common/v1/Version", version)
    r.add_post("/api/common/v1/Initial", initial)
    r.add_post("/api/common/v1/Finalize", finalize)
    r.add_post("/api/sam/v1/Verification", sam_verify)
    r.add_post("/api/sam/v1/Logout", sam_logout)
    r.add_get("/api/sam/v1/Basic", sam_basic)
    r.add_post("/api/sam/v1/Signature", signer(SignatureKind.SAM))
    r.add_post("/api/hpc/v1/Verification/Hpc", hpc_verify)
    r.add_post("/api/hpc/v1/Signature", signer(SignatureKind.HPC))
    r.add_delete("/api/hpc/v1/Logout", hpc_logout)
    r.add_get("/api/hc/v1/Basic", hc_basic)
    r.add_post("/api/hc/v1/Signature/Hc", signer(SignatureKind.HC))
    r.add_post("/api/hc/v1/Signature/HpcHc", signer(SignatureKind.HPCHC))
    r.add_delete("/api/hc/v1/Logout", hc_logout)
    add_console_routes(app, agent)
    return app


def not_supported(reason: str) -> StatusError:
    return StatusError(Code.UNSUPPORTED, reason)
