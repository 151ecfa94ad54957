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
- ``GET /api/swagger/index.html`` — Swagger UI (files served locally, ``nhigw.common.swagger``)
  over ``GET /api/swagger/v1/swagger.json``, the agent's OpenAPI document (generated from
  ``nhigw.contracts.api.AGENT``, as ``proto/openapi/agent.json``), where the seed says the
  6.0 component serves them; the console's Swagger page lists the same document.

Choices (the seed is silent): events carry the whole status, not a diff, so a client
that missed one is right again at the next; a burst of changes is coalesced (the
client gets the latest status once); on app shutdown every stream ends at once so a
browser left open never holds the server's shutdown.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from nhigw.agent.core import Agent
from nhigw.common.swagger import add_swagger
from nhigw.contracts.models import StatusResponse

STATIC = Path(__file__).resolve().parent / "static"
EVENTS_PATH = "/api/common/v1/Events"
SWAGGER = "/api/swagger"


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
    """The agent's OpenAPI document, as ``nhigw proto`` writes it to ``proto/openapi/agent.json``."""
    from nhigw.contracts.api import AGENT
    from nhigw.protogen import openapi

    return openapi("agent", AGENT)


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
    add_swagger(r, SWAGGER, openapi_document, "讀卡機控制軟體 6.0 元件端 API — nhigw agent")
    r.add_static("/console/static/", STATIC, show_index=False, append_version=False)
    r.add_get(EVENTS_PATH, events)
