"""Request and response bodies of every NHI cloud business route (``/api/v1/...``) and of the
simulator's test-card and admin API (``/test/v1/...``).

Field names: where public HIS code shows them (public facts section 3.3) they are used
as is (``treatmentDateTime``, ``sequenceNumber``, ``treatmentNumber``, ``mainCode``,
``outpatientFee`` ...). Where no public source gives them (PreventData, PregnantData,
Inoculate, AllergicMedicines, CumulativeData/Fee, Insurance/Quick, Icd, UploadData), they
are derived from the legacy csHis buffer layouts (public facts 2.2) and the seed, in the
same camelCase style, and documented here; ``proto/openapi/sim.json`` is generated from
these models.

Every request is the signature object (``SignatureObject``) plus the route's extras.
Lists are in reverse date order (seed: 卡片資料以日期倒排); list queries take
``startPosition`` / ``endPosition`` (1 = newest, inclusive; no ``endPosition`` = to the
end) and answer ``recordCount`` (the number of records the patient has in total).
ROC dates are ``yyyMMdd`` (7), ROC date-times ``yyyMMddHHmmss`` (13).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from nhigw.contracts import models as m
from nhigw.contracts.models import Model, OpenModel, SignatureObject


def _real_roc(value: str) -> str:
    """A ROC date / date-time that exists (month 13 or 30 February are refused: 1706)."""
    try:
        hh, mm, ss = ([int(value[i : i + 2]) for i in range(7, min(len(value), 13), 2)] + [0, 0, 0])[:3]
        dt.datetime(int(value[:3]) + 1911, int(value[3:5]), int(value[5:7]), hh, mm, ss)
    except ValueError as exc:
        raise ValueError("not a real ROC date / date-time") from exc
    return value


def _quantity(value: str) -> str:
    """總量 in 6.0 JSON: a decimal string, 0 .. 99999.99, at most 2 decimals ("42.00", "0000001" = 1)."""
    if value and (value.count(".") > 1 or int(value.split(".")[0] or "0") > 99_999):
        raise ValueError("totalQuantity is out of range (0 .. 99999.99)")
    return value


Quantity = Annotated[str, StringConstraints(pattern=r"^(\d{1,7}(\.\d{1,2})?)?$"), AfterValidator(_quantity)]

RocDate = Annotated[str, StringConstraints(pattern=r"^\d{7}$"), AfterValidator(_real_roc)]
RocDateTime = Annotated[str, StringConstraints(pattern=r"^\d{13}$"), AfterValidator(_real_roc)]


class CloudResponse(OpenModel):
    statusCode: int = 0


# --------------------------------------------------------------------------- requests


class ListQueryRequest(SignatureObject):
    startPosition: int = Field(1, ge=1, description="1 = the newest record")
    endPosition: int | None = Field(None, ge=1, description="inclusive; omitted = up to the oldest record")


class FormatListQueryRequest(ListQueryRequest):
    format: str = "0"


class PreventWriteRequest(SignatureObject):
    preventItem: str = Field(pattern=r"^[0-9A-Z]{2}$", description="預防保健項目代碼 (2)")
    checkDate: RocDate


class PregnantWriteRequest(SignatureObject):
    checkItem: str = Field(pattern=r"^[0-9A-Z]{2}$", description="產前檢查項目代碼 (2)")
    checkDate: RocDate


class InoculateWriteRequest(SignatureObject):
    item: str = Field(min_length=1, max_length=2, description="預防接種項目代碼")
    inoculateDate: RocDate
    lotNumber: str = Field("", max_length=10, description="疫苗批號")


class EmergentTelWriteRequest(SignatureObject):
    tel: str = Field(max_length=14, pattern=r"^[0-9#\-() ]*$")


class NewBornWriteRequest(SignatureObject):
    newbornBirthday: RocDate
    newbornBaby: str = Field(pattern=r"^[1-9]$", description="胞胎註記 (birth order / multiple-birth mark)")


class AllergicWriteRequest(SignatureObject):
    medicine: str = Field(min_length=1, max_length=40, description="過敏藥物名稱")


class AllergicWriteByIndexRequest(AllergicWriteRequest):
    index: int = Field(ge=1, le=3, description="card slot 1..3")


class Fees(BaseModel):
    outpatientFee: int = Field(0, ge=0, le=99_999_999)
    costFee: int = Field(0, ge=0, le=99_999_999, description="門診部分負擔")
    inpatientFee: int = Field(0, ge=0, le=99_999_999)
    inpatient30Fee: int = Field(0, ge=0, le=9_999_999, description="住院部分負擔 ≤30/180 d")
    inpatient180Fee: int = Field(0, ge=0, le=9_999_999, description="住院部分負擔 ≥31/181 d")


class Diagnoses(BaseModel):
    mainCode: str = Field(min_length=1, max_length=7, description="主診斷 (ICD-10-CM, no dot)")
    subCode1: str = Field("", max_length=7)
    subCode2: str = Field("", max_length=7)
    subCode3: str = Field("", max_length=7)
    subCode4: str = Field("", max_length=7)
    subCode5: str = Field("", max_length=7)


class TreatmentWriteCodeRequest(SignatureObject, Diagnoses):
    treatmentDateTime: RocDateTime
    afterCheck: Literal["1", "2"] = "1"


class TreatmentWriteCodeFeeRequest(TreatmentWriteCodeRequest, Fees):
    pass


class TreatmentWriteFeeRequest(SignatureObject, Fees):
    treatmentDateTime: RocDateTime
    afterCheck: Literal["1", "2"] = "1"


class PrescriptionItem(Model):
    treatmentDateTime: RocDateTime
    treatmentItem: Literal["1", "2", "3", "4"] = Field(description="醫令類別: 1 drug, 2 long-term drug, 3 treatment, 4 special material")
    treatmentItemCode: str = Field(min_length=1, max_length=12)
    treatmentPosition: str = Field("", max_length=6)
    usage: str = Field("", max_length=18)
    days: str = Field("", pattern=r"^\d{0,2}$")
    totalQuantity: Quantity = Field(
        "", description='總量, a decimal string as 6.0 HIS code sends it ("42.00"; "0000001" means 1), at most 99999.99; '
        "the 7-digit 5 integer + 2 decimal form (1234525 = 12345.25) is the csHis / VHC SDK buffers' (compat converts)",
    )
    deliveryNotes: str = Field("01", pattern=r"^0[1-3]$", description="01 self-dispensed, 02 handed over, 03 self-performed")


class PrescriptionWriteRequest(SignatureObject):
    treatmentDateTime: RocDateTime
    prescriptions: list[PrescriptionItem] = Field(min_length=1, max_length=60)


class SeqNextRequest(SignatureObject):
    treatmentItem: str = Field("01", pattern=r"^[0-9A-Z]{2}$", description="就醫類別 (HC健8-1): 01-09 take a sequence number and a visit")
    babyTreatment: str = Field("", max_length=1, description="新生兒就醫註記 (HC健8-2)")
    afterCheck: Literal["1", "2"] = Field("1", description="1 normal, 2 補卡 (card presented later)")


class RollbackRequest(SignatureObject):
    treatmentDateTime: RocDateTime


class TreatmentNumberCardRequest(SignatureObject):
    treatmentDateTime: RocDateTime


class TreatmentNumberNoCardRequest(SignatureObject):
    patientId: str = Field(pattern=r"^[A-Z][0-9A-Z]\d{8}$")
    treatmentDateTime: RocDateTime | None = None


class UploadRequest(SignatureObject):
    sType: Literal["A1", "A2", "ZZ"] = Field(description="A1 formal, A2 pre-check, ZZ interface test")
    sPatData: str = Field(min_length=1, description="base64 of the IC-data XML")
    sUploadDT: Annotated[str, AfterValidator(_real_roc)] = Field(pattern=r"^\d{13}(\d{3})?$", description="ROC date-time the upload was signed (+ optional ms); older than 1 h -> 8203")


class VnhiUploadRequest(OpenModel):
    """``POST /V2000/VNHI_Upload`` (public facts 3.3): the SAM signature (serviceType 30) under the upload host's own names."""

    sSamId: str = Field(min_length=1, max_length=12)
    sHospId: str = Field(min_length=1, max_length=10)
    sClientRandom: str = Field(min_length=1)
    sSignature: str = Field(min_length=1)
    sType: str = Field(description="A1 formal, A2 pre-check, ZZ interface test; anything else RtnCode 5003")
    sPatData: str = Field(min_length=1, description="base64 of the IC-data XML")
    sUploadDT: Annotated[str, AfterValidator(_real_roc)] = Field(pattern=r"^\d{13}(\d{3})?$", description="ROC date-time the upload was signed + 3 digits of ms; older than 1 h -> RtnCode 8203")


# The upload host's RtnCode table (public facts 3.3, pyMedical ``classes/cshisx_win32.py``).
UPLOAD_RTN: dict[str, tuple[str, str]] = {
    "0000": ("上傳成功", "accepted"),
    "5003": ("上傳類別錯誤", "wrong upload type (sType)"),
    "5004": ("安全模組與院所代碼不符", "the SAM does not belong to this hospital"),
    "8201": ("驗證服務錯誤", "verification service error"),
    "8202": ("驗證服務錯誤", "verification service error"),
    "8203": ("簽章已逾 1 小時", "signature older than one hour"),
    "8205": ("安全模組已註銷", "SAM cancelled"),
    "9002": ("驗證失敗", "signature verification failed"),
    "9005": ("院所代碼不存在", "unknown hospital ID"),
    "9999": ("其他錯誤", "other error"),
}


class IcdEncodeRequest(SignatureObject):
    icdCode: str = Field(pattern=r"^[A-Za-z][0-9A-Za-z.]{1,7}$")


class IcdDecodeRequest(SignatureObject):
    encodedCode: str = Field(pattern=r"^[A-Za-z][0-9A-Za-z]{1,6}$")


class TeleRequestTokenRequest(SignatureObject):
    patientId: str = Field(pattern=r"^[A-Z][0-9A-Z]\d{8}$")


class TeleResponseTokenRequest(SignatureObject):
    accessToken: str = Field(min_length=1)


# --------------------------------------------------------------------------- responses


class ListResponse(CloudResponse):
    recordCount: int = 0


class Register2Response(CloudResponse):
    cardValidity: str
    treatmentCounter: str


class EmergentTelResponse(CloudResponse):
    tel: str = ""


class PreventiveCare(Model):
    preventItem: str
    checkDate: str
    hospitalId: str


class PreventQueryResponse(ListResponse):
    preventiveCares: list[PreventiveCare] = []


class PregnantCheck(Model):
    checkItem: str
    checkDate: str
    hospitalId: str


class PregnantQueryResponse(ListResponse):
    pregnantChecks: list[PregnantCheck] = []


class PregnantDeleteResponse(CloudResponse):
    deleted: int = 0


class Inoculation(Model):
    item: str
    inoculateDate: str
    hospitalId: str
    lotNumber: str = ""


class InoculateQueryResponse(ListResponse):
    inoculations: list[Inoculation] = []


class HcContentUpdateResponse(CloudResponse):
    cardValidity: str
    treatmentCounter: str


class OrganDonateQueryResponse(CloudResponse):
    organDonate: str = Field("", description="'1' agrees to organ donation, '' no mark")
    palliativeCare: str = Field("", description="'1' hospice / palliative-care consent, '' no mark")


class AllergicMedicine(Model):
    index: int
    medicine: str
    writeDateTime: str
    hospitalId: str


class AllergicQueryResponse(ListResponse):
    allergicMedicines: list[AllergicMedicine] = []


class CriticalIllnessPeriod(Model):
    validityStart: str
    validityEnd: str


class CriticalIllness(CriticalIllnessPeriod):
    ciCode: str


class TreatmentNoNeedHpc(Fees):
    treatmentItem: str
    babyTreatment: str = ""
    treatDateTime: str
    afterCheck: str
    hospitalVisit: str = Field(description="就醫序號 (W001..)")
    hospitalId: str


class TreatmentNoNeedHpcResponse(ListResponse):
    criticalIllnesses: list[CriticalIllnessPeriod] = []
    treatments: list[TreatmentNoNeedHpc] = []


class TreatmentNeedHpc(Model):
    treatDateTime: str
    mainCode: str = ""
    subCode1: str = ""
    subCode2: str = ""
    subCode3: str = ""
    subCode4: str = ""
    subCode5: str = ""


class TreatmentNeedHpcResponse(ListResponse):
    criticalIllnesses: list[CriticalIllness] = []
    treatments: list[TreatmentNeedHpc] = []


class TreatmentWriteResponse(CloudResponse):
    treatmentDateTime: str
    hpcIdNo: str | None = Field(None, description="the writing doctor's ID (legacy pBufferDocID)")


class CumulativeDataResponse(CloudResponse):
    year: str = Field(description="ROC year counted")
    outpatientTimes: int
    inpatientTimes: int
    costFeeTotal: int = Field(description="門住診部分負擔累計")
    inpatient30FeeTotal: int
    inpatient180FeeTotal: int


class CumulativeFeeResponse(CloudResponse):
    year: str
    outpatientFeeTotal: int
    inpatientFeeTotal: int


class OutpatientPrescription(Model):
    treatmentDateTime: str
    treatmentItem: str
    treatmentItemCode: str
    treatmentPosition: str = ""
    usage: str = ""
    days: str = ""
    totalQuantity: str = ""
    deliveryNotes: str = ""
    hospitalId: str = ""


class PrescriptionQueryResponse(ListResponse):
    outpatientPrescriptions: list[OutpatientPrescription] = []


class LongTermPrescriptionResponse(ListResponse):
    longTermPrescriptions: list[OutpatientPrescription] = []


class ImportantOrderResponse(ListResponse):
    importantOrders: list[OutpatientPrescription] = []


class PrescriptionWriteResponse(CloudResponse):
    signatureItems: list[str] = Field(description="base64, one per prescription item")
    hexSignatureItems: list[str] = Field(description="hex, one per prescription item (40 hex chars each)")


class CriticalIllnessResponse(CloudResponse):
    criticalIllnesses: list[CriticalIllness] = []


class LastSeqResponse(CloudResponse):
    treatmentDateTime: str = ""
    sequenceNumber: str = ""
    hospitalId: str = ""


class SeqNextResponse(CloudResponse):
    treatmentDateTime: str
    sequenceNumber: str = Field(description="就醫序號: W001..W999 for 就醫類別 01-09; '' for the others (不取卡序)")
    hospitalId: str
    signature: str = Field(description="安全簽章 (base64, 256 bytes)")
    samId: str
    isSameDay: bool
    treatmentNumber: str = Field(description="就醫識別碼 (20)")


class RollbackResponse(CloudResponse):
    treatmentDateTime: str
    sequenceNumber: str


class TreatmentNumberResponse(CloudResponse):
    treatmentNumber: str


class TreatmentNumberNoCardResponse(CloudResponse):
    treatmentDateTime: str
    hospitalId: str
    treatmentNumber: str


class InsuranceQuickResponse(CloudResponse):
    insuranceStatus: str = Field(description="'1' insured (在保), '2' not insured, '3' suspended / in arrears")
    cardValidity: str = ""
    treatmentCounter: str = ""


class UploadResponse(CloudResponse):
    RtnCode: str = "0000"
    Opcode: str = Field(description="upload time 14 · receive number 6 · hospital ID 10 · SAM ID 12")
    samId: str
    hospitalId: str
    uploadDateTime: str = Field(description="yyyyMMddHHmmss")
    receiveDateTime: str = Field(description="yyyyMMddHHmmss")


class VnhiUploadResponse(Model):
    """What the upload host answers (HTTP 200): ``RtnCode`` (``UPLOAD_RTN``) and, when accepted, ``Opcode``."""

    RtnCode: str = Field(description="0000 accepted; the others: UPLOAD_RTN")
    Opcode: str = Field("", description="upload time 14 · receive number 6 · hospital ID 10 · SAM ID 12 (empty when refused)")
    message: str = ""
    messageEn: str = ""
    detail: str | None = None

    @classmethod
    def of(cls, rtn: str, opcode: str = "", detail: str | None = None) -> VnhiUploadResponse:
        zh, en = UPLOAD_RTN.get(rtn, UPLOAD_RTN["9999"])
        return cls(RtnCode=rtn, Opcode=opcode, message=zh, messageEn=en, detail=detail)


class IcdEncodeResponse(CloudResponse):
    encodedCode: str


class IcdDecodeResponse(CloudResponse):
    icdCode: str


class TeleRequestTokenResponse(CloudResponse):
    accessToken: str


class TeleResponseTokenResponse(CloudResponse):
    virtualCardToken: str


# --------------------------------------------------------------------------- test-card and admin API (sim only)


class ApplyVirtualHcRequest(SignatureObject):
    """``/test/v1/ApplyVirtualHc/Apply`` (SAM signature, serviceType 06): at most 10 test cards per institution."""

    sex: Literal["M", "F"]
    birthday: RocDate
    isForeigner: bool = False
    name: str | None = Field(None, max_length=10)


class TestCard(Model):
    """A virtual test card (虛擬健保卡測試卡) as Apply and List answer it."""

    cardSn: str
    idCardNum: str
    name: str
    birthday: str
    sex: str
    isForeigner: bool


class ApplyVirtualHcResponse(TestCard, CloudResponse):
    pass


class TestCardListRequest(SignatureObject):
    """``/test/v1/ApplyVirtualHc/List`` (SAM signature, serviceType 06): the calling institution's test cards."""


class TestCardList(CloudResponse):
    cards: list[TestCard] = Field(default_factory=list)
    remaining: int = Field(description="how many more test cards this institution may apply for (at most 10 at a time)")


class TestCardDeleteRequest(SignatureObject):
    """``/test/v1/ApplyVirtualHc/Delete`` (SAM signature, serviceType 06): give back one of the institution's test cards."""

    cardSn: str = Field(pattern=r"^\d{12}$")
    birthday: RocDate


class TestCardRef(Model):
    cardSn: str = Field(pattern=r"^\d{12}$")
    birthday: RocDate


class TestCriticalIllnessRequest(TestCardRef):
    criticalIllnesses: list[CriticalIllness] = Field(max_length=6)


class TestIdentityRequest(TestCardRef):
    identityStatus: str = Field(pattern=r"^[0-9]$", description="身分註記: 1 low-income, 2 veteran, 3 primary care, 4 low-middle income, 8 disaster victim")


class TestOrganDonateRequest(TestCardRef):
    organDonate: Literal["", "1"] = ""
    palliativeCare: Literal["", "1"] = ""


class Fault(Model):
    """One fault rule (``POST /test/v1/Faults``). Rules are tried in order; the first that matches fires.

    ``route``: a business route (``SequelNumber/Next``) or None for every business call.
    ``times``: fire on the next N matching calls only (deterministic), then the rule is spent;
    None = until cleared, each call firing with probability ``error_rate`` (``seed`` makes the
    draws repeatable). What firing does: wait ``latency_ms``; then if ``reset_connection`` the
    TCP connection is reset (no HTTP answer); else if ``status`` is set the call answers that
    HTTP status with ``statusCode`` (default 9402); else (latency only) the call proceeds.
    ``phase``: ``before`` (default) the call is not executed when the rule fails it; ``after``
    the call is executed (a write is written, and kept under its ``Idempotency-Key``) and then
    its answer is replaced by the failure: the "write outcome unknown" case.
    """

    route: str | None = None
    latency_ms: int = Field(0, ge=0, le=600_000)
    error_rate: float = Field(1.0, ge=0.0, le=1.0)
    status: int | None = Field(None, ge=400, le=599)
    statusCode: int = 9402
    reset_connection: bool = False
    times: int | None = Field(None, ge=1)
    seed: int | None = None
    phase: Literal["before", "after"] = "before"


class FaultList(CloudResponse):
    faults: list[Fault] = []


class ClockRequest(Model):
    offset_s: float = Field(description="shift the simulator's clock by this many seconds (tests of 24 h / 1 h rules)")


class StatsResponse(CloudResponse):
    calls: dict[str, int] = Field(description="business calls per route (after the fault layer)")
    writes: dict[str, int] = Field(description="executed writes per route (a replayed idempotent answer is not a write)")
    writesByKey: dict[str, int] = Field(description="executed writes per Idempotency-Key")
    replays: dict[str, int] = Field(description="answers served from the idempotency cache, per key (only with --dedupe-writes)")
    writesByContent: dict[str, int] = Field(default_factory=dict, description="executed writes per content (a hash of route, institution, patient and business fields; not the signature or key)")
    writesTwice: list[str] = Field(default_factory=list, description="content hashes executed more than once")


class ConsoleCheck(Model):
    """One check the simulator made of a request's signature (``sim/auth.py``), passed or failed."""

    name: str = Field(description="serviceType, sam, contract, cardIds, challenge (SAM verification), signature or clientRandom")
    ok: bool
    detail: str = ""


class ConsoleRequest(Model):
    """A request the simulator received, as its developer console shows it: the decoded bodies
    masked (national IDs cut to 3 + 2 characters, signatures to 8, tokens and keys hidden)."""

    seq: int
    at: str = Field(description="when it arrived, ISO 8601 in Taiwan time (the simulator's clock)")
    method: str
    path: str
    status: int = Field(description="HTTP status of the answer (0: the connection was reset, no answer)")
    statusCode: int | str | None = Field(None, description="the answer's statusCode (RtnCode for the upload host)")
    idempotencyKey: str | None = None
    ms: float = Field(description="time to answer, milliseconds")
    body: dict[str, Any] | list[Any] | str | None = None
    answer: dict[str, Any] | list[Any] | str | None = None
    checks: list[ConsoleCheck] = Field(default_factory=list)


class ConsoleRequests(CloudResponse):
    requests: list[ConsoleRequest] = Field(default_factory=list, description="oldest first")
    max: int = Field(description="how many of the last requests the simulator keeps")


class ConsoleVisit(Model):
    treatDateTime: str
    sequenceNumber: str
    treatmentItem: str
    rolledBack: bool
    mainCode: str = ""


class ConsolePatient(Model):
    cardSn: str
    name: str
    idCardNum: str = Field(description="masked (3 + 2 characters)")
    birthday: str
    sex: str
    insuranceStatus: str
    cardValidity: str
    treatmentCounter: str
    testCardOf: str | None = None
    visits: list[ConsoleVisit] = Field(default_factory=list, description="at the chosen institution, newest first (the last 5)")


class ConsoleInstitution(Model):
    hospitalId: str
    hospitalName: str
    contract: str
    samIds: list[str]


class ConsoleOverview(CloudResponse):
    hospitalId: str | None = Field(None, description="the institution shown")
    institutions: list[ConsoleInstitution] = Field(default_factory=list)
    testCards: list[ConsolePatient] = Field(default_factory=list, description="its virtual test cards (ApplyVirtualHc/Apply)")
    remaining: int = 0
    patients: list[ConsolePatient] = Field(default_factory=list, description="the seeded test patients")


# --------------------------------------------------------------------------- route -> (request, response)

_S = SignatureObject
_L = ListQueryRequest
_F = FormatListQueryRequest
ROUTE_MODELS: dict[str, tuple[type[SignatureObject], type[BaseModel]]] = {  # every request is a signature object plus the route's fields
    "BasicData/Query": (_S, m.BasicDataResponse),
    "BasicData/Register": (_S, m.RegisterResponse),
    "BasicData/Register2": (_S, Register2Response),
    "PreventData/Query": (_L, PreventQueryResponse),
    "PreventData/Write": (PreventWriteRequest, CloudResponse),
    "PregnantData/Query": (_L, PregnantQueryResponse),
    "PregnantData/Write": (PregnantWriteRequest, CloudResponse),
    "PregnantData/Delete": (_S, PregnantDeleteResponse),
    "Inoculate/Query": (_L, InoculateQueryResponse),
    "Inoculate/Write": (InoculateWriteRequest, CloudResponse),
    "EmergentTel/Query": (_S, EmergentTelResponse),
    "EmergentTel/Write": (EmergentTelWriteRequest, CloudResponse),
    "HcContent/Update": (_S, HcContentUpdateResponse),
    "NewBorn/Write": (NewBornWriteRequest, CloudResponse),
    "OrganDonate/Write": (_S, m.ErrorBody),
    "AllergicMedicines/Query": (_L, AllergicQueryResponse),
    "AllergicMedicines/Write": (AllergicWriteRequest, CloudResponse),
    "AllergicMedicines/WriteByIndex": (AllergicWriteByIndexRequest, CloudResponse),
    "Treatment/NoNeedHPC": (_L, TreatmentNoNeedHpcResponse),
    "Treatment/NeedHPC": (_F, TreatmentNeedHpcResponse),
    "Treatment/WriteCode": (TreatmentWriteCodeRequest, TreatmentWriteResponse),
    "Treatment/WriteCodeFee": (TreatmentWriteCodeFeeRequest, TreatmentWriteResponse),
    "Treatment/WriteFee": (TreatmentWriteFeeRequest, TreatmentWriteResponse),
    "CumulativeData/Query": (_S, CumulativeDataResponse),
    "CumulativeFee/Query": (_S, CumulativeFeeResponse),
    "Prescription/Query": (_L, PrescriptionQueryResponse),
    "Prescription/LongQuery": (_L, LongTermPrescriptionResponse),
    "Prescription/HveQuery": (_L, ImportantOrderResponse),
    "Prescription/Write": (PrescriptionWriteRequest, PrescriptionWriteResponse),
    "OrganDonate/Query": (_S, OrganDonateQueryResponse),
    "SequalNumber/Last": (_S, LastSeqResponse),
    "SeqNumber/Next": (SeqNextRequest, SeqNextResponse),
    "SequelNumber/Next": (SeqNextRequest, SeqNextResponse),
    "SequelNumber/Rollback": (RollbackRequest, RollbackResponse),
    "CriticalIllness/Query": (_F, CriticalIllnessResponse),
    "Insurance/Quick": (_S, InsuranceQuickResponse),
    "TreatmentNumber/Card": (TreatmentNumberCardRequest, TreatmentNumberResponse),
    "TreatmentNumber/NoCard": (TreatmentNumberNoCardRequest, TreatmentNumberNoCardResponse),
    "UploadData/Upload": (UploadRequest, UploadResponse),
    "Icd/Encode": (IcdEncodeRequest, IcdEncodeResponse),
    "Icd/Decode": (IcdDecodeRequest, IcdDecodeResponse),
    "TeleMedicine/RequestToken": (TeleRequestTokenRequest, TeleRequestTokenResponse),
    "TeleMedicine/ResponseToken": (TeleResponseTokenRequest, TeleResponseTokenResponse),
}
