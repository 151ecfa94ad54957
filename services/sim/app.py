"""The simulator's HTTP app. Business handlers are registered per route in ``HANDLERS``.

Signature check for every business call (``check_signature``): the body must carry
the signature object; the SAM must be registered and its institution in contract;
the signature must verify for the route's ``serviceType`` (3100 otherwise); a
``clientRandom`` is accepted once (3245 on reuse); HC routes need ``hcId`` and
``hcIdNo``, HPC routes ``hpcId`` and ``hpcIdNo`` (3300).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nhigw.common.http import error_middleware, healthz, json_response, parse_body
from nhigw.common.logging import get_logger
from nhigw.contracts import signing
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    BasicDataResponse,
    OpenModel,
    RegisterResponse,
    SamAuthChallengeRequest,
    SamAuthChallengeResponse,
    SamAuthVerifyRequest,
    SamAuthVerifyResponse,
    SamRegistration,
    SignatureKind,
    SignatureObject,
)
from nhigw.contracts.routes import Route, lookup
from nhigw.sim.store import Patient, SimStore

log = get_logger("nhigw.sim")
STORE = web.AppKey("store", SimStore)

Handler = Callable[[SimStore, SignatureObject, Route], Awaitable[dict[str, Any] | OpenModel]]
HANDLERS: dict[str, Handler] = {}


def handles(path: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS[path.lower()] = fn
        return fn

    return deco


def roc_now() -> str:
    now = dt.datetime.now()
    return f"{now.year - 1911:03d}{now:%m%d%H%M%S}"


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


def patient_of(store: SimStore, sig: SignatureObject) -> Patient:
    p = store.patients_by_id.get(sig.hcIdNo or "")
    if p is None or p.cardSn != sig.hcId:
        raise StatusError(Code.CARD_CANCELLED, "no insured person with this card")
    return p


@handles("BasicData/Query")
async def basic_query(store: SimStore, sig: SignatureObject, _r: Route) -> OpenModel:
    p = patient_of(store, sig)
    return BasicDataResponse(cardSn=p.cardSn, name=p.name, idCardNum=p.idCardNum, birthday=p.birthday, sex=p.sex, dateIssue=p.dateIssue, cancelTermination=p.cancelTermination, emergentTel=p.emergentTel)


@handles("BasicData/Register")
async def register(store: SimStore, sig: SignatureObject, _r: Route) -> OpenModel:
    p = patient_of(store, sig)
    return RegisterResponse(
        cardSn=p.cardSn, name=p.name, idCardNum=p.idCardNum, birthday=p.birthday, sex=p.sex, dateIssue=p.dateIssue,
        cancelTermination=p.cancelTermination, emergentTel=p.emergentTel, insurerCode=p.insurerCode, insurerId=p.insurerId,
        cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter, newbornBirthday=p.newbornBirthday, newbornBaby=p.newbornBaby,
    )


@handles("BasicData/Register2")
async def register2(store: SimStore, sig: SignatureObject, _r: Route) -> dict[str, Any]:
    p = patient_of(store, sig)
    return {"cardValidity": p.cardValidity, "treatmentCounter": p.treatmentCounter, "statusCode": 0}


def create_app(store: SimStore | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=32 * 1024 * 1024)
    app[STORE] = store or SimStore.seeded()

    async def business(req: web.Request) -> web.Response:
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

    async def sam_challenge(req: web.Request) -> web.Response:
        body = await parse_body(req, SamAuthChallengeRequest, empty_ok=False)
        st = req.app[STORE]
        if body.samId not in st.sam_keys:
            raise StatusError(Code.SAM_MODE1, "SAM not known to the DC")
        return json_response(SamAuthChallengeResponse(challenge=st.new_challenge(body.samId)))

    async def sam_verify(req: web.Request) -> web.Response:
        body = await parse_body(req, SamAuthVerifyRequest, empty_ok=False)
        st = req.app[STORE]
        entry = st.sam_keys.get(body.samId)
        if entry is None or entry[0] != body.hospitalId or not st.take_challenge(body.challenge, body.samId):
            raise StatusError(Code.SAM_MODE1, "unknown SAM or stale challenge")
        raw = base64.b64decode(body.challenge)
        # The SAM signed sha256(challenge) with INTERNAL AUTHENTICATE: verify over the challenge itself.
        if not signing.verify(entry[1], raw, body.signature):
            raise StatusError(Code.SIGNATURE_INVALID, "SAM authentication failed")
        inst = st.institutions[body.hospitalId]
        if inst.contract != "active":
            code = {"over": Code.SAM_CONTRACT_OVER, "suspended": Code.SAM_SUSPENDED, "cancelled": Code.SAM_CANCELLED}[inst.contract]
            raise StatusError(code)
        return json_response(SamAuthVerifyResponse(hospitalName=inst.hospitalName, hospitalShortName=inst.hospitalShortName, serverDateTime=roc_now()))

    async def test_register_sam(req: web.Request) -> web.Response:
        body = await parse_body(req, SamRegistration, empty_ok=False)
        req.app[STORE].register_sam(body.samId, body.hospitalId, body.publicKeyPem)
        return json_response({"statusCode": 0})

    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/v1/{path:.+}", business)
    app.router.add_post("/dc/v1/SamAuth/Challenge", sam_challenge)
    app.router.add_post("/dc/v1/SamAuth/Verify", sam_verify)
    app.router.add_post("/test/v1/Sam/Register", test_register_sam)
    return app
