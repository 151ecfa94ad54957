"""The simulator's HTTP app. Business handlers are registered per route in ``HANDLERS``.

Signature check for every business call (``check_signature``): the body must carry
the signature object; the SAM must be registered and its institution in contract;
the signature must verify for the route's ``serviceType`` (3100 otherwise); a
``clientRandom`` is accepted once (3245 on reuse); HC routes need ``hcId`` and
``hcIdNo``, HPC routes ``hpcId`` and ``hpcIdNo`` (3300).
"""

from __future__ import annotations

from aiohttp import web

from nhigw.common.http import error_middleware, healthz, json_response, parse_body
from nhigw.common.logging import get_logger
from nhigw.contracts import signing
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    SignatureKind,
    SignatureObject,
)
from nhigw.contracts.routes import Route, lookup
from nhigw.sim import business  # noqa: F401  (registers the handlers)
from nhigw.sim.dc import STORE, add_dc_routes
from nhigw.sim.registry import HANDLERS
from nhigw.sim.store import SimStore

log = get_logger("nhigw.sim")

def check_signature(store: SimStore, sig: SignatureObject, route: Route) -> None:
    if sig.serviceType is not None and sig.serviceType != route.serviceType:
        raise StatusError(Code.SIGNATURE_INVALID, f"serviceType {sig.serviceType} does not fit {route.path} (needs {route.serviceType})")
    entry = store.sam_keys.get(sig.samId)
    if entry is None or entry[0] != sig.hospitalId:
        raise StatusError(Code.SIGNATURE_INVALID, "unknown SAM for this institution")
    inst = store.institutions.get(sig.hospitalId)
    if inst and inst.contract != "active":
        code = {"over": Code.SAM_CONTRACT_OVER, "suspended": Code.SAM_SUSPENDED, "cancelled": Code.SAM_CANCELLED}[inst.contract]
        raise StatusError(code)
    if route.kind in (SignatureKind.HC, SignatureKind.HPCHC) and not (sig.hcId and sig.hcIdNo):
        raise StatusError(Code.MISSING_KEY, "hcId and hcIdNo are required for this route")
    if route.kind in (SignatureKind.HPC, SignatureKind.HPCHC) and not (sig.hpcId and sig.hpcIdNo):
        raise StatusError(Code.MISSING_KEY, "hpcId and hpcIdNo are required for this route")
    msg = signing.canonical_message(
        serviceType=route.serviceType,
        clientRandom=sig.clientRandom,
        samId=sig.samId,
        hospitalId=sig.hospitalId,
        hcId=sig.hcId,
        hcIdNo=sig.hcIdNo,
        hpcId=sig.hpcId,
        hpcIdNo=sig.hpcIdNo,
    )
    if not signing.verify(entry[1], msg, sig.signature):
        raise StatusError(Code.SIGNATURE_INVALID)
    if not store.use_random(sig.clientRandom):
        raise StatusError(Code.SIGNATURE_REUSED)


def create_app(store: SimStore | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=32 * 1024 * 1024)
    app[STORE] = store or SimStore.seeded()

    async def business_call(req: web.Request) -> web.Response:
        st = req.app[STORE]
        route = lookup(req.match_info["path"])
        if route is None:
            raise StatusError(Code.NOT_FOUND, f"no business route {req.path}", http_status=404)
        if not route.supported:
            raise StatusError(Code.UNSUPPORTED, f"{route.path} is not supported by 6.0 (不支援)", http_status=400)
        handler = HANDLERS.get(route.path.lower())
        if handler is None:
            raise StatusError(Code.UNSUPPORTED, f"{route.path} is not implemented by this simulator yet", http_status=501)
        sig = await parse_body(req, SignatureObject, empty_ok=False)
        st.calls[route.path] = st.calls.get(route.path, 0) + 1
        check_signature(st, sig, route)
        out = await handler(st, sig, route)
        return json_response(out)

    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/v1/{path:.+}", business_call)
    add_dc_routes(app)
    return app
