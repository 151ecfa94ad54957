"""The simulated NHI data centre (DC) and test-card API.

- ``/dc/v1/SamAuth/Challenge`` and ``/Verify``: SAM verification (challenge-response).
- ``/test/v1/Sam/Register``: provision a virtual SAM's public key (test-card API).
"""

from __future__ import annotations

import base64

from aiohttp import web

from nhigw.common.http import json_response, parse_body
from nhigw.contracts import signing
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    SamAuthChallengeRequest,
    SamAuthChallengeResponse,
    SamAuthVerifyRequest,
    SamAuthVerifyResponse,
    SamRegistration,
)
from nhigw.sim.clock import roc_now
from nhigw.sim.store import SimStore

STORE = web.AppKey("store", SimStore)


def add_dc_routes(app: web.Application) -> None:
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

    app.router.add_post("/dc/v1/SamAuth/Challenge", sam_challenge)
    app.router.add_post("/dc/v1/SamAuth/Verify", sam_verify)
    app.router.add_post("/test/v1/Sam/Register", test_register_sam)
