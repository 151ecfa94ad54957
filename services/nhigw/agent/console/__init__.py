"""The agent's web console (控制軟體主控台), as the seed's screenshots show it.

``add_console_routes(app, agent)`` mounts:
- ``GET /console/`` — a static single page (``static/``: plain HTML, CSS, JS; no build
  step, no CDN) with the pages Common, SAM, HCA, HC, Settings, Swagger, About. Every
  action calls the same 6.0 component API an HIS calls (same origin, so no CORS grant
  is needed); there is no private back door.
- ``GET /api/common/v1/Events`` — a Server-Sent Events stream of the agent's status:
  one ``status`` event at once (a ``StatusResponse``), then one on every state change
  (``Agent.listeners``: card inserted or removed, SAM verified, PIN verified, ...).
  A comment line every ``heartbeat_s`` keeps proxies from closing it.
- ``GET /console/openapi.json`` — the agent's OpenAPI document for the Swagger page:
  ``proto/openapi/agent.json`` when the checkout has it, else a minimal document built
  from ``nhigw.contracts.api.AGENT`` (the same table the generator reads). When the
  agent also serves a Swagger UI (``/api/swagger/index.html``), the header
  ``X-Swagger-UI`` names it and the page links to it.

Choices (the seed is silent): events carry the whole status, not a diff, so a client
that missed one is right again at the next; a burst of changes is coalesced (the
client gets the latest status once); on app shutdown every stream ends at once so a
browser left open never holds the server's shutdown.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from nhigw.agent.core import Agent
from nhigw.contracts.models import StatusResponse

STATIC = Path(__file__).resolve().parent / "static"
OPENAPI_FILE = Path(__file__).resolve().parents[4] / "proto" / "openapi" / "agent.json"
EVENTS_PATH = "/api/common/v1/Events"
SWAGGER_UI = "/api/swagger/index.html"


class EventHub:
    """Fans the agent's state changes out to every open event stream."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.wakers: set[asyncio.Event] = set()
        self.closing = False
        agent.listeners.append(self.notify)

    def notify(self) -> None:
        for ev in list(self.wakers):
            ev.set()

    def close(self) -> None:
        self.closing = True
        self.notify()
        if self.notify in self.agent.listeners:
            self.agent.listeners.remove(self.notify)


HUB = web.AppKey("console_hub", EventHub)


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def openapi_document() -> dict[str, Any]:
    if OPENAPI_FILE.is_file():
        try:
            doc = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
            if isinstance(doc, dict):
                return doc
        except (OSError, ValueError):
            pass
    from nhigw import __version__
    from nhigw.contracts.api import AGENT

    paths: dict[str, dict[str, Any]] = {}
    for ep in AGENT:
        op: dict[str, Any] = {"summary": ep.summary, "tags": [ep.tag] if ep.tag else []}
        if ep.request is not None:
            op["requestBody"] = {"content": {"application/json": {"schema": ep.request.model_json_schema()}}}
        if ep.response is not None:
            op["responses"] = {"200": {"description": "OK", "content": {"application/json": {"schema": ep.response.model_json_schema()}}}}
        else:
            op["responses"] = {"200": {"description": "OK"}}
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "nhigw reader agent (6.0 component API)", "version": __version__}, "paths": paths}


def add_console_routes(app: web.Application, agent: Agent, *, heartbeat_s: float = 15.0) -> None:
    hub = EventHub(agent)
    app[HUB] = hub

    async def on_shutdown(_app: web.Application) -> None:
        hub.close()

    app.on_shutdown.append(on_shutdown)

    async def index(_req: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def to_index(_req: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def openapi(req: web.Request) -> web.Response:
        resp = web.json_response(openapi_document())
        if any(getattr(res, "canonical", "") == SWAGGER_UI for res in req.app.router.resources()):
            resp.headers["X-Swagger-UI"] = SWAGGER_UI
        return resp

    async def events(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        await resp.prepare(req)
        wake = asyncio.Event()
        hub.wakers.add(wake)
        try:
            await resp.write(b"retry: 1000\n\n")
            while not hub.closing:
                wake.clear()
                body = StatusResponse(status=agent.status()).model_dump_json()
                await resp.write(_sse("status", body))
                try:
                    await asyncio.wait_for(wake.wait(), heartbeat_s)
                except TimeoutError:
                    await resp.write(b": ping\n\n")
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            hub.wakers.discard(wake)
        return resp

    r = app.router
    r.add_get("/console", to_index)
    r.add_get("/console/", index)
    r.add_get("/console/openapi.json", openapi)
    r.add_static("/console/static/", STATIC, show_index=False, append_version=False)
    r.add_get(EVENTS_PATH, events)
