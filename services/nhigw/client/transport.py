"""The one HTTP boundary of ``nhigw.client``: aiohttp in, the ``errors`` tree out.

``ApiTransport.request`` returns the JSON object of a 2xx/4xx/5xx answer whose
``statusCode`` is 0 (or one of ``ok_codes``); everything else is an exception:
no answer -> ``TransportError``; not JSON -> ``DecodingError``; a non-zero
``statusCode``, or an HTTP error without one -> ``StatusCodeError``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from nhigw.client.errors import ConnectError, DecodingError, RequestTimeout, StatusCodeError, UntrustedCertificate

M = TypeVar("M", bound=BaseModel)

# Code used when an HTTP error carries no 6.0 statusCode (the project's "internal / undefined").
NO_STATUS_CODE = 9499


def insecure_context() -> ssl.SSLContext:
    """Loopback 6.0 services use self-signed certificates; real HIS code does not verify them."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ApiTransport:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        verify_tls: bool | ssl.SSLContext = False,
        headers: dict[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        trust_env: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.trust_env = trust_env  # proxies from HTTPS_PROXY / NO_PROXY (the caller decides)
        if isinstance(verify_tls, ssl.SSLContext):
            self._ssl: ssl.SSLContext | bool = verify_tls
        else:
            self._ssl = True if verify_tls else insecure_context()
        self.headers = dict(headers or {})
        self._session = session
        self._own_session = session is None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s), trust_env=self.trust_env)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | BaseModel | None = None,
        *,
        headers: dict[str, str] | None = None,
        ok_codes: Iterable[int] = (0,),
    ) -> dict[str, Any]:
        url = self.base_url + path
        data: bytes | None = None
        hdrs = {**self.headers, **(headers or {})}
        if body is not None:
            payload = body.model_dump(mode="json", exclude_none=True) if isinstance(body, BaseModel) else body
            data = json.dumps(payload, ensure_ascii=False).encode()
        if body is not None or method.upper() not in ("GET", "HEAD", "OPTIONS"):
            hdrs["Content-Type"] = "application/json"  # the agent and compat refuse a state-changing request without it (nhigw.common.guard)
        try:
            async with self._s().request(method, url, data=data, headers=hdrs, ssl=self._ssl if url.startswith("https") and self._ssl is not None else True) as r:
                raw = await r.read()
                status = r.status
        except aiohttp.ClientConnectorCertificateError as exc:
            raise UntrustedCertificate(f"certificate not trusted: {exc.certificate_error}", url=url) from exc
        except aiohttp.ClientConnectionError as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise RequestTimeout("no answer in time", url=url) from exc
            raise ConnectError(f"cannot reach the service: {type(exc).__name__}", url=url) from exc
        except aiohttp.ClientError as exc:
            raise ConnectError(f"HTTP failure: {type(exc).__name__}", url=url) from exc
        except TimeoutError as exc:
            raise RequestTimeout(f"no answer within {self.timeout_s} s", url=url) from exc
        try:
            out = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DecodingError("answer is not JSON", url=url, http_status=status) from exc
        if not isinstance(out, dict):
            raise DecodingError("answer is not a JSON object", url=url, http_status=status)
        code = out.get("statusCode", 0 if status < 400 else NO_STATUS_CODE)
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = NO_STATUS_CODE
        if code not in set(ok_codes) or (status >= 400 and code == 0):
            raise StatusCodeError.for_code(code or NO_STATUS_CODE, message=str(out.get("message", "")), message_en=str(out.get("messageEn", "")), http_status=status, body=out)
        return out


# The class's former name, kept for HIS code that imported it from this module; new code uses
# ``ApiTransport`` (the gateway's cloud seam is ``nhigw.gateway.upstream.Transport``).
Transport = ApiTransport


def parse(model: type[M], data: dict[str, Any], *, url: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DecodingError(f"answer does not fit {model.__name__}: {exc.error_count()} field error(s)", url=url, http_status=200) from exc
