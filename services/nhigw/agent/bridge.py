"""The official 6.0 component as the agent's card backend: ``nhigw agent --component https://127.0.0.1:5066``.

In a clinic that already runs the NHI's own 6.0 software, that component owns the readers (the
dedicated reader on its COM port, the cloud SAM, the HPC, the HC) and is the only program that can
sign with real cards. A bridged agent does no card I/O: ``ComponentBridge`` is the card backend of
the bus link (``nhigw.agent.core.CardBackend``, beside the ``Agent`` that drives PC/SC readers).
It joins the gateway like any agent (same enrolment, same sealed bus messages) and:

- **presence and states** come from the component's ``GET /api/common/v1/Status`` (the states'
  ``reader`` says "official 6.0 component", or why it cannot serve: the dashboard's reader column), read every
  ``poll_s`` (default 1 s) and at once after each call the agent itself makes (a forwarded call
  may change the states: the change reaches the gateway within that call's round trip). A
  change made by the HIS on the workstation shows within one ``poll_s``;
- **one-call signatures** are ``POST`` to the component's ``Signature`` endpoint of the route's
  kind (``/api/sam/v1/Signature``, ``/api/hpc/v1/Signature``, ``/api/hc/v1/Signature/Hc``,
  ``/api/hc/v1/Signature/HpcHc``) with the route's ``serviceType``; the states are not checked
  here first (the component's answer is the truth), and its ``statusCode`` reaches the HIS
  unchanged (1000, 1501, 1402 ...);
- **component calls** the gateway forwards (``/api/workstations/{id}/...``) go to the
  component and its answer comes back byte for byte (status, body).

Outcomes, each defined (and tested in ``tests/test_agent_bridge.py``):

| the component ... | Status poll | a one-call request | a forwarded call |
|---|---|---|---|
| refuses the connection (stopped), or its certificate is not the trusted one | the workstation goes offline at once (presence ``leaving``) | 9400 | 9400 |
| does not answer within ``timeout_s`` (default 5 s): slow | no change | 9401 | 9401 |
| lets ``STALL_POLLS`` (3) Status polls in a row go unanswered: hung | offline, as stopped | 9400 | 9400 |
| answers a 6.0 ``statusCode`` other than 0 | — | that code, unchanged | its answer, unchanged |
| answers something that is not a 6.0 answer (HTTP 5xx, not JSON) | offline, as stopped | 9416 | 9416 |
| comes back (restarted) | online with the states it reports (a restarted component is not initialised: 1000) | | |

The component is shared with the HIS on the same workstation, which calls it too. What the two
callers can do to each other:

- the agent sends one request at a time (one lock around every call, polls included), so its own
  calls never overlap; the HIS's calls may interleave with them, as two HIS windows would;
- the HIS can change any state between two gateway calls (``hc/Logout`` before each read,
  ``Finalize``, pulling a card): the agent never signs on a state it saw before, it asks the
  component, so the next one-call request gets the component's own code (e.g. 1501);
- calls forwarded through the gateway change the same states for the HIS (an ``hpc/Logout`` from
  another PC logs the doctor out here too); the gateway lets HIS clients forward only the 6.0
  calls HIS code makes (``HIS_COMPONENT_CALLS`` in ``nhigw.gateway.admission``), settings need an
  operator key;
- signatures change no state (each has a fresh ``clientRandom``): signing for the gateway does not
  disturb the HIS's work.

TLS: the component has its own certificate (the 6.0 installer ships ``cshis6.crt``). With
``--component-ca FILE`` the certificate must chain to that file (host name checked: use the name
the certificate carries, e.g. ``https://localhost:5066``). Without it, the certificate is pinned
on first use: its SHA-256 is kept in the data directory (``component-pins.json``) and logged
(``component_certificate_pinned``), and a different certificate later is refused (9400, logged
with what to do), never accepted silently. Plain ``http://`` is refused.

Device sessions (``/api/sessions``) need a card state per session; the official component has one
state per workstation, so a bridged agent serves none: every session call is refused with 9406
(``RefusedSessions``), and a session opened without naming a workstation goes to another agent.

Choices (the seed is silent): the poll interval and timeout above; the field spellings of the
component's answers are read tolerantly (``normalise_signature``, ``parse_states``: ``samid`` /
``samId``, ``hospitalid`` / ``hospitalId``, ``clientId`` for ``hcId`` as in one of the seed's
screenshots, a ``statusCode`` as a number or a string such as ``"0000"``, ``status`` wrapped or not),
and a 2xx answer without ``statusCode`` counts as 0 (the seed's examples of signatures carry none).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from nhigw.bus.guard import Supervisor
from nhigw.common.health import Readiness
from nhigw.common.logging import get_logger
from nhigw.contracts.codes import Code, StatusError, message
from nhigw.contracts.models import CardStates, ErrorBody, SessionCall, SessionReply, SignatureKind, SignatureRequest, SignatureResponse, TlsExpiry

log = get_logger("nhigw.agent.bridge")

POLL_S = 1.0
TIMEOUT_S = 5.0
STALL_POLLS = 3  # Status polls in a row without an answer: the component has stopped answering, not just slowed
PIN_FILE = "component-pins.json"
COMPONENT_LABEL = "official 6.0 component"

SIGNATURE_PATHS = {
    SignatureKind.SAM: "/api/sam/v1/Signature",
    SignatureKind.HPC: "/api/hpc/v1/Signature",
    SignatureKind.HC: "/api/hc/v1/Signature/Hc",
    SignatureKind.HPCHC: "/api/hc/v1/Signature/HpcHc",
}

# Lower-cased spelling -> the name the cloud expects. ``clientId`` is how one of the seed's screenshots
# labels the HC's card number in an HC signature.
_SIGNATURE_FIELDS = {
    **{k.lower(): k for k in ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hcId", "hcIdNo", "hpcId", "hpcIdNo")},
    "clientid": "hcId",
}


# --------------------------------------------------------------------------- pure: reading the component's answers


def status_code(body: object) -> int:
    """The 6.0 ``statusCode`` of a JSON answer (any spelling; ``"0000"`` too); 0 when it has none."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    raw = next((v for k, v in body.items() if k.lower() == "statuscode"), 0)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"statusCode {raw!r}")
    return int(raw)


def normalise_signature(body: dict[str, Any]) -> dict[str, str]:
    """The signature fields of a component's answer under the names the NHI cloud expects."""
    out: dict[str, str] = {}
    for key, value in body.items():
        name = _SIGNATURE_FIELDS.get(key.lower())
        if name is not None and isinstance(value, str) and value and name not in out:
            out[name] = value
    return out


def _field(d: dict[str, Any], *names: str) -> Any:
    want = {n.lower() for n in names}
    return next((v for k, v in d.items() if k.lower() in want), None)


def _card(value: Any) -> int:
    """A card's state: ``{"status": n}`` or a bare ``n``."""
    if isinstance(value, dict):
        value = _field(value, "status")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


def parse_states(body: dict[str, Any]) -> CardStates:
    """``GET /api/common/v1/Status`` (facts 3.2: ``status: {initialized, sam: {status}, hpc: {status}, hc: {status}}``)
    as the agent's ``CardStates``; the wrapper may be missing and each card may be a bare number."""
    st = _field(body, "status")
    if not isinstance(st, dict):
        st = body
    reader = _field(st, "reader", "readerName")
    return CardStates(
        initialized=bool(_field(st, "initialized", "isInitialized")),
        sam=_card(_field(st, "sam")),
        hpc=_card(_field(st, "hpc", "hca")),
        hc=_card(_field(st, "hc")),
        reader=str(reader) if reader else None,
    )


def _error(code: Code, detail: str) -> StatusError:
    return StatusError(code, detail)


# --------------------------------------------------------------------------- TLS: a CA file, or the certificate pinned on first use


class ComponentTrust:
    """How the agent trusts the component's certificate: ``ca_file``, else a pin kept in ``pin_dir``."""

    def __init__(self, url: str, *, ca_file: Path | None = None, pin_dir: Path | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the official component is reached over https only (got {url!r})")
        if ca_file is None and pin_dir is None:
            raise ValueError("the component's certificate needs a CA file (--component-ca) or a place to keep its pin (data directory)")
        self.host, self.port = parts.hostname, parts.port or 443
        self.ca_file, self.pin_path = ca_file, (pin_dir / PIN_FILE if pin_dir else None)
        self._ctx: ssl.SSLContext | None = None
        self._pin: str | None = None  # the pinned SHA-256, once read or made
        if ca_file is not None:
            try:
                self._ctx = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"--component-ca {ca_file}: not a readable PEM certificate file ({exc})") from None

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"

    def _pins(self) -> dict[str, str]:
        if self.pin_path is None or not self.pin_path.exists():
            return {}
        try:
            data = json.loads(self.pin_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    async def _peer_sha256(self) -> str:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # only to read the certificate it presents, which is then pinned
        _reader, writer = await asyncio.open_connection(self.host, self.port, ssl=ctx)
        try:
            obj = writer.get_extra_info("ssl_object")
            der = obj.getpeercert(binary_form=True) if obj is not None else None
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if not der:
            raise ConnectionError("the component presented no certificate")
        return hashlib.sha256(der).hexdigest()

    async def ssl_for_request(self) -> ssl.SSLContext | aiohttp.Fingerprint:
        if self._ctx is not None:
            return self._ctx
        if self._pin is None:
            self._pin = await asyncio.to_thread(lambda: self._pins().get(self.key))
        if self._pin is None:
            pin = await self._peer_sha256()
            pins = {**self._pins(), self.key: pin}
            assert self.pin_path is not None
            await asyncio.to_thread(self.pin_path.write_text, json.dumps(pins, indent=1), encoding="utf-8")
            self._pin = pin
            log.warning("component_certificate_pinned", component=self.key, sha256=pin, file=str(self.pin_path),
                        hint="trusted on first use: compare with the certificate of the 6.0 installation (cshis6.crt), or pass --component-ca")
        return aiohttp.Fingerprint(bytes.fromhex(self._pin))


# --------------------------------------------------------------------------- the backend


class ComponentBridge:
    """The card backend of a bridged agent (``nhigw.agent.core.CardBackend``): the official component does the card I/O."""

    available: bool

    def __init__(self, url: str, workstation: str, trust: ComponentTrust, *, poll_s: float = POLL_S, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.workstation = workstation
        self.trust = trust
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.listeners: list[Callable[[], None]] = []
        self.readiness = Readiness()
        self.supervisor = Supervisor(self.readiness)
        self.available = False
        self.problem: str | None = "not answered yet"
        self.polls = 0  # Status polls made, answered or not
        self._states = CardStates()
        self._hpc_id: str | None = None
        self._unanswered = 0  # Status polls in a row that timed out
        self._lock = asyncio.Lock()  # the agent's own calls to the component, one at a time
        self._kick = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self.readiness.add("component", lambda: self.available)

    # ------------------------------------------------------------------ CardBackend

    def card_states(self) -> CardStates:
        """The component's states; ``reader`` (the dashboard's column) says the cards are behind it, or why it cannot serve."""
        if not self.available:
            return CardStates(reader=f"{COMPONENT_LABEL}: {self.problem}")
        reader = self._states.reader
        return self._states.model_copy(update={"reader": f"{reader} ({COMPONENT_LABEL})" if reader else COMPONENT_LABEL})

    def signer_hpc(self) -> str | None:
        """The HPC verified here (for the audit of an HC-signed write), read from ``GET /api/hpc/v1/Basic`` when
        the component's Status first shows it verified (3); an HPC-signed kind carries ``hpcId`` itself."""
        return self._hpc_id if self.available and self._states.hpc == 3 else None

    def tls_expiry(self) -> TlsExpiry | None:
        return None  # the component's certificate is its installer's, not one nhigw renews

    def record(self, function: str, result: int) -> None:
        log.info("bridge_call", function=function, statusCode=result)

    async def sign(self, kind: SignatureKind, service_type: str) -> SignatureResponse:
        try:
            body = await self._json("POST", SIGNATURE_PATHS[kind], SignatureRequest(serviceType=service_type).model_dump_json())
        finally:
            self._kick.set()
        fields = normalise_signature(body)
        missing = [f for f in ("signature", "clientRandom", "samId", "hospitalId") if f not in fields]
        if missing:
            raise _error(Code.COMPONENT_FAILED, f"the component's signature answer lacks {', '.join(missing)}")
        fields.setdefault("serviceType", service_type)
        return SignatureResponse(**fields)

    async def forward(self, method: str, path: str, body: str, timeout_s: float) -> tuple[int, str]:
        """A component call from the gateway: the component's answer as it is (6.0 answers only; else 9416)."""
        try:
            status, raw = await self._request(method, path, body, timeout_s=min(timeout_s, self.timeout_s))
            try:
                status_code(json.loads(raw))
                if status >= 500:
                    raise ValueError(status)
            except ValueError:
                raise _error(Code.COMPONENT_FAILED, f"the component answered {method} {path} with HTTP {status} and no 6.0 answer") from None
            return status, raw.decode("utf-8", "replace")
        except StatusError as err:
            return 200, json.dumps(err.body(), ensure_ascii=False)
        finally:
            self._kick.set()

    # ------------------------------------------------------------------ talking to the component

    async def _request(self, method: str, path: str, body: str | None, *, timeout_s: float | None = None) -> tuple[int, bytes]:
        """One request, under the lock. Refused / reset / untrusted: 9400; no answer in time: 9401."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        async with self._lock:
            try:
                ssl_arg = await asyncio.wait_for(self.trust.ssl_for_request(), timeout.total)
                async with self._http.request(method, self.url + path, data=body.encode() if body else None, headers={"Content-Type": "application/json"},
                                              ssl=ssl_arg, timeout=timeout) as r:
                    return r.status, await r.read()
            except TimeoutError:
                raise _error(Code.WORKSTATION_TIMEOUT, f"the official component did not answer {method} {path} within {timeout.total:g} s") from None
            except aiohttp.ServerFingerprintMismatch:
                if self.problem != "certificate changed":  # logged once, not at every poll
                    log.error("component_certificate_changed", component=self.trust.key, file=str(self.trust.pin_path),
                              hint="if the 6.0 component was reinstalled, check its new certificate, then delete its line from the file or pass --component-ca")
                self._down("certificate changed")
                raise _error(Code.WORKSTATION_OFFLINE, "the official component's certificate is not the one pinned: see the agent's log") from None
            except aiohttp.ClientConnectorCertificateError as exc:
                if self.problem != "certificate not trusted":
                    log.error("component_certificate_untrusted", component=self.trust.key, error=str(exc.certificate_error), hint="see --component-ca")
                self._down("certificate not trusted")
                raise _error(Code.WORKSTATION_OFFLINE, "the official component's certificate is not trusted: see --component-ca") from None
            except (aiohttp.ClientError, OSError) as exc:
                self._down(f"not answering ({type(exc).__name__})")
                raise _error(Code.WORKSTATION_OFFLINE, f"the official component is not answering ({type(exc).__name__})") from None

    async def _json(self, method: str, path: str, body: str | None) -> dict[str, Any]:
        """A 6.0 answer that succeeded (2xx, ``statusCode`` 0); its code otherwise; 9416 if it is not a 6.0 answer."""
        status, raw = await self._request(method, path, body)
        try:
            data = json.loads(raw)
            code = status_code(data)
        except ValueError:
            raise _error(Code.COMPONENT_FAILED, f"the component answered {method} {path} with HTTP {status} and no 6.0 answer") from None
        if not 200 <= status < 300:
            raise _error(Code.COMPONENT_FAILED, f"the component answered {method} {path} with HTTP {status}")
        if code != 0:
            text = _field(data, "message", "messageEn")
            raise StatusError(code, f"official component: {text}" if isinstance(text, str) and text else "official component")
        return data

    # ------------------------------------------------------------------ states

    def _down(self, why: str) -> None:
        if self.available or self.problem != why:
            log.warning("component_unavailable", component=self.url, reason=why)
        was = self.available
        self.available, self.problem = False, why
        if was:
            self._notify()

    def _notify(self) -> None:
        for fn in list(self.listeners):
            with contextlib.suppress(Exception):
                fn()

    async def poll(self) -> None:
        """Read the component's Status once; tell the listeners if anything changed."""
        self.polls += 1
        try:
            status, raw = await self._request("GET", "/api/common/v1/Status", None)
        except StatusError as err:
            if err.code == Code.WORKSTATION_TIMEOUT:
                self._unanswered += 1
                if self._unanswered >= STALL_POLLS:
                    self._down(f"not answering within {self.timeout_s:g} s")
                else:
                    log.warning("component_slow", component=self.url, timeout_s=self.timeout_s)  # slow, not gone: one-call requests get 9401
            return  # refused or untrusted: already marked down
        self._unanswered = 0
        try:
            data = json.loads(raw) if 200 <= status < 300 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._down(f"Status answered HTTP {status} without a 6.0 answer")
            return
        states = parse_states(data)  # whatever its statusCode: the states are what matters here
        changed = not self.available or states != self._states
        if not self.available:
            log.info("component_available", component=self.url)
        self.available, self.problem, self._states = True, None, states
        if states.hpc != 3:
            self._hpc_id = None
        elif self._hpc_id is None:
            with contextlib.suppress(StatusError):
                card = _field(await self._json("GET", "/api/hpc/v1/Basic", None), "cardId")
                self._hpc_id = card if isinstance(card, str) and card else None
        if changed:
            self._notify()

    async def _poll_loop(self) -> None:
        while True:
            self._kick.clear()
            await self.poll()
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_s)

    async def start(self) -> None:
        self.supervisor.start("component-status", self._poll_loop)

    async def stop(self) -> None:
        await self.supervisor.close()
        if self._http is not None:
            await self._http.close()
            self._http = None


class RefusedSessions:
    """Device sessions on a bridged workstation: refused (9406), each call answered at once."""

    def __init__(self, agent: ComponentBridge) -> None:
        self.agent = agent

    def sweep(self) -> int:
        return 0

    async def handle(self, call: SessionCall) -> SessionReply:
        zh, en = message(Code.UNSUPPORTED)
        detail = "this workstation is bridged to the official 6.0 component, which keeps one card state per workstation: it serves no device sessions (use an agent with --no-pcsc)"
        return SessionReply(requestId=call.requestId, workstation=self.agent.workstation, sessionId=call.sessionId, ok=False,
                            error=ErrorBody(statusCode=Code.UNSUPPORTED, message=zh, messageEn=en, detail=detail))
