"""A bare aiohttp pass-through proxy: the floor any Python HTTP gateway is measured against.

    python bench/proxy.py --port 9000 --upstream http://127.0.0.1:8068

It reads the body, POSTs it upstream on one shared ``ClientSession`` and returns the
answer: no validation, no bus, no queue, no audit, no logging. It runs on the event loop
the services choose (``nhigw.common.loop``: uvloop where installed, ``NHIGW_LOOP=asyncio``
for the standard one), so the gateway is always compared on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable

import aiohttp
from aiohttp import web

try:
    from nhigw.common.loop import loop_factory
except ImportError:  # a tree from before the loop choice (NHIGW_SRC): the standard loop, as its services

    def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
        return None


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def lifecycle(a: web.Application):  # type: ignore[no-untyped-def]
        a[session_key] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        yield
        await a[session_key].close()

    async def forward(req: web.Request) -> web.Response:
        body = await req.read()
        async with req.app[session_key].post(upstream + req.path, data=body, headers={"Content-Type": "application/json"}) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/{path:.+}", forward)
    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    a = ap.parse_args()
    factory = loop_factory(os.environ.get("NHIGW_LOOP"))
    loop = factory() if factory is not None else asyncio.new_event_loop()
    web.run_app(create_app(a.upstream.rstrip("/")), host="127.0.0.1", port=a.port, access_log=None, print=None, loop=loop)
