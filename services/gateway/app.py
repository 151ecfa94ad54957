"""The gateway's HTTP app.

Outcomes of a business call, each defined:
- the cloud answered: its JSON and HTTP status, unchanged;
- one-call, workstation offline: 9400 at once (503); agent silent: 9401 (504);
  the agent refused (wrong state, no card): the agent's 6.0 code (409);
- the cloud unreachable or timing out: 9402 (502/504).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from nhigw.bus.base import Bus
from nhigw.bus.rpc import RpcClient
from nhigw.common.http import error_middleware, healthz, json_response
from nhigw.common.logging import get_logger
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.routes import lookup
from nhigw.gateway.dashboard import add_dashboard_routes
from nhigw.gateway.registry import Registry

log = get_logger("nhigw.gateway")

REGISTRY = web.AppKey("registry", Registry)
RPC = web.AppKey("rpc", RpcClient)
CLOUD = web.AppKey("cloud", aiohttp.ClientSession)
CLOUD_URL = web.AppKey("cloud_url", str)
BUS = web.AppKey("bus", Bus)


def create_app(bus: Bus, rpc: RpcClient, registry: Registry, cloud_url: str, *, cloud_timeout_s: float = 20.0) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=32 * 1024 * 1024)
    app[REGISTRY] = registry
    app[RPC] = rpc
    app[CLOUD_URL] = cloud_url.rstrip("/")
    app[BUS] = bus

    async def lifecycle(a: web.Application):  # type: ignore[no-untyped-def]
        a[CLOUD] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cloud_timeout_s))
        await registry.start()
        await rpc.start()
        yield
        await rpc.close()
        await registry.close()
        await a[CLOUD].close()

    app.cleanup_ctx.append(lifecycle)

    async def business(req: web.Request) -> web.Response:
        path = req.match_info["path"]
        raw = await req.read()
        workstation = req.headers.get("X-Workstation")
        if workstation:
            route = lookup(path)
            if route is None:
                raise StatusError(Code.NOT_FOUND, f"no business route /api/v1/{path}", http_status=404)
            if not route.supported:
                raise StatusError(Code.UNSUPPORTED, f"{route.path} is not supported by 6.0 (不支援)")
            try:
                extras: Any = json.loads(raw) if raw.strip() else {}
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise StatusError(Code.PARAM_FORMAT, "malformed JSON body") from exc
            if not isinstance(extras, dict):
                raise StatusError(Code.PARAM_FORMAT, "the body must be a JSON object")
            reply = await req.app[RPC].sign(workstation, route.kind, route.serviceType)
            if not reply.ok or reply.signature is None:
                err = reply.error
                raise StatusError(err.statusCode if err else Code.INTERNAL, err.detail if err else "agent failed", http_status=409, workstation=workstation)
            body = {**extras, **reply.signature.model_dump(exclude_none=True)}
            body.pop("serviceType", None)
            raw = json.dumps(body, ensure_ascii=False).encode()
        return await forward(req.app, f"/api/v1/{path}", raw)

    async def workstations(req: web.Request) -> web.Response:
        return json_response({"workstations": req.app[REGISTRY].snapshot(), "statusCode": 0})

    async def readyz(req: web.Request) -> web.Response:
        ok = await req.app[BUS].ping()
        return web.json_response({"status": "ok" if ok else "bus unavailable"}, status=200 if ok else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/workstations", workstations)
    app.router.add_post("/api/v1/{path:.+}", business)
    add_dashboard_routes(app)
    return app


async def forward(app: web.Application, path: str, body: bytes) -> web.Response:
    url = app[CLOUD_URL] + path
    try:
        async with app[CLOUD].post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            payload = await r.read()
            return web.Response(body=payload, status=r.status, content_type="application/json", charset="utf-8")
    except aiohttp.ClientError as exc:
        raise StatusError(Code.UPSTREAM_UNAVAILABLE, f"NHI cloud unreachable: {type(exc).__name__}", http_status=502) from exc
    except TimeoutError as exc:
        raise StatusError(Code.UPSTREAM_UNAVAILABLE, "NHI cloud timed out", http_status=504) from exc
