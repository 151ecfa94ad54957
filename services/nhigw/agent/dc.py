"""The agent's client of the NHI data centre (DC): SAM verification, virtual HC tokens, the DC clock.

The real 6.0 component talks to the NHI DC over the VPN in a closed protocol; this
project's DC exchange is its own (``/dc/v1/SamAuth/*``, served by ``nhigw sim``).
Transport failures become 1700, HTTP errors 1702, and the DC's own ``statusCode``
(1302 contract over, 1303 suspended, 1304 cancelled, 3100 bad signature) is passed on.

Virtual HC: the QR token is opaque to the agent; ``vhc_verify`` sends it with a SAM
signature (``DcSamSigned``) and gets the card's data and a DC session id; ``vhc_transfer``
turns that session into a transfer code. The DC's codes (1018 expired, 1520-1525, 3244 used)
are passed on. Protocol: ``proto/dc-protocol.md``.

TLS and proxies: ``tls`` (``nhigw.common.cloudtls``: ``--cloud-ca`` or the system's store, proxies
from the environment); a DC certificate that does not verify is 1700 (the 6.0 code HIS programs
know for "the component cannot reach the DC") with "certificate not trusted: see --cloud-ca".
``environment``: which NHI cloud this is (production / test / None), announced in the agent's
presence so the gateway can refuse to mix them (1003).
"""

from __future__ import annotations

import aiohttp

from nhigw.common.cloudtls import CloudEnv, CloudTls, cloud_env, is_untrusted, untrusted_error
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    DcServerDateTimeResponse,
    SamAuthChallengeRequest,
    SamAuthChallengeResponse,
    SamAuthVerifyRequest,
    SamAuthVerifyResponse,
    VirtualHcQrResponse,
    VirtualHcTransferRequest,
    VirtualHcVerifyRequest,
    VirtualHcVerifyResponse,
)


class DcClient:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0, tls: CloudTls | None = None, environment: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.tls = tls or CloudTls()
        self.environment: CloudEnv | None = cloud_env(self.base_url, environment)
        self._session: aiohttp.ClientSession | None = None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self.tls.session(self.base_url, timeout=self.timeout)
        return self._session

    async def _post(self, path: str, body: dict[str, object] | None, method: str = "POST") -> dict[str, object]:
        try:
            async with self._s().request(method, self.base_url + path, json=body) as r:
                try:
                    data = await r.json(content_type=None)
                except ValueError as exc:
                    raise StatusError(Code.DC_HTTP, f"DC answered HTTP {r.status} without JSON") from exc
        except aiohttp.ClientError as exc:
            if is_untrusted(exc):
                raise untrusted_error(Code.DC_CONNECTION, self.base_url, exc) from exc
            raise StatusError(Code.DC_CONNECTION, f"cannot reach the NHI DC at {self.base_url}") from exc
        except TimeoutError as exc:
            raise StatusError(Code.DC_CONNECTION, "NHI DC timed out") from exc
        if not isinstance(data, dict):
            raise StatusError(Code.DC_HTTP, "DC answered an unexpected body")
        code = int(data.get("statusCode", 0) or 0)
        if code:
            raise StatusError(code, f"DC refused: {data.get('detail') or data.get('messageEn') or data.get('message') or code}")
        return data

    async def challenge(self, sam_id: str, hospital_id: str) -> SamAuthChallengeResponse:
        data = await self._post("/dc/v1/SamAuth/Challenge", SamAuthChallengeRequest(samId=sam_id, hospitalId=hospital_id).model_dump())
        return SamAuthChallengeResponse.model_validate(data)

    async def verify(self, req: SamAuthVerifyRequest) -> SamAuthVerifyResponse:
        return SamAuthVerifyResponse.model_validate(await self._post("/dc/v1/SamAuth/Verify", req.model_dump()))

    async def vhc_verify(self, req: VirtualHcVerifyRequest) -> VirtualHcVerifyResponse:
        return VirtualHcVerifyResponse.model_validate(await self._post("/dc/v1/VirtualHc/Verify", req.model_dump()))

    async def vhc_transfer(self, req: VirtualHcTransferRequest) -> VirtualHcQrResponse:
        return VirtualHcQrResponse.model_validate(await self._post("/dc/v1/VirtualHc/Transfer", req.model_dump()))

    async def server_date_time(self) -> str:
        return DcServerDateTimeResponse.model_validate(await self._post("/dc/v1/ServerDateTime", None, "GET")).serverDateTime

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
