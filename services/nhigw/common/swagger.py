"""Swagger UI served locally (no CDN): ``add_swagger(router, base, document, title)``.

Under ``base`` (``/swagger`` for compat, ``/api/swagger`` for the agent and the simulator's
cloud API, ``/test/swagger`` for the simulator's test API), as the seed's screenshots show it:

- ``{base}/index.html``: the Swagger UI page (``{base}`` and ``{base}/`` redirect to it);
- ``{base}/v1/swagger.json``: the OpenAPI document (``document()``, built on each request);
- ``{base}/swagger-ui-bundle.js`` and the other UI files: from the ``swagger-ui-bundle-v2``
  package (Swagger UI 5, which reads the OpenAPI 3.1 documents), so the page works offline.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from nhigw.common.http import json_response

__all__ = ["add_swagger", "swagger_files"]

INDEX = """<!doctype html>
<html lang="zh-Hant"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="swagger-ui.css"><link rel="icon" href="favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script><script src="swagger-ui-standalone-preset.js"></script>
<script src="init.js"></script></body></html>
"""

INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({url: "v1/swagger.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
};
"""


def swagger_files() -> Path | None:
    """The Swagger UI files of the ``swagger-ui-bundle-v2`` package (None when it is not installed)."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def add_swagger(router: web.UrlDispatcher, base: str, document: Callable[[], dict[str, Any]], title: str) -> None:
    page = INDEX.format(title=html.escape(title))

    async def swagger_json(_req: web.Request) -> web.Response:
        return json_response(document())

    async def index(_req: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def init(_req: web.Request) -> web.Response:
        return web.Response(text=INIT, content_type="application/javascript")

    async def to_index(_req: web.Request) -> web.Response:
        raise web.HTTPFound(f"{base}/index.html")

    router.add_get(f"{base}/v1/swagger.json", swagger_json)
    router.add_get(f"{base}/index.html", index)
    router.add_get(f"{base}/init.js", init)
    router.add_get(base, to_index)
    router.add_get(f"{base}/", to_index)
    files = swagger_files()
    if files is not None:
        router.add_static(f"{base}/", files, show_index=False)
