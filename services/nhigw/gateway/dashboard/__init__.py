"""The gateway's ops dashboard (``/dashboard/``): plain HTML, CSS and JS, no build step, no CDN.

``add_dashboard_routes(app)`` mounts the static page and ``GET /dashboard/endpoints.json``,
the gateway's public endpoint table (``nhigw.contracts.api.GATEWAY``: method, path,
summary) so the page finds the ops endpoints by what they are (dead letters, audit,
metrics) as they land rather than by hard-coded guesses. The page reads only what
HIS clients and ops tools read — ``GET /api/workstations``, the Prometheus ``/metrics``
text, the dead-letter and audit endpoints — with the operator's API key
(``Authorization: Bearer``); a gateway without clients is open on loopback and needs
no login. Actions that change state (retry, discard) call the gateway's own ops
endpoints (``ops`` clients only); the dashboard adds no side door, so an audit record
of an operator's action has to be written by those endpoints (not done yet: the
audit trail holds business requests only).

Choices: the latency and error-rate chart is drawn from ``/metrics`` samples the page
takes every few seconds (deltas of the request counters and the latency histogram),
so it covers the time the page has been open; long-term history belongs to
Prometheus. National IDs are masked again in the page (defence in depth) although the
audit trail stores them masked.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"


def endpoint_table() -> list[dict[str, str]]:
    from nhigw.contracts.api import GATEWAY

    return [{"method": e.method, "path": e.path, "summary": e.summary, "tag": e.tag} for e in GATEWAY]


def add_dashboard_routes(app: web.Application) -> None:
    async def index(_req: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def to_index(_req: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard/")

    async def endpoints(req: web.Request) -> web.Response:
        paths = {r.resource.canonical for r in req.app.router.routes() if r.resource is not None}
        return web.json_response({"endpoints": endpoint_table(), "metrics": "/metrics" in paths, "statusCode": 0})

    r = app.router
    r.add_get("/dashboard", to_index)
    r.add_get("/dashboard/", index)
    r.add_get("/dashboard/endpoints.json", endpoints)
    r.add_static("/dashboard/static/", STATIC, show_index=False)
