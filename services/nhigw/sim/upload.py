"""The upload host's ``POST /V2000/VNHI_Upload`` (IC-data upload in 6.0 mode; public facts 3.3).

The real host is ``medvpndti.nhi.gov.tw``; the simulator serves it beside the business API.
The body is the SAM signature (serviceType 30) under the host's own names (``sSamId``,
``sHospId``, ``sClientRandom``, ``sSignature``) plus ``sType``, ``sPatData`` (base64 XML) and
``sUploadDT``. The answer is always HTTP 200 with ``RtnCode`` (``contracts.cloud.UPLOAD_RTN``)
and, when accepted, ``Opcode``. Checks, in order, and their RtnCode:

- a body with missing or malformed fields 9999; ``sType`` not A1 / A2 / ZZ 5003;
- ``sHospId`` unknown 9005; ``sSamId`` unknown or another hospital's 5004; the institution's
  contract cancelled 8205, over or suspended 9999 (the table has no nearer code);
- the signature (``contracts.signing``, serviceType 30) or a ``clientRandom`` used before 9002;
- ``sUploadDT`` more than one hour old (or 5 minutes ahead) 8203;
- the XML (``business.take_upload``: base64, well-formed, no DOCTYPE; a formal A1 file once per
  institution) 9999 with the reason in ``detail``. An accepted file is parsed and kept.
"""

from __future__ import annotations

from aiohttp import web

from nhigw.common.http import json_response, parse_body
from nhigw.contracts.cloud import VnhiUploadRequest, VnhiUploadResponse
from nhigw.contracts.codes import Code, StatusError, message
from nhigw.contracts.models import SignatureObject
from nhigw.contracts.routes import VNHI_UPLOAD
from nhigw.sim.auth import check_signature
from nhigw.sim.business import take_upload
from nhigw.sim.checks import note
from nhigw.sim.dc import STORE

_RTN: dict[int, str] = {Code.SIGNATURE_INVALID: "9002", Code.SIGNATURE_REUSED: "9002", Code.SAM_CANCELLED: "8205", Code.UPLOAD_SIGNATURE_EXPIRED: "8203"}


def add_upload_routes(app: web.Application) -> None:
    async def vnhi_upload(req: web.Request) -> web.Response:
        st = req.app[STORE]
        try:
            body = await parse_body(req, VnhiUploadRequest, empty_ok=False)
        except StatusError as err:
            if err.code == Code.PARAM_FORMAT and "JSON" in (err.detail or ""):
                raise  # not JSON at all: the common refusal
            return json_response(VnhiUploadResponse.of("9999", detail=err.detail))
        if body.sType not in ("A1", "A2", "ZZ"):
            return json_response(VnhiUploadResponse.of("5003", detail=f"sType {body.sType!r}: A1, A2 or ZZ"))
        if body.sHospId not in st.institutions:
            note("sam", False, f"9005: no institution {body.sHospId}")
            return json_response(VnhiUploadResponse.of("9005"))
        entry = st.sam_keys.get(body.sSamId)
        if entry is None or entry[0] != body.sHospId:
            note("sam", False, f"5004: SAM {body.sSamId} is not registered for institution {body.sHospId}")
            return json_response(VnhiUploadResponse.of("5004"))
        sig = SignatureObject(signature=body.sSignature, clientRandom=body.sClientRandom, samId=body.sSamId, hospitalId=body.sHospId)
        try:
            st.calls[VNHI_UPLOAD.path] = st.calls.get(VNHI_UPLOAD.path, 0) + 1
            check_signature(st, sig, VNHI_UPLOAD)
            st.count_write(VNHI_UPLOAD.path, req.headers.get("Idempotency-Key"))
            done = take_upload(st, body.sHospId, body.sSamId, body.sType, body.sPatData, body.sUploadDT)
        except StatusError as err:
            return json_response(VnhiUploadResponse.of(_RTN.get(err.code, "9999"), detail=f"{err.code}: {err.detail or message(err.code)[1]}"))
        return json_response(VnhiUploadResponse.of("0000", done.Opcode))

    app.router.add_post(VNHI_UPLOAD.url, vnhi_upload)
