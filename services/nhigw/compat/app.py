"""The compat service's HTTP app (HTTPS, default https://127.0.0.1:5067).

- the VHC SDK 2.x routes (``nhigw.compat.vhc``), answered ``{"ERRORCODE", "pBuffer"}``;
- ``POST /cshis/{function}``: every legacy csHis function, parameters by their legacy
  names in a JSON body, answered ``{"ERRORCODE", "message", "pBuffer", "pBufferHex",
  "iBufferLen", "value"?, "data"?}`` (``pBuffer`` is the Big5 layout decoded to text,
  ``pBufferHex`` the exact bytes); ``GET /cshis`` lists the functions;
- Swagger UI at ``/swagger/index.html`` over ``/swagger/v1/swagger.json`` (as the seed's
  screenshot of ``https://localhost:5067/swagger/index.html``), served from the
  ``swagger-ui-bundle-v2`` package (``nhigw.common.swagger``, as the agent and the simulator): no CDN.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from nhigw import __version__
from nhigw.client import AgentClient, CloudClient
from nhigw.client.errors import NhigwError, StatusCodeError
from nhigw.common.cloudtls import CloudTls
from nhigw.common.guard import Guard, guard_middleware
from nhigw.common.http import error_middleware, healthz, json_response, loads_json
from nhigw.common.logging import get_logger
from nhigw.common.swagger import add_swagger
from nhigw.compat import vhc
from nhigw.compat.cshis import FUNCTIONS, CsHis, LegacyResult
from nhigw.compat.errors import AGENT_UNREACHABLE, BAD_PARAMETER, UNSUPPORTED, legacy_code, legacy_message
from nhigw.contracts.codes import Code, StatusError, message
from nhigw.contracts.models import CardKind

log = get_logger("nhigw.compat")

CSHIS = web.AppKey("cshis", CsHis)


def _body_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = loads_json(raw)
    except StatusError as err:
        try:
            data = loads_json(raw.decode("big5hkscs"))  # HIS code of the Big5 era may post Big5 JSON
        except (StatusError, UnicodeDecodeError):
            raise ValueError(err.detail or "the body is not JSON") from err
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _bad_request(detail: str) -> web.Response:
    zh, en = message(Code.PARAM_FORMAT)
    return json_response({"ERRORCODE": BAD_PARAMETER, "statusCode": int(Code.PARAM_FORMAT), "message": zh, "messageEn": en, "detail": detail}, status=400)


def legacy_body(res: LegacyResult) -> dict[str, Any]:
    out: dict[str, Any] = {"ERRORCODE": res.code, "message": res.message, "pBuffer": res.text, "pBufferHex": res.buffer.hex().upper(), "iBufferLen": len(res.buffer)}
    if res.value is not None:
        out["value"] = res.value
    if res.data is not None:
        out["data"] = {k: v for k, v in res.data.items() if k not in ("message", "messageEn")}
    out.update(res.out)
    if res.statusCode is not None:
        out["statusCode"] = res.statusCode
    if res.detail:
        out["detail"] = res.detail
    return out


def _vhc_body(route: vhc.VhcRoute, res: LegacyResult) -> dict[str, Any]:
    body: dict[str, Any] = {"ERRORCODE": res.code}
    if res.code == 0:
        if route.variant in ("json", "jsonbig5"):
            body["pBuffer"] = {k: v for k, v in (res.data or {}).items() if k not in ("statusCode", "message", "messageEn")}
        elif route.function == "hisWriteMultiPrescriptSign":
            text = res.text
            body["pBuffer"] = text
            body["signatures"] = [text[i : i + 40].strip() for i in range(0, len(text), 40)]
        elif res.value is not None:
            body["pBuffer"] = str(res.value)
        else:
            body["pBuffer"] = res.text
        body.update(res.out)
    else:
        body["pBuffer"] = ""
        body["message"] = legacy_message(res.code)
        if res.statusCode is not None:
            body["statusCode"] = res.statusCode
        if res.detail:
            body["messageEn"] = res.detail
    return body


def _respond(body: dict[str, Any], *, big5: bool, status: int = 200) -> web.Response:
    if big5:
        text = json.dumps(body, ensure_ascii=False)
        return web.Response(body=text.encode("big5hkscs", errors="replace"), status=status, content_type="application/json", charset="big5")
    return json_response(body, status=status)


def unsupported_body(u: vhc.VhcUnsupported) -> dict[str, Any]:
    return {"ERRORCODE": UNSUPPORTED, "statusCode": int(Code.UNSUPPORTED), "message": u.reason, "messageEn": u.reason_en, "function": u.name}


def openapi() -> dict[str, Any]:
    """OpenAPI document of the rows of ``nhigw.compat.endpoints`` (the generator ``nhigw proto`` uses)."""
    from nhigw.compat.endpoints import COMPAT
    from nhigw.protogen import openapi as generate

    doc = generate("compat", COMPAT)
    doc["info"]["title"] = "虛擬健保卡相容性 SDK · csHis 相容性元件 (nhigw compat)"  # as the seed's screenshot of :5067/swagger
    doc["info"]["license"] = {"name": "MIT"}
    return doc


async def clients(app: web.Application) -> AsyncIterator[None]:
    """The agent and cloud clients' connections, closed with the app."""
    yield
    await app[CSHIS].agent.close()
    await app[CSHIS].cloud.close()


async def cshis_call(req: web.Request) -> web.Response:
    name = req.match_info["function"]
    try:
        params = _body_json(await req.read())
    except ValueError as exc:
        return _bad_request(str(exc))
    if name.lower() not in FUNCTIONS:
        return json_response({**legacy_body(LegacyResult(UNSUPPORTED, statusCode=Code.NOT_FOUND, detail=f"no legacy function {name!r}")), "messageEn": "unknown function"}, status=404)
    res = await req.app[CSHIS].call(name, params)
    meta = FUNCTIONS[name.lower()]
    if not meta.supported:
        zh = meta.reason
        return json_response({**legacy_body(res), "statusCode": int(Code.UNSUPPORTED), "message": zh, "messageEn": "not supported by 6.0"}, status=400)
    return json_response(legacy_body(res))


async def cshis_list(_req: web.Request) -> web.Response:
    fns = [
        {"name": f.name, "number": f.number, "summary": f.summary, "params": list(f.params), "supported": f.supported, **({"reason": f.reason} if f.reason else {})}
        for f in sorted(FUNCTIONS.values(), key=lambda f: [int(x) for x in f.number.split(".")])
    ]
    return json_response({"functions": fns, "statusCode": 0})


async def vhc_call(req: web.Request) -> web.Response:
    cs = req.app[CSHIS]
    name = req.match_info["name"].lower()
    u = vhc.UNSUPPORTED_BY_NAME.get(name)
    if u is not None:
        return json_response(unsupported_body(u), status=400)
    route = vhc.BY_NAME.get(name)
    if route is None or route.path.split("/")[1].lower() != req.match_info["prefix"].lower():
        zh, en = message(Code.NOT_FOUND)
        return json_response({"ERRORCODE": UNSUPPORTED, "statusCode": int(Code.NOT_FOUND), "message": zh, "messageEn": f"{en}: {req.path}"}, status=404)
    try:
        body = _body_json(await req.read())
    except ValueError as exc:
        return _bad_request(str(exc))
    big5 = route.variant in ("big5", "jsonbig5")
    if route.request is not None:
        try:
            route.request.model_validate(body)
        except Exception as exc:  # pydantic ValidationError: a missing/invalid SDK parameter
            res = LegacyResult(BAD_PARAMETER, statusCode=int(Code.PARAM_MISSING), detail=f"invalid parameters for {route.name}: {type(exc).__name__}")
            return _respond(_vhc_body(route, res), big5=big5)
    if route.function.startswith("@"):
        return _respond(await _special(cs, route, body), big5=big5)
    meta = FUNCTIONS[route.function.lower()]
    params = {k: v for k, v in body.items() if k in meta.params}
    if route.function in ("csGetCardNo", "hisGetCardStatus"):
        params.setdefault("CardType", 3)  # the SDK works on the (virtual) health card
    res = await cs.call(route.function, params)
    return _respond(_vhc_body(route, res), big5=big5)


VHC_PATTERN = "/{prefix:(?i:" + "|".join(vhc.PREFIXES) + ")}/{name}"
ROUTES: list[web.RouteDef] = [
    web.get("/healthz", healthz),
    web.get("/cshis", cshis_list),
    web.post("/cshis/{function}", cshis_call),
    web.post(VHC_PATTERN, vhc_call),
    web.get(VHC_PATTERN, vhc_call),
]


def create_app(cs: CsHis, *, allowed_hosts: tuple[str, ...] = ()) -> web.Application:
    """``allowed_hosts``: Host names served besides loopback ones (``nhigw.common.guard``: compat
    has no authentication, so it answers loopback names only and refuses cross-site requests)."""
    guard = Guard(check_host=True, allowed_hosts=allowed_hosts, csrf=True, navigable=("/swagger",), extra={"ERRORCODE": legacy_code(Code.FORBIDDEN)})
    app = web.Application(middlewares=[guard_middleware(guard), error_middleware])
    app[CSHIS] = cs
    app.cleanup_ctx.append(clients)
    add_swagger(app.router, "/swagger", openapi, "虛擬健保卡相容性 SDK — nhigw compat")
    app.router.add_routes(ROUTES)
    return app


async def _special(cs: CsHis, route: vhc.VhcRoute, body: dict[str, Any]) -> dict[str, Any]:
    """The SDK routes that are component calls, not csHis functions."""
    try:
        async with cs.lock:
            if route.function == "@uploadqrcode":
                await cs.agent.hc_verify_virtual(str(body["QRCodeString"]).strip())
                return {"ERRORCODE": 0, "pBuffer": ""}
            if route.function == "@cleanqrcode":
                await cs.agent.hc_logout()
                return {"ERRORCODE": 0, "pBuffer": ""}
            if route.function == "@export":
                exp = await cs.agent.hc_export_virtual()
                return {"ERRORCODE": 0, "pBuffer": exp.token, "expiresAt": exp.expiresAt}
            if route.function == "@import":
                token = str(body.get("token") or body.get("QRCodeString") or "").strip()
                if not token:
                    return {"ERRORCODE": BAD_PARAMETER, "pBuffer": "", "message": legacy_message(BAD_PARAMETER), "messageEn": "token (the exported transfer code) is required"}
                await cs.agent.hc_import_virtual(token)
                return {"ERRORCODE": 0, "pBuffer": ""}
            if route.function == "@version":
                v = await cs.agent.version()
                return {"ERRORCODE": 0, "pBuffer": f"nhigw compat {__version__} / {v.longVersion}", "version": __version__}
    except StatusCodeError as exc:
        return {"ERRORCODE": legacy_code(exc.code, CardKind.HC), "pBuffer": "", "statusCode": exc.code, "message": legacy_message(legacy_code(exc.code, CardKind.HC)), "messageEn": exc.message_en}
    except NhigwError as exc:
        return {"ERRORCODE": AGENT_UNREACHABLE, "pBuffer": "", "message": legacy_message(AGENT_UNREACHABLE), "messageEn": str(exc)}
    raise AssertionError(route.function)  # pragma: no cover


def build(
    agent_url: str, cloud_url: str, *, api_key: str | None = None, close_com_finalizes: bool = False, timeout_s: float = 20.0,
    allowed_hosts: tuple[str, ...] = (), cloud_tls: CloudTls | None = None,
) -> web.Application:
    """The compat app for one workstation's agent and a cloud URL (the NHI cloud, the gateway or the simulator);
    ``cloud_tls``: the CAs trusted for it and the proxy setting (``nhigw.common.cloudtls``; default the system's store)."""
    tls = cloud_tls or CloudTls()
    cloud = CloudClient(cloud_url, api_key=api_key, timeout_s=timeout_s, verify_tls=tls.context(), trust_env=tls.trust_env)
    cs = CsHis(AgentClient(agent_url, timeout_s=timeout_s), cloud, close_com_finalizes=close_com_finalizes)
    return create_app(cs, allowed_hosts=allowed_hosts)
