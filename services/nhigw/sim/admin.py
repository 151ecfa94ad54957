"""The simulator's admin API under ``/test/v1``: fault injection, the clock, counters.

- ``POST /test/v1/Faults`` (a ``Fault`` rule), ``GET`` (the rules left), ``DELETE`` (clear all);
- ``POST /test/v1/Clock`` ``{"offset_s"}``: shift the simulator's clock (24-hour rollback rule,
  1-hour upload rule);
- ``GET /test/v1/Stats``: business calls per route, executed writes per route, per
  ``Idempotency-Key`` and per content (``writesByContent``: hashes of ``store.write_content_key``;
  ``writesTwice`` lists those executed more than once), idempotent replays per key (only with
  ``--dedupe-writes``); always readable: no personal data.

Faults and the clock are off unless enabled (``nhigw sim --admin``, ``NHIGW_SIM_ADMIN=1`` or
``SimStore.admin_enabled``): otherwise they answer 9411 / HTTP 403. Fault semantics are in
``contracts.cloud.Fault``; a reset closes the TCP connection with RST (SO_LINGER 0) before any
byte of an answer, so the client sees a connection reset / server disconnect.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from aiohttp import web

from nhigw.common.http import json_response, parse_body
from nhigw.contracts.cloud import ClockRequest, Fault, FaultList, StatsResponse
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.routes import lookup
from nhigw.sim.dc import STORE
from nhigw.sim.store import SimStore


def _reset(req: web.Request) -> None:
    transport = req.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def take_fault(st: SimStore, route: str) -> Fault | None:
    """The fault rule that fires for this call, if any (the admin API must be on)."""
    if not st.admin_enabled or not st.faults:
        return None
    return st.take_fault(route)


async def fire(req: web.Request, f: Fault, route: str) -> web.StreamResponse | None:
    """Do what the rule says: None = go on (latency only) or, after the call, send the real answer."""
    if f.latency_ms:
        await asyncio.sleep(f.latency_ms / 1000)
    if f.reset_connection:
        _reset(req)
        return web.Response(status=500)  # never reaches the client: the connection is gone
    if f.status is not None:
        err = StatusError(f.statusCode, f"injected fault on {route}")
        return json_response(err.body(), status=f.status)
    return None


def need_admin(req: web.Request) -> SimStore:
    """The store, if the admin API is on; 9411 (HTTP 403) otherwise."""
    st = req.app[STORE]
    if not st.admin_enabled:
        raise StatusError(Code.FORBIDDEN, "the simulator's admin API is off (nhigw sim --admin or NHIGW_SIM_ADMIN=1)")
    return st


async def add_fault(req: web.Request) -> web.Response:
    st = need_admin(req)
    rule = await parse_body(req, Fault, empty_ok=False)
    if rule.route is not None and lookup(rule.route) is None:
        raise StatusError(Code.PARAM_VALUE, f"no business route {rule.route!r}")
    st.add_fault(rule)
    return json_response(FaultList(faults=[f.rule for f in st.faults]))


async def list_faults(req: web.Request) -> web.Response:
    st = need_admin(req)
    return json_response(FaultList(faults=[f.rule for f in st.faults]))


async def clear_faults(req: web.Request) -> web.Response:
    st = need_admin(req)
    st.faults.clear()
    return json_response(FaultList())


async def set_clock(req: web.Request) -> web.Response:
    st = need_admin(req)
    st.clock_offset_s = (await parse_body(req, ClockRequest, empty_ok=False)).offset_s
    return json_response({"statusCode": 0, "offset_s": st.clock_offset_s})


async def stats(req: web.Request) -> web.Response:
    st = req.app[STORE]
    return json_response(StatsResponse(
        calls=dict(st.calls), writes=dict(st.writes), writesByKey=dict(st.writes_by_key), replays=dict(st.replays),
        writesByContent=dict(st.writes_by_content), writesTwice=sorted(k for k, n in st.writes_by_content.items() if n > 1),
    ))


ROUTES: list[web.RouteDef] = [
    web.post("/test/v1/Faults", add_fault),
    web.get("/test/v1/Faults", list_faults),
    web.delete("/test/v1/Faults", clear_faults),
    web.post("/test/v1/Clock", set_clock),
    web.get("/test/v1/Stats", stats),
]


def add_admin_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
