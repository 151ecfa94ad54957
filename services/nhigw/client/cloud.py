"""``CloudClient``: the NHI cloud business API (``/api/v1/...``) on the cloud, the simulator or the gateway.

Pass-through: ``await cloud.call("BasicData/Register", signature)`` posts the signature
object (from an agent) plus route extras. One-call (gateway only): construct with
``workstation="ws-01"`` and pass no signature; the gateway gets it from that
workstation's agent. ``api_key``: the HIS client key of a gateway started with
``--clients``. Writes may carry an ``idempotency_key`` (``Idempotency-Key``
header); the client never repeats a request by itself.
"""

from __future__ import annotations

import ssl
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

from nhigw.client.transport import ApiTransport, parse
from nhigw.contracts import cloud as c
from nhigw.contracts.models import BasicDataResponse, RegisterResponse, SignatureObject
from nhigw.contracts.routes import VNHI_UPLOAD, lookup

M = TypeVar("M", bound=BaseModel)


class CloudClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8066",
        *,
        workstation: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        verify_tls: bool | ssl.SSLContext = True,
        session: aiohttp.ClientSession | None = None,
        trust_env: bool = False,
    ) -> None:
        headers = {"X-Workstation": workstation} if workstation else {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"  # a gateway with --clients authenticates HIS clients
        self.workstation = workstation
        self.t = ApiTransport(base_url, timeout_s=timeout_s, verify_tls=verify_tls, headers=headers, session=session, trust_env=trust_env)

    async def __aenter__(self) -> CloudClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.t.close()

    async def call(
        self,
        route: str,
        signature: SignatureObject | None = None,
        extras: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> dict[str, Any]:
        """POST ``/api/v1/{route}`` with the signature object and ``extras``; the JSON answer."""
        body: dict[str, Any] = dict(extras or {})
        if signature is not None:
            sig = signature.model_dump(mode="json", exclude_none=True)
            sig.pop("statusCode", None)
            sig.pop("serviceType", None)
            body.update(sig)
        elif self.workstation is None:
            raise ValueError("a signature object is needed unless the client names a workstation (gateway one-call mode)")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self.t.request("POST", f"/api/v1/{route.strip('/')}", body, headers=headers, ok_codes=ok_codes)

    async def typed(self, model: type[M], route: str, signature: SignatureObject | None = None, extras: dict[str, Any] | None = None, **kw: Any) -> M:
        return parse(model, await self.call(route, signature, extras, **kw), url=route)

    async def route(self, route: str, signature: SignatureObject | None = None, extras: dict[str, Any] | None = None, **kw: Any) -> BaseModel:
        """Any business route, answered as its response model (``nhigw.contracts.cloud.ROUTE_MODELS``)."""
        r = lookup(route)
        if r is None:
            raise ValueError(f"no business route {route!r}")
        return await self.typed(c.ROUTE_MODELS[r.path][1], r.path, signature, extras, **kw)

    async def vnhi_upload(self, signature: SignatureObject | None, s_type: str, pat_data_b64: str, upload_dt: str, *, idempotency_key: str | None = None) -> c.VnhiUploadResponse:
        """IC-data upload in 6.0 mode: ``POST /V2000/VNHI_Upload`` (the upload host; the gateway serves it too).

        Answers the host's ``RtnCode`` / ``Opcode`` (``RtnCode`` other than 0000 is returned, not raised).
        ``upload_dt``: ROC date-time + 3 digits of ms, as 6.0 sends it.
        """
        body: dict[str, Any] = {"sType": s_type, "sPatData": pat_data_b64, "sUploadDT": upload_dt}
        if signature is not None:
            body |= {"sSamId": signature.samId, "sHospId": signature.hospitalId, "sClientRandom": signature.clientRandom, "sSignature": signature.signature}
        elif self.workstation is None:
            raise ValueError("a signature object is needed unless the client names a workstation (gateway one-call mode)")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return parse(c.VnhiUploadResponse, await self.t.request("POST", VNHI_UPLOAD.url, body, headers=headers), url=VNHI_UPLOAD.url)

    # ------------------------------------------------------------------ typed helpers for the common routes

    async def basic_query(self, signature: SignatureObject | None = None) -> BasicDataResponse:
        return await self.typed(BasicDataResponse, "BasicData/Query", signature)

    async def register(self, signature: SignatureObject | None = None) -> RegisterResponse:
        return await self.typed(RegisterResponse, "BasicData/Register", signature)

    async def sequel_next(self, signature: SignatureObject | None, treatment_item: str, baby_treatment: str = "", after_check: str = "1", *, idempotency_key: str | None = None) -> c.SeqNextResponse:
        extras = {"treatmentItem": treatment_item, "babyTreatment": baby_treatment, "afterCheck": after_check}
        return await self.typed(c.SeqNextResponse, "SequelNumber/Next", signature, extras, idempotency_key=idempotency_key)

    async def sequel_rollback(self, signature: SignatureObject | None, treatment_datetime: str, *, idempotency_key: str | None = None) -> c.RollbackResponse:
        return await self.typed(c.RollbackResponse, "SequelNumber/Rollback", signature, {"treatmentDateTime": treatment_datetime}, idempotency_key=idempotency_key)

    async def critical_illness(self, signature: SignatureObject | None = None) -> c.CriticalIllnessResponse:
        return await self.typed(c.CriticalIllnessResponse, "CriticalIllness/Query", signature, {"format": "0"})

    async def prescription_write(self, signature: SignatureObject | None, treatment_datetime: str, prescriptions: list[dict[str, Any]], *, idempotency_key: str | None = None) -> c.PrescriptionWriteResponse:
        extras = {"treatmentDateTime": treatment_datetime, "prescriptions": prescriptions}
        return await self.typed(c.PrescriptionWriteResponse, "Prescription/Write", signature, extras, idempotency_key=idempotency_key)
