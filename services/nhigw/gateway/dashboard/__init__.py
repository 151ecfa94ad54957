"""The gateway's ops dashboard (``/dashboard/``): plain HTML, CSS and JS, no build step, no CDN.

``add_dashboard_routes(app)`` mounts the static page only. The page reads what ops tools read,
with the operator's API key (``Authorization: Bearer``, kept in the browser tab's session
storage; a gateway without clients is open on loopback and needs no login):

- ``GET /api/ops/me``: who the key is and what it may do. The page shows only that: a viewer
  sees no action buttons, an operator no client administration; a hospital's key sees its
  hospital's records, as every endpoint below scopes them anyway (the page adds no side door);
- overview: ``GET /api/workstations``, the ``/metrics`` text (tiles: queue, dead letters,
  breaker, device sessions) and ``GET /api/ops/history`` (``nhigw.gateway.history``): the
  latency / error chart and the per-route table cover the last hours as soon as the page opens;
- request browser: ``POST /api/ops/requests/search`` (``nhigw.gateway.browse``); a typed
  national ID goes in the POST body only and is cleared from the form at once;
- dead letters: the list, one entry's history (``nhigw.gateway.trail``), retry, discard, the
  bounded bulk retry and the explicit resend of a write that may have landed
  (``nhigw.gateway.deadletters``); every action is audited by those endpoints;
- the audit trail (``GET /api/audit``) with its CSV export, and the admin page
  (``/api/admin/clients``, ``/api/admin/enrol-tokens``).

National IDs are masked again in the page (defence in depth) although the gateway returns them
masked.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"


def add_dashboard_routes(app: web.Application) -> None:
    async def index(_req: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def to_index(_req: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard/")

    r = app.router
    r.add_get("/dashboard", to_index)
    r.add_get("/dashboard/", index)
    r.add_static("/dashboard/static/", STATIC, show_index=False)
