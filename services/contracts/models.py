"""Pydantic models of every HTTP body and bus message that crosses a process boundary.

Field names are the NHI's (seed and public facts section 3.2/3.3): ``serviceType``,
``clientRandom``, ``samId``, ``hospitalId``, ``hcId``, ``hcIdNo``, ``hpcId``, ``hpcIdNo``,
``cardSn``, ``idCardNum`` ...  ROC dates stay ``yyyMMdd`` strings.
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
