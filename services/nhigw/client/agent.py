"""``AgentClient``: the reader agent's 6.0 component API (paths and bodies of public facts 3.2 and the seed)."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from nhigw.client.transport import ApiTransport, parse
from nhigw.contracts.codes import Code
from nhigw.contracts.models import (
    HcBasicResponse,
    HcPinResponse,
    HpcBasicResponse,
    NameResponse,
    RecordResponse,
    SamBasicResponse,
    ServerDateTimeResponse,
    SignatureResponse,
    StatusResponse,
    VersionResponse,
    VirtualHcBasic,
    VirtualHcExportResponse,
)


class AgentClient:
    """Async client of one agent. ``base_url`` default: the 6.0 address ``https://127.0.0.1:5066``."""

    def __init__(
        self,
        base_url: str = "https://127.0.0.1:5066",
        *,
        timeout_s: float = 10.0,
        verify_tls: bool | ssl.SSLContext = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.t = ApiTransport(base_url, timeout_s=timeout_s, verify_tls=verify_tls, session=session)

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.t.close()

    async def raw(self, method: str, path: str, body: dict[str, Any] | None = None, *, ok_codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
        """Any component call; the JSON answer (``statusCode`` checked)."""
        return await self.t.request(method, path, body, ok_codes=ok_codes)

    # ------------------------------------------------------------------ common

    async def status(self) -> StatusResponse:
        return parse(StatusResponse, await self.raw("GET", "/api/common/v1/Status"))

    async def names(self) -> list[str]:
        return parse(NameResponse, await self.raw("GET", "/api/common/v1/Name")).names

    async def version(self) -> VersionResponse:
        return parse(VersionResponse, await self.raw("GET", "/api/common/v1/Version"))

    async def initial(self, name: str | None = None, *, already_ok: bool = True) -> int:
        """``Initial``; 1001 (already initialised) counts as success when ``already_ok``, as HIS code treats it."""
        out = await self.raw("POST", "/api/common/v1/Initial", {"name": name} if name else {}, ok_codes=(0, Code.ALREADY_INITIALIZED) if already_ok else (0,))
        return int(out.get("statusCode", 0))

    async def finalize(self) -> None:
        await self.raw("POST", "/api/common/v1/Finalize", {})

    async def server_datetime(self) -> ServerDateTimeResponse:
        """``GET /api/common/v1/ServerDateTime``: the reader's time, or the cloud's for a cloud SAM (ROC ``yyyMMddHHmmss``)."""
        return parse(ServerDateTimeResponse, await self.raw("GET", "/api/common/v1/ServerDateTime"))

    async def record(self) -> RecordResponse:
        return parse(RecordResponse, await self.raw("GET", "/api/common/v1/Record"))

    # ------------------------------------------------------------------ SAM

    async def sam_verify(self) -> None:
        await self.raw("POST", "/api/sam/v1/Verification", {})

    async def sam_logout(self) -> None:
        await self.raw("POST", "/api/sam/v1/Logout", {})

    async def sam_basic(self) -> SamBasicResponse:
        return parse(SamBasicResponse, await self.raw("GET", "/api/sam/v1/Basic"))

    async def sam_signature(self, service_type: str = "01") -> SignatureResponse:
        return parse(SignatureResponse, await self.raw("POST", "/api/sam/v1/Signature", {"serviceType": service_type}))

    # ------------------------------------------------------------------ HPC

    async def hpc_verify(self, pin: str) -> None:
        await self.raw("POST", "/api/hpc/v1/Verification/Hpc", {"pin": pin})

    async def hpc_basic(self) -> HpcBasicResponse:
        return parse(HpcBasicResponse, await self.raw("GET", "/api/hpc/v1/Basic"))

    async def hpc_set_pin(self, new_pin: str) -> None:
        await self.raw("POST", "/api/hpc/v1/Pin", {"newPin": new_pin})

    async def hpc_unlock(self, puk: str, new_pin: str) -> None:
        await self.raw("PUT", "/api/hpc/v1/Pin", {"puk": puk, "newPin": new_pin})

    async def hpc_signature(self, service_type: str = "01") -> SignatureResponse:
        return parse(SignatureResponse, await self.raw("POST", "/api/hpc/v1/Signature", {"serviceType": service_type}))

    async def hpc_logout(self) -> None:
        await self.raw("DELETE", "/api/hpc/v1/Logout")

    # ------------------------------------------------------------------ HC

    async def hc_basic(self) -> HcBasicResponse:
        return parse(HcBasicResponse, await self.raw("GET", "/api/hc/v1/Basic"))

    async def hc_pin(self) -> HcPinResponse:
        """``GET /api/hc/v1/Pin``: whether the HC has a PIN set, and whether it is verified."""
        return parse(HcPinResponse, await self.raw("GET", "/api/hc/v1/Pin"))

    async def hc_verify_pin(self, pin: str) -> None:
        await self.raw("POST", "/api/hc/v1/Pin", {"pin": pin})

    async def hc_set_pin(self, new_pin: str) -> None:
        await self.raw("PUT", "/api/hc/v1/Pin", {"newPin": new_pin})

    async def hc_disable_pin(self) -> None:
        await self.raw("DELETE", "/api/hc/v1/Pin")

    async def hc_verify_virtual(self, token: str) -> None:
        await self.raw("POST", "/api/hc/v1/Verification/VirtualHc", {"token": token})

    async def hc_read_virtual_basic(self, token: str) -> VirtualHcBasic:
        return parse(VirtualHcBasic, await self.raw("POST", "/api/hc/v1/VirtualHc/ReadBasic", {"token": token}))

    async def hc_export_virtual(self) -> VirtualHcExportResponse:
        """The transfer code of this workstation's virtual HC (which is logged out here, as the seed says)."""
        return parse(VirtualHcExportResponse, await self.raw("GET", "/api/hc/v1/VirtualHc/Import"))

    async def hc_import_virtual(self, token: str) -> None:
        await self.raw("POST", "/api/hc/v1/VirtualHc/Import", {"token": token})

    async def hc_signature(self, service_type: str = "01") -> SignatureResponse:
        return parse(SignatureResponse, await self.raw("POST", "/api/hc/v1/Signature/Hc", {"serviceType": service_type}))

    async def hpchc_signature(self, service_type: str = "01") -> SignatureResponse:
        return parse(SignatureResponse, await self.raw("POST", "/api/hc/v1/Signature/HpcHc", {"serviceType": service_type}))

    async def hc_logout(self) -> None:
        await self.raw("DELETE", "/api/hc/v1/Logout")
