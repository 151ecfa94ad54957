"""The simulator's HTTP app: the business routes (``/api/v1/...``), the DC (``dc.py``), the
test-card API (``testcards.py``), the upload host's ``/V2000/VNHI_Upload`` (``upload.py``), the admin API (faults, clock, stats; ``admin.py``)
and the developer console (``/console/``: the last requests with their signature checks and answers; ``console/``).

A business call goes through, in order:

1. the route table (unknown 9405, HTTP 404; a row the seed marks 不支援 9406, HTTP 200 as every
   coded answer: ``nhigw.contracts.codes.HTTP_STATUS``);
2. the fault layer (``POST /test/v1/Faults``; off unless the admin API is enabled); a rule
   with ``phase: "after"`` fires after step 6 instead: the call is done, its answer is lost;
3. idempotency, only when asked for (``nhigw sim --dedupe-writes``, ``SimStore.dedupe_writes``):
   for write routes with an ``Idempotency-Key`` header, the same key with the same body
   (compared as canonical JSON) answers the first answer again (same HTTP status and body,
   header ``Idempotent-Replayed: true``) without executing the write again; the same key with
   another body is refused (1706). First answers are kept for the last 100 000 keys.
   By default the simulator does what the real NHI cloud does: it ignores the header and
   executes every write that carries a valid, unused signature (a one-call gateway signs each
   delivery afresh, so a write sent twice *is* executed twice);
4. the body, validated against the route's model (``contracts.cloud.ROUTE_MODELS``);
5. the signature check (``auth.check_signature``);
6. the handler (``business.py``); an executed write is counted per route, per key and per
   content (``store.write_content_key``: route, institution, patient, business fields; not the
   signature), ``GET /test/v1/Stats``: a ``writesByContent`` count above 1 is a write executed twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from nhigw.common.http import error_middleware, healthz, json_response, loads_json, validate
from nhigw.common.logging import get_logger
from nhigw.common.swagger import add_swagger
from nhigw.contracts.cloud import ROUTE_MODELS
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.routes import Route, lookup
from nhigw.sim import business  # noqa: F401  (registers the handlers)
from nhigw.sim import dc as _dc
from nhigw.sim.admin import add_admin_routes, fire, take_fault
from nhigw.sim.auth import check_signature
from nhigw.sim.console import RequestLog, add_console_routes, record_middleware
from nhigw.sim.dc import STORE, add_dc_routes
from nhigw.sim.persist import StateFile, persist_middleware
from nhigw.sim.registry import HANDLERS
from nhigw.sim.store import IdemEntry, SimStore, write_content_key
from nhigw.sim.testcards import add_testcard_routes
from nhigw.sim.upload import add_upload_routes

__all__ = ["STORE", "check_signature", "create_app"]

log = get_logger("nhigw.sim")
IDEM_HEADER = "Idempotency-Key"
IDEM_MAX = 100_000


def _body_hash(raw: bytes) -> str:
    try:
        canon = json.dumps(loads_json(raw), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    except StatusError:
        canon = raw
    return hashlib.sha256(canon).hexdigest()


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        raise StatusError(Code.PARAM_MISSING, "request body required")
    return loads_json(raw)


def openapi_part(prefix: str, title: str) -> dict[str, Any]:
    """The part of the simulator's OpenAPI document under ``prefix``: the cloud's business API
    (``/api/``) or its test API (``/test/``), each with its own Swagger UI as the cloud has."""
    from nhigw.contracts.api import SIM
    from nhigw.protogen import openapi

    doc = openapi("sim", [e for e in SIM if e.path.startswith(prefix)])
    doc["info"]["title"] = title
    return doc


async def execute(st: SimStore, path: str, raw: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
    """Steps 4-6 of a business call: the body, its signature, the handler; a refusal is its coded answer."""
    route = lookup(path)
    assert route is not None
    model = ROUTE_MODELS[route.path][0]
    try:
        req = validate(model, _parse(raw))
        st.calls[route.path] = st.calls.get(route.path, 0) + 1
        check_signature(st, req, route)
        if route.write:
            st.count_write(route.path, key, write_content_key(route.path, req.model_dump(mode="json", exclude_none=True)))
        out = await HANDLERS[route.path.lower()](st, req, route)
    except StatusError as err:
        return err.http_status, err.body()
    body = out.model_dump(mode="json", exclude_none=True) if not isinstance(out, dict) else out
    return 200, body


def _business_route(path: str) -> Route:
    route = lookup(path)
    if route is None:
        raise StatusError(Code.NOT_FOUND, f"no business route /api/v1/{path}")
    if not route.supported:
        raise StatusError(Code.UNSUPPORTED, f"{route.path} is not supported by 6.0 (不支援)")
    if route.path.lower() not in HANDLERS:
        raise StatusError(Code.UNSUPPORTED, f"{route.path} is not implemented by this simulator")
    return route


async def business_call(req: web.Request) -> web.StreamResponse:
    st = req.app[STORE]
    route = _business_route(req.match_info["path"])
    fault = take_fault(st, route.path)
    if fault is not None and fault.phase == "before":
        faulted = await fire(req, fault, route.path)
        if faulted is not None:
            return faulted
    raw = await req.read()
    key = req.headers.get(IDEM_HEADER) if route.write else None
    dedupe = bool(key) and st.dedupe_writes
    if dedupe and key:
        h = _body_hash(raw)
        entry = st.idem.get(key)
        if entry is not None:
            if entry.body_hash != h:
                raise StatusError(Code.PARAM_VALUE, f"{IDEM_HEADER} already used with another body")
            st.replays[key] = st.replays.get(key, 0) + 1
            return json_response(entry.body, status=entry.status, headers={"Idempotent-Replayed": "true"})
    status, body = await execute(st, route.path, raw, key)
    if dedupe and key:
        st.idem[key] = IdemEntry(h, status, body)
        while len(st.idem) > IDEM_MAX:
            del st.idem[next(iter(st.idem))]
    if fault is not None and fault.phase == "after":  # the call was done; its answer is lost
        faulted = await fire(req, fault, route.path)
        if faulted is not None:
            return faulted
    return json_response(body, status=status)


def create_app(store: SimStore | None = None, state: StateFile | None = None, *, console_requests: int = 200) -> web.Application:
    """The simulator; with ``state`` (``nhigw sim --state FILE``) its state is loaded from and
    saved to that file after every request that may change it (``persist.py``). The developer
    console (``console/``) keeps the last ``console_requests`` requests in memory."""
    st0 = store or SimStore.seeded()
    vhc = _dc.VhcAuthority()
    requests = RequestLog(console_requests)
    middlewares: list[Any] = [record_middleware(requests), error_middleware]
    if state is not None:
        if state.load_into(st0, vhc):
            log.info("sim_state_loaded", file=str(state.path))
        middlewares.append(persist_middleware(lambda: state.save(st0, vhc)))
    app = web.Application(middlewares=middlewares, client_max_size=32 * 1024 * 1024)
    app[STORE] = st0
    app[_dc.VHC] = vhc
    st0.vhc_issue = lambda card_sn, ttl_s: vhc.issue(card_sn, ttl_s)[0]
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/v1/{path:.+}", business_call)
    add_dc_routes(app)
    add_testcard_routes(app)
    add_upload_routes(app)
    add_admin_routes(app)
    add_console_routes(app, requests)
    add_swagger(app.router, "/api/swagger", lambda: openapi_part("/api/", "健保署雲端業務 API (nhigw 模擬器)"), "健保署雲端業務 API — nhigw 模擬器")
    add_swagger(app.router, "/test/swagger", lambda: openapi_part("/test/", "測試卡 API (nhigw 模擬器)"), "測試卡 API — nhigw 模擬器")
    return app
