"""aiohttp glue shared by the services: JSON errors with 6.0 codes, pydantic bodies, health.

Every error leaves a service as ``{"statusCode", "message", "messageEn"[, "detail"]}``
with the HTTP status ``nhigw.contracts.codes.http_status`` gives its code (200 for every
6.0 code): a missing field is 1705, a wrong value 1706, a body that is not JSON 9414
(HTTP 400), an unknown route 9405 (404), a method a route does not take 9412 (405), and
any unexpected exception 9499 (500; logged with its trace, which never reaches the client).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
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


async def parse_body(request: web.Request, model: type[M], *, empty_ok: bool = True) -> M:
    """Read and validate a JSON body; an empty body counts as ``{}`` when ``empty_ok``."""
    raw = await request.read()
    if not raw.strip():
        if not empty_ok:
            raise StatusError(Code.PARAM_MISSING, "request body required")
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StatusError(Code.NOT_JSON, f"malformed JSON: {exc.msg if hasattr(exc, 'msg') else 'bad encoding'}") from exc
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
