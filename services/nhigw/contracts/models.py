"""Pydantic models of every HTTP body and bus message that crosses a process boundary.

Field names are the NHI's (seed and public facts section 3.2/3.3): ``serviceType``,
``clientRandom``, ``samId``, ``hospitalId``, ``hcId``, ``hcIdNo``, ``hpcId``, ``hpcIdNo``,
``cardSn``, ``idCardNum`` ...  ROC dates stay ``yyyMMdd`` strings.

The HC card number (12 digits, printed on the card, bytes 0-11 of its basic profile) has one
name per wire, and each wire keeps its own because HIS code reads them (never rename these):

==========================================  ==============  ==========================================
where                                       name            model
==========================================  ==============  ==========================================
6.0 component API (agent, ``/api/hc/v1``)   ``cardId``      ``HcBasicResponse``, ``VirtualHcVerifyResponse``
signature object (every cloud request)      ``hcId``        ``SignatureObject`` (beside ``hcIdNo``)
NHI cloud answers, test-card API            ``cardSn``      ``BasicDataResponse``, ``contracts.cloud.TestCard``
test-card QR request                        ``cardNo``      ``VirtualHcQrRequest`` (the seed: 輸入卡號)
legacy csHis (``csGetCardNo``)              buffer 0-11     ``compat.buffers``
==========================================  ==============  ==========================================

Inside the code the number is ``cardSn`` (the seed's word: ``agent.cards.HcBasic.cardSn``,
``sim.store.Patient.cardSn``); only ``vcard``'s card personalisation (``identities.json``,
a file format users write too, ``--identities``; ``HcIdentity.cardNo``, specs ``hc:<cardNo>``)
still says ``cardNo``. The holder's national ID has a name per wire too: ``idNo`` on the 6.0
API, ``hcIdNo`` in the signature object, ``idCardNum`` in cloud answers.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# serviceType values seen in real HIS code (public facts 3.2); the meaning is the NHI's.
SERVICE_TYPES: dict[str, str] = {
    "01": "read / query",
    "02": "write (treatment, prescription)",
    "03": "sequence number / treatment number / rollback",
    "04": "card content update",
    "06": "test virtual HC apply",
    "30": "IC data upload",
    "91": "MedCloud interaction check",
}

ServiceType = Annotated[str, StringConstraints(pattern=r"^\d{2}$")]


class Model(BaseModel):
    """Base: strict about unknown fields on requests we own, populate by name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OpenModel(BaseModel):
    """Base for bodies that other systems extend (cloud requests carry route-specific extras)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- states


class SamState(IntEnum):
    """SAM column of the seed's tables: 0 none, 1 present, 2 verified with the NHI centre."""

    NONE = 0
    PRESENT = 1
    VERIFIED = 2


class HpcState(IntEnum):
    """HCA column: 0 none, 1 inserted, 2 inserted and SAM verified, 3 PIN / mobile cert verified."""

    NONE = 0
    PRESENT = 1
    READY = 2
    VERIFIED = 3


class HcState(IntEnum):
    """HC column: 0 none, 1 inserted, 2 ready (physical with SAM verified, or virtual verified)."""

    NONE = 0
    PRESENT = 1
    READY = 2


class CardKind(StrEnum):
    """The physical cards a reader can hold: the agent's slots, the virtual cards, the legacy API's card
    of a function. Its values are the wire's words (``CardEvent.kind``, ``vcard`` specs ``hc:<cardNo>``)."""

    SAM = "sam"
    HC = "hc"
    HPC = "hpc"


class SignatureKind(StrEnum):
    SAM = "sam"
    HC = "hc"
    HPC = "hpc"
    HPCHC = "hpchc"


# --------------------------------------------------------------------------- component API (agent)


class StatusCodeBody(OpenModel):
    statusCode: int = 0


class InitialRequest(Model):
    name: str | None = None


class SignatureRequest(Model):
    serviceType: ServiceType = "01"


class CardStatus(Model):
    status: int


class HcCardStatus(CardStatus):
    pinSet: bool | None = None
    pinVerified: bool = False
    virtual: bool = False


class AgentStatus(Model):
    initialized: bool
    device: str | None = None
    reader: str | None = None
    sam: CardStatus
    hpc: CardStatus
    hc: HcCardStatus


class StatusResponse(Model):
    status: AgentStatus
    statusCode: int = 0


class NameResponse(Model):
    names: list[str]
    statusCode: int = 0


class VersionResponse(Model):
    fileVersion: str
    longVersion: str
    shortVersion: str
    location: str
    statusCode: int = 0


class SamBasicResponse(Model):
    samId: str
    hospitalId: str
    hospitalName: str | None = None
    hospitalShortName: str | None = None
    statusCode: int = 0


class HcBasicResponse(Model):
    cardId: str
    idNo: str
    name: str
    birthday: str
    sex: str
    identityStatus: str | None = None
    dateIssue: str | None = None
    statusCode: int = 0


class SignatureObject(OpenModel):
    """What a signature call returns and what the NHI cloud expects in every business body."""

    signature: str
    clientRandom: str
    samId: str
    hospitalId: str
    serviceType: str | None = None
    hcId: str | None = None
    hcIdNo: str | None = None
    hpcId: str | None = None
    hpcIdNo: str | None = None


class SignatureResponse(SignatureObject):
    statusCode: int = 0


class LegacyErrorBody(OpenModel):
    """compat's errors: the legacy ``ERRORCODE`` beside the 6.0 ``statusCode`` and messages.

    Legacy callers read ``ERRORCODE`` (and may get the legacy buffer fields too), so extra
    fields are allowed.
    """

    ERRORCODE: int
    statusCode: int | None = None
    message: str
    messageEn: str | None = None
    detail: str | None = None


class ErrorBody(Model):
    statusCode: int
    message: str
    messageEn: str
    detail: str | None = None


# --------------------------------------------------------------------------- NHI cloud (sim / gateway)


class BasicDataResponse(OpenModel):
    cardSn: str
    name: str
    idCardNum: str
    birthday: str
    sex: str
    dateIssue: str
    cancelTermination: str
    emergentTel: str = ""
    statusCode: int = 0


class RegisterResponse(BasicDataResponse):
    insurerCode: str = ""
    insurerId: str = ""
    cardValidity: str = ""
    treatmentCounter: str = ""
    newbornBirthday: str = ""
    newbornBaby: str = ""


class SamAuthChallengeRequest(Model):
    samId: str
    hospitalId: str


class SamAuthChallengeResponse(Model):
    challenge: str  # base64, 32 bytes
    statusCode: int = 0


class SamAuthVerifyRequest(Model):
    samId: str
    hospitalId: str
    challenge: str
    signature: str  # base64 of the SAM's INTERNAL AUTHENTICATE over sha256(challenge)


class SamAuthVerifyResponse(Model):
    hospitalName: str = ""
    hospitalShortName: str = ""
    serverDateTime: str = ""
    statusCode: int = 0


class SamRegistration(Model):
    """Test-card API: provision a virtual SAM's public key in the simulator."""

    samId: str
    hospitalId: str
    publicKeyPem: str


# --------------------------------------------------------------------------- bus messages


class CardStates(Model):
    initialized: bool = False
    sam: int = 0
    hpc: int = 0
    hc: int = 0
    reader: str | None = None


class TlsExpiry(Model):
    """When the agent's HTTPS certificates end (epoch seconds): the server certificate (renewed by the
    agent itself) and its local CA (renewed only with a new ``nhigw agent trust`` on the workstation)."""

    serverNotAfter: float
    caNotAfter: float


class Presence(Model):
    """Published by an agent on start, on every state change and as a heartbeat."""

    type: Literal["presence"] = "presence"
    workstation: str
    agentId: str
    version: str
    sentAt: float
    interval_s: float
    states: CardStates = Field(default_factory=CardStates)
    leaving: bool = False
    tls: TlsExpiry | None = Field(default=None, description="absent from agents before it, and from an agent serving plain HTTP")
    cloudEnv: Literal["production", "test"] | None = Field(default=None, description="the NHI cloud the agent verifies its SAM against (medvpndc production, medvpndct test); None: not known")


class SignCall(Model):
    """Gateway -> agent: get a signature of ``kind`` for ``serviceType``."""

    type: Literal["sign"] = "sign"
    requestId: str
    workstation: str
    kind: SignatureKind
    serviceType: ServiceType
    replyTo: str
    deadline: float  # epoch seconds; the agent drops calls past it


class SignReply(Model):
    type: Literal["sign-reply"] = "sign-reply"
    requestId: str
    workstation: str
    ok: bool
    signature: SignatureObject | None = None
    error: ErrorBody | None = None
    hpcId: str | None = Field(default=None, description="the HPC verified at this workstation when it signed (for the audit; not part of the signature)")


# --------------------------------------------------------------------------- bus messages: enrolment, sealed envelopes, component calls, queue


class SealedEnvelope(Model):
    """Any agent<->gateway message after enrolment: AES-256-GCM under that workstation's agent key.

    ``payload`` is base64 of ``nonce || ciphertext``; the AAD is ``channel|workstation``, so an
    envelope cannot be replayed onto another channel or claimed for another workstation.
    """

    type: Literal["sealed"] = "sealed"
    workstation: str
    payload: str


class EnrolRequest(Model):
    """Agent -> gateways: "I hold one-time token ``tokenId``; give ``agentId`` at ``workstation`` a key".

    The token itself never crosses the bus: ``tokenId`` is sha256(token)[:32 hex] and ``mac``
    is HMAC-SHA256(token, workstation|agentId|nonce).
    """

    type: Literal["enrol"] = "enrol"
    workstation: str
    agentId: str
    tokenId: str
    nonce: str
    mac: str


class EnrolReply(Model):
    """Gateway -> agent: the new agent key, AES-GCM-wrapped under HKDF(token, nonce)."""

    type: Literal["enrol-reply"] = "enrol-reply"
    workstation: str
    agentId: str
    ok: bool
    wrappedKey: str | None = None
    error: ErrorBody | None = None


class ComponentCall(Model):
    """Gateway -> agent: run one 6.0 component API call (``/api/{common,sam,hpc,hc}/v1/...``) locally."""

    type: Literal["component"] = "component"
    requestId: str
    workstation: str
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    body: str = ""
    replyTo: str
    deadline: float


class ComponentReply(Model):
    type: Literal["component-reply"] = "component-reply"
    requestId: str
    workstation: str
    httpStatus: int
    body: str


class QueuedJob(Model):
    """One business request in the gateway's work stream (Redis Stream entry field ``job``)."""

    type: Literal["job"] = "job"
    requestId: str
    idempotencyKey: str
    answerKey: str
    path: str
    body: str
    workstation: str | None = None
    client: str
    hospitalId: str | None = None
    write: bool
    enqueuedAt: float
    deadline: float
    deviceSession: str | None = None  # one-call for a device session (``nhigw.gateway.sessions``): its public id
    origin: str | None = None  # the gateway replica that admitted it (gets ``done`` when another replica runs it)
    rerunOf: str | None = None  # the dead letter an operator put back (its runs are kept in the request's trail)


class JobAnswer(Model):
    """What a worker stores for a finished job, for the idempotency window (and publishes on ``done``)."""

    type: Literal["answer"] = "answer"
    requestId: str
    idempotencyKey: str
    httpStatus: int
    body: str
    attempts: int = 0
    instance: str = ""


# --------------------------------------------------------------------------- component API (agent)

Pin = Annotated[str, StringConstraints(pattern=r"^\d{4,8}$")]


class PinRequest(Model):
    """``POST /api/hc/v1/Pin`` (verify) and ``POST /api/hpc/v1/Verification/Hpc``."""

    pin: Pin


class NewPinRequest(Model):
    """``PUT /api/hc/v1/Pin`` (set / change) and ``POST /api/hpc/v1/Pin`` (change)."""

    newPin: Pin


class PukRequest(Model):
    """``PUT /api/hpc/v1/Pin``: unlock a blocked HPC with its PUK and set a new PIN."""

    puk: Annotated[str, StringConstraints(pattern=r"^\d{8}$")]
    newPin: Pin


class TokenRequest(Model):
    """A virtual HC QR code (or transfer code), opaque to the agent."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class MobileHcaRequest(OpenModel):
    """``POST /api/hpc/v1/Verification/MobileHca`` (seed: 資料定義). Extra fields from the phone app are ignored.

    ``signature`` is base64 of the phone's signature over ``{certificate serial, decimal}|{idNo}|{loginDateTime}``;
    ``signatureCertificate`` is base64 DER (or PEM) of the phone's certificate. The seed's example carries
    the two the other way round, so the agent accepts them either way (whichever parses as a certificate).
    """

    idNo: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    loginDateTime: str
    signatureCertificate: str
    signature: str
    birthday: str | None = None
    cName: str | None = None
    eName: str | None = None
    hospitalId: str | None = None
    medId: str | None = None


class HpcBasicResponse(Model):
    cardId: str
    idNo: str
    cName: str
    eName: str
    mobile: bool = False
    statusCode: int = 0


class HcPinResponse(Model):
    """``GET /api/hc/v1/Pin``: is a PIN set on the HC (csISSetPIN), and is it verified."""

    pinSet: bool
    pinVerified: bool
    statusCode: int = 0


class RecordEntry(Model):
    function: str
    result: str  # the statusCode, 4 digits as the console shows it ("0000", "1301")
    dateTime: str  # ISO 8601, UTC


class RecordResponse(Model):
    records: list[RecordEntry]  # newest first
    statusCode: int = 0


class ServerDateTimeResponse(Model):
    serverDateTime: str  # ROC yyyMMddHHmmss, Taiwan time
    source: Literal["reader", "dc"] = "reader"
    statusCode: int = 0


class VirtualHcBasic(Model):
    """``POST /api/hc/v1/VirtualHc/ReadBasic`` (seed table): ``dataIssue`` is null for a virtual HC.

    Served with nulls kept (``dataIssue`` and ``dateIssue`` both null) so HIS code that reads either spelling works.
    """

    cardId: str
    idNo: str
    name: str
    birthday: str
    sex: str
    dataIssue: str | None = None
    dateIssue: str | None = None
    identityStatus: str | None = None
    statusCode: int = 0


class VirtualHcExportResponse(Model):
    """``GET /api/hc/v1/VirtualHc/Import``: the transfer code of this workstation's virtual HC (which is logged out here)."""

    token: str
    expiresAt: float
    statusCode: int = 0


class CardEvent(Model):
    """What the agent tells its observers (``Agent.subscribe``): a card came or went, or a state changed."""

    type: Literal["inserted", "removed", "state"]
    kind: str | None = None  # sam | hpc | hc | cloud-sam | mobile-hca | virtual-hc
    reader: str | None = None
    states: CardStates
    at: float


# --------------------------------------------------------------------------- agent settings


class AgentSettings(Model):
    """The agent's persisted settings (``<data dir>/settings.json``)."""

    defaultReader: str | None = None
    corsHosts: list[str] = Field(default_factory=lambda: ["*.nhi.gov.tw", "nhi.gov.tw"])
    lastDevice: str | None = None


class AgentSettingsResponse(AgentSettings):
    tls: TlsExpiry | None = Field(default=None, description="the agent's HTTPS certificates (absent when it serves plain HTTP)")
    statusCode: int = 0


class ReaderSettingRequest(Model):
    reader: str | None = None  # null clears the default


class CorsSettingRequest(Model):
    hosts: list[Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9*.\-]+$")]]


class CloudSamFile(Model):
    """The cloud SAM file (format ``nhigw-cloud-sam-1``, proto/dc-protocol.md), as issued by the test-card API."""

    format: Literal["nhigw-cloud-sam-1"] = "nhigw-cloud-sam-1"
    samId: Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
    hospitalId: Annotated[str, StringConstraints(pattern=r"^\d{10}$")]
    hospitalName: str = ""
    hospitalShortName: str = ""
    privateKeyPem: str
    issuedAt: str = ""
    environment: Literal["test", "production"] = "test"


class CloudSamInfo(Model):
    samId: str
    hospitalId: str
    hospitalName: str = ""
    hospitalShortName: str = ""
    comPort: str | None = None
    usable: bool = True
    error: str | None = None


class CloudSamListResponse(Model):
    cloudSams: list[CloudSamInfo]
    statusCode: int = 0


# --------------------------------------------------------------------------- DC / test-card API


class CloudSamIssueRequest(Model):
    """Test-card API: issue a cloud SAM file for a test institution (the simulator registers its public key)."""

    samId: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] | None = None
    hospitalId: Annotated[str, StringConstraints(pattern=r"^\d{10}$")]
    hospitalName: str = ""
    hospitalShortName: str = ""


class VirtualHcQrRequest(Model):
    """Test-card API (seed: 提供API取得虛擬健保卡QRCode, 輸入卡號、生日): a QR token for a test patient."""

    cardNo: str | None = None
    idNo: str | None = None
    birthday: str | None = None
    ttl_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    hasPin: bool = Field(False, description="是否有PIN: the card holder has set a PIN on the card")
    verifyPin: bool = Field(False, description="是否驗PIN: the holder entered it when opening the virtual card in the app (only with hasPin)")


class VirtualHcQrResponse(Model):
    token: str
    expiresAt: float
    statusCode: int = 0


class DcSamSigned(Model):
    """A DC request authenticated by the SAM: ``signature`` over ``signing.dc_message(...)`` with a fresh ``clientRandom``."""

    samId: str
    hospitalId: str
    clientRandom: str
    signature: str


class VirtualHcVerifyRequest(DcSamSigned):
    token: str
    purpose: Literal["verify", "read", "import"] = "verify"


class VirtualHcVerifyResponse(Model):
    cardId: str
    idNo: str
    name: str
    birthday: str
    sex: str
    identityStatus: str | None = None
    sessionId: str
    pinSet: bool = False
    pinVerified: bool = False
    statusCode: int = 0


class VirtualHcTransferRequest(DcSamSigned):
    sessionId: str


class DcServerDateTimeResponse(Model):
    serverDateTime: str
    statusCode: int = 0


class OrganDonateRequest(Model):
    """``PUT /api/hc/v1/OrganDonate``: write the organ donation / hospice mark to a physical HC (seed: 仍提供實體卡註記功能)."""

    organDonate: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]$")]


class OrganDonateResponse(Model):
    organDonate: str
    statusCode: int = 0


# --------------------------------------------------------------------------- device sessions (nhigw.agent.sessions, nhigw.gateway.sessions)

SessionOp = Literal["open", "verify", "import", "export", "mobile-hca", "hc-logout", "hpc-logout", "sign", "status", "close"]
DeviceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class SessionStates(Model):
    """One device session's card states on its serving agent (the seed's columns SAM / HCA / HC)."""

    sessionId: str
    hospitalId: str | None = None
    sam: int = 0
    hpc: int = 0
    hc: int = 0
    virtual: bool = False
    mobile: bool = False
    expiresAt: float


class SessionCall(Model):
    """Gateway -> the agent serving device sessions: one operation on one session's cards (sealed)."""

    type: Literal["session"] = "session"
    requestId: str
    workstation: str
    sessionId: str
    op: SessionOp
    device: str | None = None
    hospitalId: str | None = None
    idle_s: float | None = None
    token: str | None = None  # QR token (verify) or transfer code (import); never logged
    mobileHca: MobileHcaRequest | None = None
    kind: SignatureKind | None = None
    serviceType: ServiceType | None = None
    replyTo: str
    deadline: float


class SessionReply(Model):
    type: Literal["session-reply"] = "session-reply"
    requestId: str
    workstation: str
    sessionId: str
    ok: bool
    states: SessionStates | None = None
    signature: SignatureObject | None = None
    transfer: VirtualHcExportResponse | None = None
    error: ErrorBody | None = None
    hpcId: str | None = Field(default=None, description="with a signature: the HCA logged in to this session (for the audit; not part of the signature)")


class DeviceSessionOpenRequest(Model):
    """``POST /api/sessions``: a device (tablet, phone, kiosk) asks for a session; ``workstation`` picks the serving agent."""

    device: DeviceName
    workstation: str | None = None
    hospitalId: str | None = None
    idle_s: float | None = Field(None, gt=0, le=86400)  # shorter than the gateway's idle timeout, never longer


class DeviceSessionResponse(Model):
    """The session's public id, where it is served and until when; ``token`` (the ``X-Device-Session`` value) only at open."""

    sessionId: str
    token: str | None = None
    device: str
    workstation: str
    agentId: str | None = None
    expiresAt: float
    states: SessionStates | None = None
    statusCode: int = 0


class DeviceSessionRecord(Model):
    """What the gateway keeps of a session (sealed with the gateway key in its KV): no card data, no ID number."""

    sessionId: str
    tokenHash: str
    device: str
    hospitalId: str
    client: str
    workstation: str
    agentId: str | None = None
    idle_s: float
    openedAt: float
    expiresAt: float


class DeadLetterResendRequest(Model):
    """``POST /api/ops/dead-letters/{id}/resend``: the operator checked that the write did not land."""

    reconciled: bool = Field(description="true: checked with the reconciliation query (the dead letter's `reconcile`) that the write did not land")
    note: str = Field("", max_length=500, description="what the operator checked (kept in the audit record)")


class DeadLetterBulkRetryRequest(Model):
    """``POST /api/ops/dead-letters/bulk-retry``: put back at most ``max`` dead letters, oldest first."""

    max: int = Field(ge=1, le=1000, description="retry at most this many (the operator's bound)")
    route: str | None = Field(None, max_length=200, description="only dead letters of this route (e.g. BasicData/Query)")
    workstation: str | None = Field(None, max_length=100, description="only dead letters of this workstation")


class RequestSearch(Model):
    """``POST /api/ops/requests/search``: the request browser's filters (a POST, so a typed national ID
    never sits in a URL, a proxy log or the browser's history)."""

    patient: str | None = Field(None, max_length=20, description="the patient's full national ID (or resident certificate number) as typed; found through the keyed hash kept with each record")
    workstation: str | None = Field(None, max_length=100)
    route: str | None = Field(None, max_length=200, description="a part of the route, e.g. BasicData/")
    outcome: Literal["ok", "fail"] | None = None
    since: str | None = Field(None, max_length=40, description="ISO date or date-time (inclusive; no zone: UTC)")
    until: str | None = Field(None, max_length=40, description="ISO date or date-time (exclusive)")
    limit: int = Field(100, ge=1, le=500)


class ClientCreateRequest(Model):
    """``POST /api/admin/clients``: an HIS client (no role) or an operator key."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.@-]+$")
    hospitalId: str | None = Field(None, max_length=20)
    workstations: list[str] = Field(default_factory=lambda: ["*"], max_length=100)
    role: Literal["viewer", "operator", "admin"] | None = None
    allHospitals: bool = False


class EnrolTokenRequest(Model):
    """``POST /api/admin/enrol-tokens``: a one-time token for a workstation's agent."""

    workstation: str = Field(min_length=1, max_length=100, pattern=r"^[\w.-]+$")
    ttl_s: float = Field(24 * 3600.0, gt=0, le=7 * 24 * 3600.0)


class DeadLetterBulkRetryResponse(Model):
    """What a bulk retry did: ``retried`` (dead letter id -> its new queue entry), ``needDecision`` (writes
    that may have landed: never in a bulk retry; each needs ``/resend`` with ``reconciled``), ``unreadable``."""

    retried: dict[str, str] = Field(default_factory=dict)
    needDecision: list[str] = Field(default_factory=list)
    unreadable: list[str] = Field(default_factory=list)
    statusCode: int = 0
