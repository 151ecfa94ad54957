"""What a browser page or a rebound host name may do to a service without keys: Host, Origin, CSRF.

Three checks, each a pure function below, put together by ``guard_middleware``:

- **Host** (DNS rebinding): a service without authentication (the agent and compat always,
  the gateway when it runs without client keys) answers only requests whose ``Host`` is a
  loopback name (``localhost``, ``127.0.0.0/8``, ``[::1]``) or one it was told to serve
  (the address it was explicitly bound to). A page at ``evil.example`` whose name now
  resolves to 127.0.0.1 sends ``Host: evil.example``: refused.
- **Origin**: an ``Origin`` is *acceptable* when it is the service itself (the page the
  request came from was served by this service: the console, Swagger UI, the dashboard) or
  matches a listed pattern (the agent's CORS list, ``origin_allowed``: ``https`` only unless
  the pattern names its scheme, e.g. ``http://his.clinic.lan``). The open gateway refuses
  every request with another Origin.
- **CSRF** (agent, compat): a state-changing request (any method but GET, HEAD, OPTIONS)
  with a body must say ``Content-Type: application/json`` (which a page can send cross-site
  only after a CORS preflight the service refuses), and any state-changing request that
  carries an Origin needs an acceptable one. A request without a body needs no Content-Type:
  HIS code sends ``DELETE /api/hc/v1/Logout`` and legacy SDK calls (``POST /VHC/VHCcsOpenCom``)
  bare, and a browser's body-less cross-site POST always carries its page's Origin. A GET
  that a browser sends from another site (``Sec-Fetch-Site: cross-site`` / ``same-site``,
  e.g. an ``<img>``) without an acceptable Origin is refused too — except a top-level
  navigation to a page the service serves (``navigable``: the console, Swagger UI) — since
  some legacy GET routes change state.

Refusals are JSON, HTTP 403, 9411 (``nhigw.contracts.codes``), with the reason in ``detail``.
HIS programs send no ``Origin`` and no ``Sec-Fetch-*`` headers; they pass as before.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from nhigw.common.http import error_response
from nhigw.contracts.codes import Code, StatusError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORT = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=256)  # asked of every request's Host header: a few names, parsed once each
def is_loopback(host: str) -> bool:
    """Pure: is ``host`` (a name or address, without port) a loopback one?"""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def host_name(host_header: str) -> str:
    """Pure: the name in a ``Host`` header (``[::1]:5066`` -> ``::1``); '' when unreadable."""
    try:
        return (urlsplit("//" + host_header).hostname or "").lower()
    except ValueError:
        return ""


def _split(url: str) -> tuple[str, str, int | None] | None:
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return None
    if not u.scheme or not u.hostname:
        return None
    return u.scheme.lower(), u.hostname.lower(), port if port is not None else _DEFAULT_PORT.get(u.scheme.lower())


def origin_allowed(origin: str | None, patterns: list[str]) -> bool:
    """Pure: does a browser ``Origin`` match one of the patterns?

    A pattern is a host pattern (``*.nhi.gov.tw``: ``https`` only, any port) or a whole origin
    pattern with its scheme (``http://his.clinic.lan``, ``https://*.example:8443``).
    """
    o = _split(origin or "")
    if o is None:
        return False
    scheme, host, port = o
    for p in patterns:
        p = p.strip().lower()
        if not p:
            continue
        if "://" in p:
            want_scheme, _, rest = p.partition("://")
            want_host, _, want_port = rest.partition(":")
            if want_port and want_port.strip("/") != str(port):
                continue
            want_host = want_host.strip("/")
        else:
            want_scheme, want_host = "https", p
        if scheme == want_scheme and fnmatch.fnmatchcase(host, want_host):
            return True
    return False


def same_origin(origin: str, request: web.BaseRequest) -> bool:
    """Pure on the request's headers: is ``origin`` this service as the request addressed it?"""
    o = _split(origin)
    me = _split(f"{request.scheme}://{request.host}")
    return o is not None and o == me


@dataclass
class Guard:
    """Which checks a service applies (see the module docstring)."""

    check_host: bool = True
    allowed_hosts: tuple[str, ...] = ()
    refuse_foreign_origin: bool = False  # the open gateway: every request
    csrf: bool = True  # agent, compat: state-changing requests
    listed: Callable[[], list[str]] = field(default=lambda: [])  # CORS patterns, read on every request (they change at run time)
    navigable: tuple[str, ...] = ()  # path prefixes a cross-site navigation may open
    extra: dict[str, object] = field(default_factory=dict)  # more fields of the refusal (compat: its legacy ERRORCODE)

    def refusal(self, request: web.BaseRequest) -> str | None:
        """Why ``request`` is refused, or None."""
        if self.check_host:
            name = host_name(request.headers.get("Host", ""))
            if not (is_loopback(name) or name in self.allowed_hosts):
                return f"Host {name or '(none)'!r} is not served here (loopback only)"
        origin = request.headers.get("Origin")
        acceptable = origin is not None and (same_origin(origin, request) or origin_allowed(origin, self.listed()))
        if origin is not None and not acceptable and self.refuse_foreign_origin:
            return f"requests from the web page {origin!r} are not accepted"
        if not self.csrf:
            return None
        if request.method not in SAFE_METHODS:
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and request.body_exists:
                return "a state-changing request must be sent with Content-Type: application/json"
            if origin is not None and not acceptable:
                return f"requests from the web page {origin!r} are not accepted (not a listed origin)"
        elif request.method == "GET" and not acceptable and request.headers.get("Sec-Fetch-Site", "none").lower() in ("cross-site", "same-site"):
            navigation = request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
            if not (navigation and request.path.startswith(self.navigable)):
                return "a request sent by another web site is not accepted"
        return None


def guard_middleware(guard: Guard) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def mw(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        why = guard.refusal(request)
        if why is not None:
            return error_response(StatusError(Code.FORBIDDEN, why, **guard.extra))
        return await handler(request)

    return mw


def bind_hosts(host: str) -> tuple[str, ...]:
    """The Host names a service bound to ``host`` serves besides loopback: that address, unless a wildcard."""
    h = host.strip("[]").lower()
    return () if h in ("", "0.0.0.0", "::") or is_loopback(h) else (h,)
