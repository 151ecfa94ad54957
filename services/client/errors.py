"""The client's exception tree (one boundary: aiohttp errors are translated here, ``raise ... from``).

::

    NhigwError                      anything this client raises
    ├── TransportError              no usable answer: retry-safe for reads
    │   ├── ConnectError            refused, reset, DNS, TLS handshake
    │   └── RequestTimeout          no answer within ``timeout_s``
    ├── DecodingError               an answer that is not the JSON / model expected
    └── StatusCodeError             an answer with a 6.0 ``statusCode`` other than 0
                                    (``.code``, ``.message``, ``.message_en``, ``.http_status``, ``.body``)

A ``StatusCodeError`` is an answer: the request reached the service, so a write that
fails with it was *not* silently lost. A ``TransportError`` on a write means the
outcome is unknown; the client never repeats a write by itself.
"""

from __future__ import annotations

from typing import Any


class NhigwError(Exception):
    """Base of every error of ``nhigw.client``."""


class TransportError(NhigwError):
    """The request got no usable HTTP answer."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url


class ConnectError(TransportError):
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
