"""The simulator's developer console (``/console/``): what the cloud received and why it refused.

An HIS developer working against ``nhigw sim`` sees, in one page (Traditional Chinese, English on
the toggle; plain HTML, CSS and JS in ``static/``, no build step, no CDN, as the agent's console
and the gateway's dashboard are made):

- the institutions, the chosen one's virtual test cards (``ApplyVirtualHc/Apply``) and the seeded
  test patients with their last visits there (``GET /test/v1/Console/Overview?hospitalId=``);
- the last requests the simulator received (``GET /test/v1/Console/Requests?after=SEQ``): method,
  path, the decoded request body, each signature check it passed or failed (``checks.note``, called by
  ``auth.check_signature``, ``dc.check_sam_signed``, the SAM verification and the upload host) and the answer sent.

What is kept: every request that may change state (not GET / HEAD / OPTIONS) under ``/api/``,
``/dc/``, ``/test/`` and ``/V2000/``, in a ring of the last ``max_requests`` (200 by default,
``nhigw sim --console-requests N``) in this process's memory, each body cut to ``MAX_KEPT_BYTES``
(so memory stays bounded). The request path only keeps the bytes (measured: about 40 us of
CPU per request, against 150 us when it decoded and masked them there); a record is decoded and masked once, when the console first reads it,
and only its masked form is kept from then on. Masking is the rule the logs use
(``nhigw.common.logging.mask_event``): national IDs cut to their first 3 and last 2 characters,
signatures and client randoms to 8 characters, tokens, PINs and keys hidden; an upload's
``sPatData`` is shown decoded (XML, masked the same way); strings longer than ``MAX_TEXT`` are
cut. So the page never holds a full ID or a full signature; until it is read, a body is held as
the simulator's store holds its patients (memory only, never written).

Protected as the admin API is (``admin.need_admin``): off unless ``nhigw sim --admin`` /
``NHIGW_SIM_ADMIN=1`` (9411, HTTP 403; the page then says how to turn it on). The page itself is
static and holds no data.

Choices (the seed is silent; the real cloud has no such console):

- the ring is *not* kept in the ``--state`` file: the file keeps the cloud's state (what a restart
  must not forget), the console shows this process's traffic; a restart starts it empty, and
  saving it after every request would grow each save for no guarantee anyone needs;
- read-only requests are not kept (the page's own polling, ``Stats``, ``ServerDateTime`` would
  push the calls a developer looks for out of the ring);
- the clock of a record is the simulator's (``SimStore.now``: shifted by ``POST /test/v1/Clock``),
  the clock the 24-hour and 1-hour rules are judged by.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from nhigw.common.http import json_response, loads_json
from nhigw.common.logging import get_logger, mask_event
from nhigw.common.roctime import TAIWAN
from nhigw.contracts.cloud import (
    ConsoleCheck,
    ConsoleInstitution,
    ConsoleOverview,
    ConsolePatient,
    ConsoleRequest,
    ConsoleRequests,
    ConsoleVisit,
)
from nhigw.contracts.codes import Code, StatusError
from nhigw.sim.admin import need_admin
from nhigw.sim.checks import CHECKS
from nhigw.sim.dc import STORE
from nhigw.sim.store import Patient, SimStore

_log = get_logger("nhigw.sim.console")
STATIC = Path(__file__).resolve().parent / "static"
PREFIXES = ("/api/", "/dc/", "/test/", "/V2000/")
READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TEXT = 2000
MAX_KEPT_BYTES = 64 * 1024
VISITS_SHOWN = 5

def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"{value[:MAX_TEXT]}… ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value


def _decoded_upload(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    for enc in ("big5", "utf-8"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return f"({len(raw)} bytes, not text)"


def shown(value: Any) -> Any:
    """A decoded body as the console may show it: masked (``mask_event``) and cut."""
    if isinstance(value, dict):
        if "sPatData" in value:
            value = {**value, "sPatData": _decoded_upload(value["sPatData"])}
        return _cut(mask_event(None, "", value))
    if isinstance(value, list):
        return _cut(mask_event(None, "", {"_": value})["_"])
    if isinstance(value, str):
        return _cut(mask_event(None, "", {"_": value})["_"])
    return value


def _decode(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return shown(loads_json(raw))  # the services' own parser: bounded depth and number length
    except StatusError:
        return shown(raw[:MAX_TEXT].decode("utf-8", errors="replace"))


@dataclass(slots=True)
class _Kept:
    """A request as received (its bodies decoded and masked only when the console reads it)."""

    seq: int
    at_s: float  # simulator clock, epoch seconds
    method: str
    path: str
    status: int
    idempotency_key: str | None
    ms: float
    body: bytes | None
    answer: bytes | str | None
    checks: list[tuple[str, bool, str]]
    masked: ConsoleRequest | None = None

    def view(self) -> ConsoleRequest:
        if self.masked is None:
            answer = _decode(self.answer) if isinstance(self.answer, bytes) else self.answer
            code = answer.get("statusCode", answer.get("RtnCode")) if isinstance(answer, dict) else None
            self.masked = ConsoleRequest(
                seq=self.seq, at=dt.datetime.fromtimestamp(self.at_s, TAIWAN).replace(tzinfo=None).isoformat(timespec="milliseconds"),
                method=self.method, path=self.path, status=self.status, statusCode=code if isinstance(code, (int, str)) else None,
                idempotencyKey=shown(self.idempotency_key), ms=round(self.ms, 2), body=_decode(self.body), answer=answer,
                checks=[ConsoleCheck(name=n, ok=ok, detail=d) for n, ok, d in self.checks],
            )
            self.body = self.answer = None  # what is kept from now on is masked
        return self.masked


class RequestLog:
    """The ring of the last ``max_requests`` requests (see the module's docstring)."""

    def __init__(self, max_requests: int = 200) -> None:
        self.max = max(1, max_requests)
        self.records: deque[_Kept] = deque(maxlen=self.max)
        self._seq = itertools.count(1)
        self.dropped = 0  # records that could not be made (logged)

    def add(self, at_s: float, method: str, path: str, status: int, idempotency_key: str | None, ms: float,
            body: bytes | None, answer: bytes | str | None, checks: list[tuple[str, bool, str]]) -> None:
        if isinstance(answer, bytes):
            answer = answer[:MAX_KEPT_BYTES]
        body = body[:MAX_KEPT_BYTES] if body is not None else None
        self.records.append(_Kept(next(self._seq), at_s, method, path, status, idempotency_key, ms, body, answer, checks))

    def after(self, seq: int) -> list[ConsoleRequest]:
        return [r.view() for r in list(self.records) if r.seq > seq]


REQUEST_LOG = web.AppKey("sim_request_log", RequestLog)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _request_body(req: web.Request) -> bytes | None:
    if not req.body_exists:
        return None
    if req.content.at_eof():  # the handler read it: aiohttp keeps it
        return await req.read()
    try:  # a handler that refused before reading: what the client sends within a second
        return await asyncio.wait_for(req.read(), 1.0)
    except (TimeoutError, web.HTTPException, ConnectionError, RuntimeError, ValueError):
        return None


def _answer(resp: web.StreamResponse) -> bytes | None:
    if isinstance(resp, web.Response) and isinstance(resp.body, (bytes, bytearray)):
        return bytes(resp.body)
    return None


def record_middleware(log: RequestLog) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Keep every state-changing request under ``PREFIXES`` with its checks and its answer (outermost:
    it sees the answer the error middleware made)."""

    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in READ_ONLY or not request.path.startswith(PREFIXES):
            return await handler(request)
        checks: list[tuple[str, bool, str]] = []
        token = CHECKS.set(checks)
        t0 = time.perf_counter()
        at_s = request.app[STORE].now_s()
        try:
            resp = await handler(request)
        finally:
            CHECKS.reset(token)
        ms = (time.perf_counter() - t0) * 1000
        try:
            transport = request.transport
            reset = transport is None or transport.is_closing()
            log.add(
                at_s, request.method, request.path, 0 if reset else resp.status, request.headers.get("Idempotency-Key"), ms,
                await _request_body(request), "(connection reset: no answer sent)" if reset else _answer(resp), checks,
            )
        except Exception:  # the console must never cost a request its answer: the record is dropped
            log.dropped += 1
            _log.exception("console_record_dropped", path=request.path)
        return resp

    return mw


def _visits(p: Patient, hospital_id: str) -> list[ConsoleVisit]:
    mine = [t for t in p.treatments if t.hospitalId == hospital_id]
    mine.sort(key=lambda t: t.treatDateTime, reverse=True)
    return [
        ConsoleVisit(treatDateTime=t.treatDateTime, sequenceNumber=t.sequenceNumber, treatmentItem=t.treatmentItem, rolledBack=t.rolledBack, mainCode=t.codes.get("mainCode", ""))
        for t in mine[:VISITS_SHOWN]
    ]


def _patient(p: Patient, hospital_id: str) -> ConsolePatient:
    return ConsolePatient(
        cardSn=p.cardSn, name=p.name, idCardNum=shown(p.idCardNum), birthday=p.birthday, sex=p.sex, insuranceStatus=p.insuranceStatus,
        cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter, testCardOf=p.testCardOf, visits=_visits(p, hospital_id),
    )


def overview(st: SimStore, hospital_id: str | None) -> ConsoleOverview:
    sams: dict[str, list[str]] = {}
    for sam_id, (hosp, _pem) in st.sam_keys.items():
        sams.setdefault(hosp, []).append(sam_id)
    insts = [ConsoleInstitution(hospitalId=i.hospitalId, hospitalName=i.hospitalName, contract=i.contract, samIds=sorted(sams.get(i.hospitalId, []))) for i in st.institutions.values()]
    insts.sort(key=lambda i: (not i.samIds, i.hospitalId))  # those with a SAM the developer can sign with first
    if hospital_id is None:
        hospital_id = insts[0].hospitalId if insts else None
    elif hospital_id not in st.institutions:
        raise StatusError(Code.PARAM_VALUE, f"no institution {hospital_id!r} at this simulator")
    if hospital_id is None:
        return ConsoleOverview(institutions=insts)
    patients = sorted(st.patients_by_id.values(), key=lambda p: p.cardSn)
    cards = [_patient(p, hospital_id) for p in patients if p.testCardOf == hospital_id]
    return ConsoleOverview(
        hospitalId=hospital_id, institutions=insts, testCards=cards, remaining=max(0, st.test_cards_max - len(cards)),
        patients=[_patient(p, hospital_id) for p in patients if p.testCardOf is None],
    )


def _int_query(req: web.Request, name: str, default: int) -> int:
    raw = req.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StatusError(Code.PARAM_VALUE, f"{name} must be an integer") from None


def add_console_routes(app: web.Application, log: RequestLog) -> None:
    app[REQUEST_LOG] = log

    async def requests(req: web.Request) -> web.Response:
        need_admin(req)
        return json_response(ConsoleRequests(requests=log.after(_int_query(req, "after", 0)), max=log.max))

    async def overview_(req: web.Request) -> web.Response:
        st = need_admin(req)
        return json_response(overview(st, req.query.get("hospitalId") or None))

    async def index(_req: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def to_index(_req: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    r = app.router
    r.add_get("/test/v1/Console/Requests", requests)
    r.add_get("/test/v1/Console/Overview", overview_)
    r.add_get("/console", to_index)
    r.add_get("/console/", index)
    r.add_static("/console/static/", STATIC, show_index=False)
