"""The client's exception tree (one boundary: aiohttp errors are translated here, ``raise ... from``).

::

    NhigwError                      anything this client raises
    ├── TransportError              no usable answer: retry-safe for reads
    │   ├── ConnectError            refused, reset, DNS, TLS handshake
    │   │   └── UntrustedCertificate  the server's certificate did not verify (``verify_tls``)
    │   └── RequestTimeout          no answer within ``timeout_s``
    ├── DecodingError               an answer that is not the JSON / model expected
    └── StatusCodeError             an answer with a 6.0 ``statusCode`` other than 0
        │                           (``.code``, ``.status`` (``Code`` or None), ``.message``, ``.message_en``,
        │                            ``.http_status``, ``.body``)
        ├── ComponentError          1000-1999: device, reader, card states, PINs, virtual HC, DC link
        ├── CloudError              3000-3999, 8xxx: the NHI cloud's business rules and signature checks
        └── GatewayError            9400-9499: workstation offline / silent, cloud unavailable, outcome unknown

A ``StatusCodeError`` is an answer: the request reached the service, so a write that
fails with it was *not* silently lost. A ``TransportError`` on a write means the
outcome is unknown; the client never repeats a write by itself.
"""

from __future__ import annotations

from typing import Any

from nhigw.contracts.codes import Code


class NhigwError(Exception):
    """Base of every error of ``nhigw.client``."""


class TransportError(NhigwError):
    """The request got no usable HTTP answer."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url


class ConnectError(TransportError):
    pass


class UntrustedCertificate(ConnectError):
    pass


class RequestTimeout(TransportError):
    pass


class DecodingError(NhigwError):
    """The service answered, but not with the JSON body this client expects."""

    def __init__(self, message: str, *, url: str, http_status: int) -> None:
        super().__init__(f"{message} ({url}, HTTP {http_status})")
        self.url = url
        self.http_status = http_status


class StatusCodeError(NhigwError):
    """A 6.0 ``statusCode`` other than 0 (e.g. 1301 SAM not verified, 3245 signature reused)."""

    def __init__(self, code: int, *, message: str = "", message_en: str = "", http_status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.code = int(code)
        self.message = message
        self.message_en = message_en
        self.http_status = http_status
        self.body = body or {}
        super().__init__(f"{self.code}: {message_en or message or 'error'}")

    @property
    def status(self) -> Code | None:
        """The code as ``nhigw.contracts.codes.Code`` when it is one this project knows."""
        try:
            return Code(self.code)
        except ValueError:
            return None

    @staticmethod
    def for_code(code: int, **kw: Any) -> StatusCodeError:
        """The most specific class of the tree for ``code``."""
        cls: type[StatusCodeError] = StatusCodeError
        if 1000 <= code < 2000:
            cls = ComponentError
        elif 3000 <= code < 4000 or 8000 <= code < 9000:
            cls = CloudError
        elif 9400 <= code < 9500:
            cls = GatewayError
        return cls(code, **kw)


class ComponentError(StatusCodeError):
    """1000-1999 (e.g. 1301 SAM not verified, 1102 no card, 1410 HPC PIN wrong)."""


class CloudError(StatusCodeError):
    """3000-3999 and 8xxx (e.g. 3245 signature reused, 3213 no visits left, 8203 upload signature too old)."""


class GatewayError(StatusCodeError):
    """9400-9499 (e.g. 9400 workstation offline, 9403 write outcome unknown)."""
