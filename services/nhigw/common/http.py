"""aiohttp glue shared by the services: JSON errors with 6.0 codes, pydantic bodies, health, the runner.

Every error leaves a service as ``{"statusCode", "message", "messageEn"[, "detail"]}``
with the HTTP status ``nhigw.contracts.codes.http_status`` gives its code (200 for every
6.0 code): a missing field is 1705, a wrong value 1706, a body that is not JSON 9414
(HTTP 400), an unknown route 9405 (404), a method a route does not take 9412 (405), and
any unexpected exception 9499 (500; logged with its trace, which never reaches the client).

Request bodies are parsed by one function, ``loads_json``: UTF-8 only (a UTF-16 or Latin-1
body is 9414, never guessed), at most ``MAX_JSON_DEPTH`` levels of nesting and numbers of
at most 4,300 digits (Python's limit); anything else is 9414 (HTTP 400), never a 500.

``runner(app)`` is the ``web.AppRunner`` every service is served with (``nhigw.cli.serve``):
what aiohttp answers before any middleware runs (a request line it cannot parse, an
unknown method) is JSON too, and a connection that has not sent a whole request head
within ``HEADER_TIMEOUT_S`` (slowloris) is closed; an idle keep-alive connection is closed
after ``KEEPALIVE_S``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server
from pydantic import BaseModel, ValidationError

from nhigw.common.logging import get_logger
from nhigw.contracts.codes import Code, StatusError, code_for_http_status

log = get_logger("nhigw.http")
M = TypeVar("M", bound=BaseModel)


def json_response(body: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    data = body.model_dump(mode="json", exclude_none=True) if isinstance(body, BaseModel) else body
    return web.json_response(data, status=status, headers=headers, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def error_response(err: StatusError) -> web.Response:
    return json_response(err.body(), status=err.http_status)


MAX_JSON_DEPTH = 32  # no 6.0 body nests more than 4 levels
HEADER_TIMEOUT_S = 10.0
KEEPALIVE_S = 75.0


def json_depth(data: Any) -> int:
    """Pure: how deeply lists and objects nest in parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v if isinstance(x, (list, dict)))
    return deepest


def loads_json(raw: bytes | str) -> Any:
    """Parse a request body as JSON (see the module docstring); anything unreadable is 1704."""
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as exc:
        raise StatusError(Code.NOT_JSON, "the body must be JSON in UTF-8") from exc
    except RecursionError as exc:
        raise StatusError(Code.NOT_JSON, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError, and an integer longer than Python converts
        raise StatusError(Code.NOT_JSON, f"malformed JSON: {exc.msg if isinstance(exc, json.JSONDecodeError) else 'number too long'}") from exc
    if isinstance(data, (list, dict)) and json_depth(data) > MAX_JSON_DEPTH:
        raise StatusError(Code.NOT_JSON, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


async def parse_body(request: web.Request, model: type[M], *, empty_ok: bool = True) -> M:
    """Read and validate a JSON body; an empty body counts as ``{}`` when ``empty_ok``."""
    raw = await request.read()
    if not raw.strip():
        if not empty_ok:
            raise StatusError(Code.PARAM_MISSING, "request body required")
        data: Any = {}
    else:
        data = loads_json(raw)
    return validate(model, data)


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        missing = any(e["type"] == "missing" for e in exc.errors())
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors())
        raise StatusError(Code.PARAM_MISSING if missing else Code.PARAM_VALUE, f"invalid field(s): {fields}") from exc


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except StatusError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(StatusError(Code.NOT_FOUND, f"no route {request.method} {request.path}"))
        if exc.status == 405:
            return error_response(StatusError(Code.METHOD_NOT_ALLOWED, f"method {request.method} not allowed on {request.path}"))
        if exc.status < 400:
            raise
        return error_response(StatusError(code_for_http_status(exc.status), exc.reason))
    except Exception:  # the one place an unexpected error is turned into a clean 500
        log.exception("unhandled_error", path=request.path, method=request.method)
        return error_response(StatusError(Code.INTERNAL, "unexpected error; see the service log"))


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class _JsonRequestHandler(RequestHandler):
    """aiohttp's connection handler, with JSON for its own error answers and a header read timeout."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before and self._head_timer is not None:  # a whole request head arrived
            self._head_timer.cancel()
            self._head_timer = None
        elif data and self._head_timer is None and self._payload_parser is None and not self._messages and self._current_request is None:
            # the next request on a kept-alive connection has begun: its head gets the same time
            self._head_timer = self._loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._current_request is None and not self._messages:
            self.force_close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("http_protocol_error", status=status, error=type(exc).__name__ if exc else None)
            err = StatusError(Code.INTERNAL, "unexpected error; see the service log")
        else:
            err = StatusError(code_for_http_status(status), f"malformed HTTP request ({type(exc).__name__ if exc else status})")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        resp = json_response(err.body(), status=err.http_status)
        resp.force_close()
        return resp


class _JsonServer(Server):
    __slots__ = ()
    def __call__(self) -> RequestHandler:
        return _JsonRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are ``_JsonRequestHandler`` (see the module docstring)."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _JsonServer  # the same object; only how it makes connection handlers changes
        return server


def runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    kwargs.setdefault("access_log", None)
    kwargs.setdefault("keepalive_timeout", KEEPALIVE_S)
    return JsonRunner(app, **kwargs)
