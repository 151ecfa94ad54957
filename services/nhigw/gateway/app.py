"""The gateway's HTTP app (``create_app(gateway)``).

Business routes (``POST /api/v1/{route}``), in both modes, for every route of
``nhigw.contracts.routes``: pass-through (the body carries the HIS's signature object)
or one-call (``X-Workstation``; the gateway gets the signature from that agent). Both go
through the queue (``nhigw.gateway.service``). Headers: ``Authorization: Bearer <key>``
(unless the gateway runs open on loopback), ``Idempotency-Key`` (generated when absent,
always echoed), ``X-Deadline-Ms`` (how long the HIS waits, default 30 s).

Outcomes, each defined (the HTTP status of each code: ``nhigw.contracts.codes.HTTP_STATUS``, 200
for every 6.0 answer, 202 for 9408):
- the cloud answered: its JSON, unchanged (also on a replay);
- one-call, workstation offline: 9400 at once; agent silent: 9401;
  the agent refused (wrong state, no card): the agent's 6.0 code;
- the cloud unreachable, breaker open: 9402; a write that may have
  landed (no answer, or a 5xx after it reached the cloud, or dead-lettered after an earlier
  delivery was sent): 9403 with ``idempotencyKey``; client over its rate: 9407;
- still running at the HIS's deadline: 9408 with ``idempotencyKey``.

The upload host's ``POST /V2000/VNHI_Upload`` is queued and audited like a business write and
sent to the upload host (``--upload-cloud``, default the business cloud); the cloud's test-card
API (``POST /test/v1/...``) is passed through to the cloud.

Also: ``GET /api/workstations``; component calls forwarded to a workstation's agent
(``/api/workstations/{id}/{common,sam,hpc,hc}/v1/...`` with GET, POST, PUT or DELETE: an HIS
client may make the calls of ``HIS_COMPONENT_CALLS`` (``nhigw.gateway.admission``), the rest (settings, cloud SAM files,
clearing the record) need an operator key, 9411 / HTTP 403); dead letters for ops
(``GET /api/ops/dead-letters``, ``POST .../{id}/retry``, ``POST .../{id}/resend``,
``DELETE .../{id}``; ``nhigw.gateway.deadletters``, scoped by the operator's hospital); the audit
trail of the client's hospital (``GET /api/audit``, paged: ``audit_params``; ``GET /api/audit/verify``);
``/metrics``, ``/healthz``, ``/readyz``.

Every request: at most ``MAX_BODY_BYTES`` of body (9413, HTTP 413), and one token of its
client's rate bucket (``--rate-per-s``/``--rate-burst``, per replica; 9407): the bucket
of the client its key names, or of the peer address for a request without a valid key
(admission, every check before a request is queued or forwarded: ``nhigw.gateway.admission``). A
gateway without client keys (open on loopback) answers loopback ``Host`` names only and
refuses requests with a foreign ``Origin`` (``nhigw.common.guard``: DNS rebinding, cross-site
pages).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from nhigw.bus.base import BusError
from nhigw.common.guard import Guard, guard_middleware
from nhigw.common.http import error_middleware, healthz, json_response, loads_json, parse_body
from nhigw.common.logging import get_logger
from nhigw.contracts import api
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import ClientCreateRequest, DeadLetterBulkRetryRequest, DeadLetterResendRequest, EnrolTokenRequest, RequestSearch
from nhigw.contracts.routes import VNHI_UPLOAD, Route, lookup
from nhigw.gateway import browse
from nhigw.gateway.admission import GATE, Handler, gate_middleware
from nhigw.gateway.audit import PAGE_MAX, ops_record, parse_cursor, to_ms
from nhigw.gateway.auth import NEEDS, Action, Client, Clients, Role, forbid
from nhigw.gateway.dashboard import add_dashboard_routes
from nhigw.gateway.service import Gateway
from nhigw.gateway.sessions import HEADER as SESSION_HEADER
from nhigw.gateway.sessions import add_session_routes

SIM_ADMIN = {e.path.lower() for e in api.SIM if e.tag == "admin"}
log = get_logger("nhigw.gateway")

GATEWAY = web.AppKey("gateway", Gateway)
DEAD_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
# A 6.0 business body is a few KB; the largest real one, an IC-data upload (base64 XML, one batch of
# visits), stays well under 1 MB. 4 MiB leaves room for an unusually large batch.
MAX_BODY_BYTES = 4 * 1024 * 1024

def audit_params(q: Any) -> dict[str, Any]:
    """``GET /api/audit`` query: ``since`` (inclusive) and ``until`` (exclusive) as ISO dates or
    date-times (no zone: UTC), ``limit`` (1-1000, default 1000), ``order`` (``asc`` oldest first,
    default, or ``desc``) and ``cursor`` (the last page's ``next``)."""
    out: dict[str, Any] = {}
    for name in ("since", "until"):
        if q.get(name):
            try:
                out[name] = to_ms(q[name])
            except ValueError as exc:
                raise StatusError(Code.PARAM_VALUE, f"{name} must be an ISO date or date-time (2026-11-01, 2026-11-01T08:00:00+08:00)") from exc
    limit = q.get("limit", str(PAGE_MAX))
    if not limit.isdigit() or not 1 <= int(limit) <= PAGE_MAX:
        raise StatusError(Code.PARAM_VALUE, f"limit must be an integer from 1 to {PAGE_MAX}")
    out["limit"] = int(limit)
    if q.get("order", "asc") not in ("asc", "desc"):
        raise StatusError(Code.PARAM_VALUE, "order must be asc or desc")
    out["newest_first"] = q.get("order") == "desc"
    if q.get("cursor"):
        try:
            parse_cursor(q["cursor"])
        except ValueError as exc:
            raise StatusError(Code.PARAM_VALUE, "cursor must be the next value of the previous page") from exc
        out["cursor"] = q["cursor"]
    return out


@web.middleware
async def bus_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Redis unreachable anywhere in a handler: 9402 (nothing was accepted), never a 500."""
    try:
        return await handler(request)
    except BusError as exc:
        raise StatusError(Code.UPSTREAM_UNAVAILABLE, "the gateway's Redis is unavailable") from exc


def dead_id(req: web.Request) -> str:
    i = req.match_info["id"]
    if not DEAD_ID_RE.match(i):
        raise StatusError(Code.NOT_FOUND, "no such dead letter")
    return i


def client_of(req: web.Request) -> Client:
    return req.app[GATE].client(req)


# ------------------------------------------------------------------ business: pass-through and one-call


async def business(req: web.Request) -> web.StreamResponse:
    t0 = time.perf_counter()
    client = client_of(req)
    path = "/api/v1/" + req.match_info["path"]
    route = lookup(path)
    if route is None:
        raise StatusError(Code.NOT_FOUND, f"no business route {path}")
    if not route.supported:
        raise StatusError(Code.UNSUPPORTED, f"{route.path} is not supported by 6.0 (不支援)")
    return await queued(req, t0, client, route, path)


async def upload(req: web.Request) -> web.StreamResponse:
    """The upload host's ``/V2000/VNHI_Upload``: queued and audited like a business write, sent to ``--upload-cloud``."""
    t0 = time.perf_counter()
    return await queued(req, t0, client_of(req), VNHI_UPLOAD, VNHI_UPLOAD.url)


async def queued(req: web.Request, t0: float, client: Client, route: Route, path: str) -> web.StreamResponse:
    gw = req.app[GATEWAY]
    raw = await req.read()
    fields: Any = loads_json(raw) if raw.strip() else {}
    if not isinstance(fields, dict):
        raise StatusError(Code.NOT_JSON, "the body must be a JSON object")
    workstation = req.headers.get("X-Workstation") or None
    hospital_field = "sHospId" if route is VNHI_UPLOAD else "hospitalId"
    hospital = fields.get(hospital_field) if isinstance(fields.get(hospital_field), str) else None
    dsession = await gw.sessions.resolve(req, client) if SESSION_HEADER in req.headers else None  # nhigw.gateway.sessions
    if dsession is not None:
        workstation, hospital = dsession.workstation, dsession.hospitalId
    ticket = await req.app[GATE].business(client, req.headers, workstation=workstation, hospital=hospital)
    idem, deadline_s = ticket.idempotency_key, ticket.deadline_s
    try:
        ans, replayed, phases = await gw.submit(
            client=client,
            route=route,
            path=path,
            body=raw,
            workstation=workstation,
            idem_key=idem,
            deadline_s=deadline_s,
            hospital=client.hospitalId or (dsession.hospitalId if dsession else None),
            device_session=dsession.sessionId if dsession else None,
            fields=fields,
        )
    except BusError:
        # Redis failed or did not answer: the request may or may not be queued (a lost reply). Nothing reached
        # the cloud yet; the key (ours if the HIS sent none) lets a retry join the run or start it, never repeat it.
        err = StatusError(
            Code.UPSTREAM_UNAVAILABLE,
            "the gateway's queue did not confirm the request (Redis unavailable); retry with the same Idempotency-Key",
            idempotencyKey=idem,
        )
        return json_response(err.body(), status=err.http_status, headers={"Idempotency-Key": idem})
    headers = {"Idempotency-Key": idem, "Server-Timing": phases.header((time.perf_counter() - t0) * 1000)}
    if ans is None:
        err = StatusError(Code.IN_PROGRESS, f"not finished within {deadline_s:g} s; it stays queued", idempotencyKey=idem)
        return json_response(err.body(), status=err.http_status, headers=headers)
    headers["X-Request-Id"] = ans.requestId
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.Response(body=ans.body.encode(), status=ans.httpStatus, content_type="application/json", charset="utf-8", headers=headers)


async def test_api(req: web.Request) -> web.Response:
    """``POST /test/v1/...``: the cloud's test-card API (e.g. ``ApplyVirtualHc/Apply``), passed through for the
    client's hospital. The simulator's own admin endpoints (faults, clock, stats) are not passed."""
    client = client_of(req)
    if req.path.lower() in SIM_ADMIN:
        raise web.HTTPNotFound()  # the simulator's admin API: not the cloud's, not passed
    raw = await req.read()
    fields: Any = loads_json(raw) if raw.strip() else {}
    hospital = fields.get("hospitalId") if isinstance(fields, dict) and isinstance(fields.get("hospitalId"), str) else None
    req.app[GATE].may_act_for(client, hospital)
    status, body = await req.app[GATEWAY].test_api(req.path, raw)
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


# ------------------------------------------------------------------ workstations and their agents


async def workstations(req: web.Request) -> web.Response:
    client = client_of(req)
    return json_response({"workstations": req.app[GATEWAY].registry.snapshot(client.may_use), "statusCode": 0})


async def component(req: web.Request) -> web.Response:
    gw = req.app[GATEWAY]
    client = client_of(req)
    ws, rest = req.match_info["ws"], req.match_info["rest"]
    await req.app[GATE].component(client, ws, req.method, rest)
    path = "/api/" + req.match_info["rest"]
    reply = await gw.rpc.component(ws, req.method, path, (await req.read()).decode("utf-8", "replace"))
    return web.Response(body=reply.body.encode(), status=reply.httpStatus, content_type="application/json", charset="utf-8")


# ------------------------------------------------------------------ ops: who am I, history, requests, dead letters


async def me(req: web.Request) -> web.Response:
    """Who this key is and what it may do (the dashboard shows only that)."""
    c = client_of(req)
    return json_response(
        {
            "name": c.name,
            "role": c.role.value if c.role else None,
            "hospitalId": c.hospitalId,
            "allHospitals": c.allHospitals,
            "open": req.app[GATE].clients.open,
            "may": {a.value: c.may(a) for a in NEEDS},
            "statusCode": 0,
        }
    )


async def history(req: web.Request) -> web.Response:
    client = client_of(req)
    client.need(Action.DASHBOARD)
    try:
        hours = float(req.query.get("hours", "3"))
    except ValueError as exc:
        raise StatusError(Code.PARAM_VALUE, "hours must be a number from 0.1 to 6") from exc
    if not 0.1 <= hours <= 6:
        raise StatusError(Code.PARAM_VALUE, "hours must be a number from 0.1 to 6")
    return json_response((await req.app[GATEWAY].history.read(hours, None if client.allHospitals else client.hospitalId)).model_dump(mode="json"))


async def requests_search(req: web.Request) -> web.Response:
    gw = req.app[GATEWAY]
    client = client_of(req)
    client.need(Action.DASHBOARD)
    body = await parse_body(req, RequestSearch, empty_ok=True)
    return json_response(await browse.search(gw.audit, client, body, instance=gw.instance, site=gw.settings.site))


async def dead_letters(req: web.Request) -> web.Response:
    return json_response({"deadLetters": await req.app[GATEWAY].dead_letters.list(client_of(req)), "statusCode": 0})


async def dead_detail(req: web.Request) -> web.Response:
    return json_response({**await req.app[GATEWAY].dead_letters.detail(client_of(req), dead_id(req)), "statusCode": 0})


async def dead_bulk(req: web.Request) -> web.Response:
    client = client_of(req)
    client.need(Action.DEAD_LETTERS)
    body = await parse_body(req, DeadLetterBulkRetryRequest, empty_ok=False)
    res = await req.app[GATEWAY].dead_letters.bulk_retry(client, body)
    return json_response(res.model_dump(mode="json"))


async def dead_retry(req: web.Request) -> web.Response:
    new_id = await req.app[GATEWAY].dead_letters.retry(client_of(req), dead_id(req))
    return json_response({"requeuedAs": new_id, "statusCode": 0})


async def dead_resend(req: web.Request) -> web.Response:
    client = client_of(req)
    body = await parse_body(req, DeadLetterResendRequest, empty_ok=False)
    new_id = await req.app[GATEWAY].dead_letters.resend(client, dead_id(req), body)
    return json_response({"requeuedAs": new_id, "statusCode": 0})


async def dead_discard(req: web.Request) -> web.Response:
    await req.app[GATEWAY].dead_letters.discard(client_of(req), dead_id(req))
    return json_response({"statusCode": 0})


# ------------------------------------------------------------------ admin: HIS clients and enrolment tokens


def clients_file(req: web.Request, c: Client) -> Clients:
    c.need(Action.CLIENTS)
    clients = req.app[GATE].clients
    if clients.path is None:
        raise forbid("this gateway runs open on loopback without a clients file: start it with --clients FILE to manage clients")
    clients.reload()  # what another replica or the CLI wrote just now
    return clients


async def ops_audit(req: web.Request, c: Client, what: str, action: str, note: str, hospital: str | None) -> None:
    gw = req.app[GATEWAY]
    await gw.audit.append(ops_record(c, what, action, instance=gw.instance, site=gw.settings.site, hospital=hospital, note=note))


async def clients_list(req: web.Request) -> web.Response:
    c = client_of(req)
    clients = clients_file(req, c)
    return json_response({"clients": [x.public() for x in clients.clients if c.manages(x)], "statusCode": 0})


async def clients_add(req: web.Request) -> web.Response:
    c = client_of(req)
    clients = clients_file(req, c)
    body = await parse_body(req, ClientCreateRequest, empty_ok=False)
    role = Role(body.role) if body.role else None
    new = Client(body.name, body.hospitalId, tuple(body.workstations), role, allHospitals=body.allHospitals)
    existing = next((x for x in clients.clients if x.name == body.name), None)
    if not c.manages(new) or (existing is not None and not c.manages(existing)):
        raise forbid(f"{c.name!r} manages clients of hospital {c.hospitalId!r} only (an all-hospitals key needs an all-hospitals admin)")
    assert clients.path is not None
    key = await asyncio.to_thread(Clients.add, clients.path, body.name, body.hospitalId, list(body.workstations), all_hospitals=body.allHospitals, role=role)
    clients.reload()
    await ops_audit(
        req,
        c,
        "clients/add",
        "C",
        f"client {body.name!r} role {role.value if role else 'his'} hospital {'all' if body.allHospitals else body.hospitalId}",
        body.hospitalId,
    )
    return json_response({**new.public(), "key": key, "statusCode": 0})


async def clients_remove(req: web.Request) -> web.Response:
    c = client_of(req)
    clients = clients_file(req, c)
    name = req.match_info["name"]
    target = next((x for x in clients.clients if x.name == name), None)
    if target is None or not c.manages(target):
        raise StatusError(Code.NOT_FOUND, "no such client")
    assert clients.path is not None
    await asyncio.to_thread(Clients.remove, clients.path, name)
    clients.reload()
    await ops_audit(req, c, "clients/remove", "D", f"client {name!r}", target.hospitalId)
    return json_response({"statusCode": 0})


async def enrol_token(req: web.Request) -> web.Response:
    c = client_of(req)
    c.need(Action.ENROL)
    body = await parse_body(req, EnrolTokenRequest, empty_ok=False)
    if not c.may_use(body.workstation):
        raise forbid(f"{c.name!r} may not use workstation {body.workstation!r}")
    token = await req.app[GATEWAY].agents.issue_token(body.workstation, body.ttl_s)
    await ops_audit(req, c, "enrol-tokens/issue", "E", f"one-time enrolment token for workstation {body.workstation!r}, valid {body.ttl_s:g} s", c.hospitalId)
    return json_response({"workstation": body.workstation, "token": token, "ttl_s": body.ttl_s, "statusCode": 0})


# ------------------------------------------------------------------ the audit trail, metrics, readiness


async def audit(req: web.Request) -> web.Response:
    client = client_of(req)
    hospital = client.hospitalId
    if client.ops:  # an operator key: its scope (one hospital, or all); an HIS client: its hospital, as ever
        client.need(Action.AUDIT)
        hospital = None if client.allHospitals else client.hospitalId
    page = await req.app[GATEWAY].audit.query(hospital=hospital, **audit_params(req.query))
    return json_response(page.model_dump(mode="json"))  # None fields kept (next: null on the last page)


async def audit_verify(req: web.Request) -> web.Response:
    c = client_of(req)
    c.need(Action.AUDIT)
    if not c.allHospitals:  # one chain holds every hospital's records
        raise forbid("verifying the audit chain (every hospital's records) is for an allHospitals operator")
    res = await req.app[GATEWAY].check_audit()
    return json_response({**res.model_dump(), "statusCode": 0}, status=200 if res.ok else 409)


async def metrics(req: web.Request) -> web.Response:
    return web.Response(body=await req.app[GATEWAY].metrics.render(), content_type="text/plain", charset="utf-8")


async def readyz(req: web.Request) -> web.Response:
    gw = req.app[GATEWAY]
    checks = await gw.readiness.run()  # named checks (nhigw.common.health): bus, task:<name>, ...
    ok = all(checks.values())
    failing = [name for name, passed in checks.items() if not passed]
    status = "ok" if ok else "not ready: " + ", ".join(failing)
    return web.json_response({"status": status, "checks": checks, "instance": gw.instance}, status=200 if ok else 503)


# The gateway's routes (each row is also in ``nhigw.contracts.api.GATEWAY``, which a test checks).
# Component calls take GET, POST, PUT and DELETE only: HEAD, PATCH, TRACE... are 405 here, never forwarded.
COMPONENT_PATH = r"/api/workstations/{ws}/{rest:(common|sam|hpc|hc)/v1/.+}"
ROUTES: list[web.RouteDef] = [
    web.get("/healthz", healthz),
    web.get("/readyz", readyz),
    web.get("/metrics", metrics),
    web.get("/api/workstations", workstations),
    web.get(COMPONENT_PATH, component, allow_head=False),
    web.post(COMPONENT_PATH, component),
    web.put(COMPONENT_PATH, component),
    web.delete(COMPONENT_PATH, component),
    web.get("/api/ops/me", me),
    web.get("/api/ops/history", history),
    web.post("/api/ops/requests/search", requests_search),
    web.get("/api/ops/dead-letters", dead_letters),
    web.post("/api/ops/dead-letters/bulk-retry", dead_bulk),
    web.get("/api/ops/dead-letters/{id}", dead_detail),
    web.get("/api/admin/clients", clients_list),
    web.post("/api/admin/clients", clients_add),
    web.delete("/api/admin/clients/{name}", clients_remove),
    web.post("/api/admin/enrol-tokens", enrol_token),
    web.post("/api/ops/dead-letters/{id}/retry", dead_retry),
    web.post("/api/ops/dead-letters/{id}/resend", dead_resend),
    web.delete("/api/ops/dead-letters/{id}", dead_discard),
    web.get("/api/audit", audit),
    web.get("/api/audit/verify", audit_verify),
    web.post("/api/v1/{path:.+}", business),
    web.post(VNHI_UPLOAD.url, upload),
    web.post("/test/v1/{path:.+}", test_api),
]



def create_app(gw: Gateway, *, workers: bool = True) -> web.Application:
    """The gateway's app; ``workers=False``: this replica admits and answers but runs no jobs from the queue."""
    middlewares: list[Any] = [error_middleware, gate_middleware, bus_error_middleware]
    if gw.settings.clients.open:  # open on loopback: no key stops a rebound host name or a web page
        middlewares.insert(0, guard_middleware(Guard(check_host=True, refuse_foreign_origin=True, csrf=False)))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[GATEWAY] = gw
    app[GATE] = gw.gate
    for part in gw.lifetimes(workers=workers):  # each part its own cleanup_ctx: opened in order, closed in reverse
        app.cleanup_ctx.append(lambda _app, part=part: part())
    app.router.add_routes(ROUTES)
    add_dashboard_routes(app)
    add_session_routes(app, gw.sessions)
    return app
