"""The legacy csHis function set (the mapping table's 舊版讀卡機控制軟體 column) on top of the 6.0 APIs.

``CsHis(agent, cloud)`` has one async method per legacy function, named as in
``cshis.h`` (``hisGetBasicData``, ``csOpenCom`` ...); each returns a ``LegacyResult``
with the legacy numeric ``code`` (0 = success, public facts 2.3), the fixed-width Big5
``buffer`` where the legacy function fills one (public facts 2.2), the 6.0 JSON it
came from in ``data``, and ``value`` for functions whose legacy return value *is* the
answer (``csISSetPIN``, ``hisGetCardStatus``, ``hpcGetHPCStatus``). Nothing raises:
a 6.0 error becomes its legacy code through ``nhigw.compat.errors`` (the one table).

How a function works: component calls (PINs, states, card numbers) go to the agent's
6.0 component API; business calls take the signature the route needs from the agent
(``nhigw.contracts.routes``: kind and ``serviceType``) and post it with the route's
fields to the configured cloud URL (the NHI cloud, the gateway pass-through, or the
simulator). Calls are serialised, as the legacy DLL is not re-entrant.

Choices where the sources are silent (each tested):
- ``csOpenCom(port)`` is ``Initial`` with no device name (6.0 picks the device: last
  used, cloud SAM, physical SAM), 1001 counts as success. ``csCloseCom`` does **not**
  ``Finalize`` unless ``close_com_finalizes``: HIS code opens and closes around every
  call (public facts 6), and finalising would drop the SAM's verification each time.
- A physical SAM is never verified implicitly: calls that need SAM state 2 answer 4050
  until the HIS calls ``csVerifySAMDC`` (as with the legacy DLL).
- PIN functions take the PIN as a parameter (``pin``, ``newPin``, ``puk``): there is no
  reader PIN pad dialog behind an HTTP call.
- Card types of ``csGetCardNo`` / ``hisGetCardStatus`` / ``csSoftwareReset``: 1 SAM,
  2 HPC, 3 HC (``csSoftwareReset`` 0 = the reader: Finalize + Initial), as pyMedical's
  comment numbers them.
- Write functions check ``pPatientID`` against the HC that signed: a mismatch is 5020
  (要寫入的資料和健保IC卡不是屬於同一人) and nothing is sent.
- ``hisWriteTreatmentData`` takes the treatment-code layout followed by the 38-byte fee
  layout in one ``pDataWrite`` (the fee part is its last 38 bytes).
- Writes carry a fresh ``Idempotency-Key``; a write whose answer does not come in time is
  9003 with that key in ``detail`` (outcome unknown, never repeated); a connection refused
  before sending is 4061, an unreachable agent 4000.
- Functions whose legacy buffer layout is not public (prevention, pregnancy,
  inoculation, cumulative data, prescriptions read-back, last sequence number,
  insurance check, ...) answer with the 6.0 fields in ``data`` and an empty buffer;
  their writes take the 6.0 fields as a ``data`` object. Said so in their summaries.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nhigw.client import AgentClient, CloudClient
from nhigw.client.errors import DecodingError, RequestTimeout, StatusCodeError, TransportError, UntrustedCertificate
from nhigw.common.cloudtls import untrusted_error
from nhigw.common.logging import get_logger
from nhigw.common.roctime import TAIWAN, taiwan_now
from nhigw.common.roctime import roc_datetime as format_roc
from nhigw.compat import buffers as B
from nhigw.compat.errors import (
    AGENT_UNREACHABLE,
    BAD_PARAMETER,
    CLOUD_UNREACHABLE,
    NOT_SAME_PERSON,
    ROLLBACK_WRITTEN,
    UNSUPPORTED,
    legacy_code,
    legacy_message,
)
from nhigw.contracts.codes import Code
from nhigw.contracts.models import CardKind, SignatureKind, SignatureObject
from nhigw.contracts.routes import VNHI_UPLOAD, lookup

log = get_logger("nhigw.compat")



@dataclass
class LegacyResult:
    code: int
    buffer: bytes = b""
    data: dict[str, Any] | None = None
    value: int | None = None
    statusCode: int | None = None  # the 6.0 code behind a failure
    detail: str | None = None
    out: dict[str, str] = field(default_factory=dict)  # extra out-parameters (pBufferDocID, sPath)

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def message(self) -> str:
        return legacy_message(self.code)

    @property
    def text(self) -> str:
        return B.decode(self.buffer)


class LegacyFailure(Exception):
    """A failure compat decides itself (bad parameter, wrong patient, unsupported)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class LegacyFunction:
    name: str
    number: str  # the legacy API number, e.g. "1.1"
    summary: str
    card: CardKind | None
    params: tuple[str, ...]
    supported: bool = True
    reason: str = ""


FUNCTIONS: dict[str, LegacyFunction] = {}


def legacy(number: str, summary: str, *, card: CardKind | None = None, supported: bool = True, reason: str = "") -> Callable[[Callable[..., Awaitable[LegacyResult]]], Callable[..., Awaitable[LegacyResult]]]:
    """Register a legacy function and wrap it: serialised, every failure turned into a legacy code."""

    def deco(fn: Callable[..., Awaitable[LegacyResult]]) -> Callable[..., Awaitable[LegacyResult]]:
        params = tuple(p for p in inspect.signature(fn).parameters if p != "self")
        meta = LegacyFunction(fn.__name__, number, summary, card, params, supported, reason)
        FUNCTIONS[fn.__name__.lower()] = meta

        @functools.wraps(fn)
        async def wrapper(self: CsHis, *args: Any, **kw: Any) -> LegacyResult:
            res = await run(self, *args, **kw)
            # Function and codes only: parameters (PINs, IDs) never reach the log.
            log.info("cshis_call", function=meta.name, code=res.code, statusCode=res.statusCode)
            return res

        async def run(self: CsHis, *args: Any, **kw: Any) -> LegacyResult:
            if not meta.supported:
                return LegacyResult(UNSUPPORTED, statusCode=Code.UNSUPPORTED, detail=meta.reason)
            async with self.lock:
                try:
                    return await fn(self, *args, **kw)
                except LegacyFailure as exc:
                    return LegacyResult(exc.code, detail=exc.detail)
                except StatusCodeError as exc:
                    detail = exc.message_en or exc.message
                    return LegacyResult(legacy_code(exc.code, _card_named(exc.body, meta.card)), statusCode=exc.code, detail=detail)
                except TransportError as exc:
                    to_agent = exc.url.startswith(self.agent.t.base_url)
                    if isinstance(exc, UntrustedCertificate) and not to_agent:
                        return LegacyResult(CLOUD_UNREACHABLE, detail=untrusted_error(Code.UPSTREAM_UNAVAILABLE, exc.url, exc.__cause__).detail)
                    return LegacyResult(AGENT_UNREACHABLE if to_agent else CLOUD_UNREACHABLE, detail=str(exc))
                except DecodingError as exc:
                    return LegacyResult(UNSUPPORTED, detail=str(exc))
                except ValueError as exc:
                    return LegacyResult(BAD_PARAMETER, detail=str(exc))

        return wrapper

    return deco


def _card_named(body: dict[str, Any], default: CardKind | None) -> CardKind | None:
    """Which card a 1102 / 1103 is about: the agent names it in ``detail`` ("no HPC inserted", "the SAM was removed")."""
    words = set(str(body.get("detail", "")).replace(".", " ").split())
    for kind in CardKind:
        if kind.upper() in words:
            return kind
    return default


def _s(v: Any) -> str:
    """Legacy string parameters: HIS code pads them (pyMedical appends a space) and ends them with NUL."""
    return str(v if v is not None else "").split("\x00", 1)[0].strip()


def _int(v: Any, name: str) -> int:
    try:
        return int(str(v).strip())
    except ValueError as exc:
        raise LegacyFailure(BAD_PARAMETER, f"{name} must be a number") from exc


def roc_datetime(value: str) -> str:
    """A date-time in any form the 6.0 side may answer -> ROC ``EEEMMDDHHNNSS`` (13 digits), Taipei time."""
    v = value.strip()
    if v.isdigit() and len(v) == 13:
        return v
    if v.isdigit() and len(v) == 14:
        t = dt.datetime.strptime(v, "%Y%m%d%H%M%S")
    else:
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("/", "-"))
        except ValueError as exc:
            raise ValueError(f"not a date-time: {value!r}") from exc
    if t.tzinfo is not None:
        t = t.astimezone(TAIWAN)
    return format_roc(t)


def _first_str(d: dict[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        v = d.get(k)
        if isinstance(v, str) and v:
            return v
    for k, v in d.items():
        if k not in ("statusCode", "message", "messageEn") and isinstance(v, str) and v:
            return v
    return ""


class CsHis:
    """The csHis function set for one workstation: its agent and a cloud URL."""

    def __init__(self, agent: AgentClient, cloud: CloudClient, *, close_com_finalizes: bool = False) -> None:
        self.agent = agent
        self.cloud = cloud
        self.close_com_finalizes = close_com_finalizes
        self.lock = asyncio.Lock()

    async def call(self, name: str, params: dict[str, Any] | None = None) -> LegacyResult:
        """Call a legacy function by name (case-insensitive) with its legacy parameter names."""
        meta = FUNCTIONS.get(name.lower())
        if meta is None:
            return LegacyResult(UNSUPPORTED, statusCode=Code.NOT_FOUND, detail=f"no legacy function {name!r}")
        params = dict(params or {})
        unknown = set(params) - set(meta.params)
        if unknown:
            return LegacyResult(BAD_PARAMETER, statusCode=Code.PARAM_VALUE, detail=f"unknown parameter(s) for {meta.name}: {', '.join(sorted(unknown))}")
        return await getattr(self, meta.name)(**params)

    # ------------------------------------------------------------------ helpers

    async def _signature(self, route_path: str) -> SignatureObject:
        route = lookup(route_path)
        if route is None:  # a programming error: every route used here is in the table
            raise LegacyFailure(UNSUPPORTED, f"route {route_path} not in the route table")
        st = route.serviceType
        sign = {
            SignatureKind.SAM: self.agent.sam_signature,
            SignatureKind.HPC: self.agent.hpc_signature,
            SignatureKind.HC: self.agent.hc_signature,
            SignatureKind.HPCHC: self.agent.hpchc_signature,
        }[route.legacy_kind]
        return await sign(st)

    async def _business(self, route: str, extras: dict[str, Any] | None = None, *, patient_id: str = "", ok_codes: tuple[int, ...] = (0,)) -> tuple[dict[str, Any], SignatureObject]:
        sig = await self._signature(route)
        pid = _s(patient_id)
        if pid and sig.hcIdNo and pid != sig.hcIdNo:
            raise LegacyFailure(NOT_SAME_PERSON, "pPatientID is not the holder of the inserted health card")
        meta = lookup(route)
        key = uuid.uuid4().hex if meta is not None and meta.write else None
        try:
            data = await self.cloud.call(route, sig, extras, ok_codes=ok_codes, idempotency_key=key)
        except RequestTimeout as exc:
            if key is None:
                raise
            # A write whose answer never came may or may not have happened: say so, never repeat it.
            raise LegacyFailure(9003, f"write outcome unknown (no answer in time); reconcile with Idempotency-Key {key}") from exc
        return data, sig

    async def _json(self, route: str, extras: dict[str, Any] | None = None, **kw: Any) -> LegacyResult:
        data, _ = await self._business(route, extras, **kw)
        return LegacyResult(0, data=data)

    async def _ok(self, coro: Awaitable[Any]) -> LegacyResult:
        await coro
        return LegacyResult(0)

    @staticmethod
    def _extras(data: Any) -> dict[str, Any]:
        if data in (None, ""):
            return {}
        if not isinstance(data, dict):
            raise LegacyFailure(BAD_PARAMETER, "data must be a JSON object of the 6.0 fields (the legacy layout of this write is not public)")
        return dict(data)

    async def _card_state(self, card_type: Any) -> int:
        st = (await self.agent.status()).status
        ct = _int(card_type, "CardType")
        if ct not in (1, 2, 3):
            raise LegacyFailure(BAD_PARAMETER, "CardType is 1 (SAM), 2 (HPC) or 3 (HC)")
        return {1: st.sam.status, 2: st.hpc.status, 3: st.hc.status}[ct]

    # ================================================================== 1.x: HC business functions

    @legacy("1.1", "讀取不需個人 PIN 碼資料 (72 bytes)", card=CardKind.HC)
    async def hisGetBasicData(self) -> LegacyResult:
        data, _ = await self._business("BasicData/Query")
        return LegacyResult(0, B.basic_data(data), data)

    @legacy("1.2", "掛號或報到時讀取基本資料 (78 bytes)", card=CardKind.HC)
    async def hisGetRegisterBasic(self) -> LegacyResult:
        data, _ = await self._business("BasicData/Register")
        return LegacyResult(0, B.register_basic(data), data)

    @legacy("1.38", "掛號或報到時讀取基本資料 (9 bytes: card validity, available count)", card=CardKind.HC)
    async def hisGetRegisterBasic2(self) -> LegacyResult:
        data, _ = await self._business("BasicData/Register2")
        return LegacyResult(0, B.register_basic2(data), data)

    @legacy("1.3", "預防保健掛號作業 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetRegisterPrevent(self) -> LegacyResult:
        return await self._json("PreventData/Query")

    @legacy("1.4", "孕婦產前檢查掛號作業 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetRegisterPregnant(self) -> LegacyResult:
        return await self._json("PregnantData/Query")

    @legacy("1.5", "讀取就醫資料不需 HPC 卡的部分 (498 bytes)", card=CardKind.HC)
    async def hisGetTreatmentNoNeedHPC(self) -> LegacyResult:
        data, _ = await self._business("Treatment/NoNeedHPC")
        return LegacyResult(0, B.treatment_no_need_hpc(data.get("criticalIllnesses") or [], data.get("treatments") or []), data)

    @legacy("1.6", "讀取就醫累計資料 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetCumulativeData(self) -> LegacyResult:
        return await self._json("CumulativeData/Query")

    @legacy("1.7", "讀取醫療費用總累計 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetCumulativeFee(self) -> LegacyResult:
        return await self._json("CumulativeFee/Query")

    @legacy("1.8", "讀取就醫資料需要 HPC 卡的部份 (540 bytes)", card=CardKind.HPC)
    async def hisGetTreatmentNeedHPC(self) -> LegacyResult:
        data, _ = await self._business("Treatment/NeedHPC", {"format": "0"})
        return LegacyResult(0, B.treatment_need_hpc(data.get("criticalIllnesses") or [], data.get("treatments") or []), data)

    @legacy("1.9", "取得就醫序號 (舊版)", card=CardKind.HC, supported=False, reason="6.0 不支援 hisGetSeqNumber，請改用 hisGetSeqNumber256 / hisGetSeqNumber256N1 (就醫序號改為 W***)")
    async def hisGetSeqNumber(self, cTreatItem: str = "", cBabyTreat: str = "") -> LegacyResult:
        raise AssertionError("unsupported")  # pragma: no cover

    @legacy("1.10", "讀取處方箋作業 (layout not public: 6.0 fields in data)", card=CardKind.HPC)
    async def hisReadPrescription(self) -> LegacyResult:
        return await self._json("Prescription/Query")

    @legacy("1.11", "讀取預防接種資料 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetInoculateData(self) -> LegacyResult:
        return await self._json("Inoculate/Query")

    @legacy("1.12", "讀取同意器官捐贈及安寧緩和醫療註記 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetOrganDonate(self) -> LegacyResult:
        return await self._json("OrganDonate/Query")

    @legacy("1.13", "讀取緊急聯絡電話資料 (14 bytes)", card=CardKind.HC)
    async def hisGetEmergentTel(self) -> LegacyResult:
        data, _ = await self._business("EmergentTel/Query")
        return LegacyResult(0, B.fit(_first_str(data, ("tel", "emergentTel")), 14), data)

    @legacy("1.14", "讀取最近一次就醫序號 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisGetLastSeqNum(self) -> LegacyResult:
        return await self._json("SequalNumber/Last")

    @legacy("1.15", "讀取卡片狀態 (value: the 6.0 state of CardType 1 SAM / 2 HPC / 3 HC)")
    async def hisGetCardStatus(self, CardType: Any = 3) -> LegacyResult:
        return LegacyResult(0, value=await self._card_state(CardType))

    @legacy("1.16", "就醫診療資料寫入作業 (out: pBufferDocID)", card=CardKind.HC)
    async def hisWriteTreatmentCode(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "") -> LegacyResult:
        extras = {"treatmentDateTime": _s(pDateTime), **B.parse_treatment_code(pDataWrite)}
        data, sig = await self._business("Treatment/WriteCode", extras, patient_id=pPatientID, ok_codes=(0, Code.DIAGNOSIS_WRITTEN))
        return LegacyResult(0, data=data, out={"pBufferDocID": data.get("hpcIdNo") or sig.hpcIdNo or ""})

    @legacy("1.17", "就醫費用資料寫入作業", card=CardKind.HC)
    async def hisWriteTreatmentFee(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "") -> LegacyResult:
        extras = {"treatmentDateTime": _s(pDateTime), **B.parse_treatment_fee(pDataWrite)}
        data, _ = await self._business("Treatment/WriteFee", extras, patient_id=pPatientID)
        return LegacyResult(0, data=data)

    async def _write_prescriptions(self, pDateTime: str, pPatientID: str, pDataWrite: str, count: int | None) -> tuple[dict[str, Any], list[str]]:
        records = B.parse_prescriptions(pDataWrite, count)
        extras = {"treatmentDateTime": _s(pDateTime), "prescriptions": [r.as_json() for r in records]}
        data, _ = await self._business("Prescription/Write", extras, patient_id=pPatientID)
        sigs = data.get("hexSignatureItems") or []
        if not sigs and data.get("signatureItems"):
            sigs = [base64.b64decode(s).hex().upper() for s in data["signatureItems"]]
        return data, [str(s) for s in sigs]

    @legacy("1.18", "處方箋寫入作業 (one 61-byte record)", card=CardKind.HC)
    async def hisWritePrescription(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "") -> LegacyResult:
        data, _ = await self._write_prescriptions(pDateTime, pPatientID, pDataWrite, 1)
        return LegacyResult(0, data=data)

    @legacy("1.19", "新生兒註記寫入作業", card=CardKind.HC)
    async def hisWriteNewBorn(self, pPatientID: str = "", pPatientBirthDate: str = "", pNewBornDate: str = "", pNoOfDelivered: str = "") -> LegacyResult:
        return await self._json("NewBorn/Write", {"newbornBirthday": _s(pNewBornDate), "newbornBaby": _s(pNoOfDelivered)}, patient_id=pPatientID)

    @legacy("1.20", "過敏藥物寫入作業 (data: 6.0 fields)", card=CardKind.HC)
    async def hisWriteAllergicMedicines(self, pPatientID: str = "", pPatientBirthDate: str = "", data: Any = None) -> LegacyResult:
        return await self._json("AllergicMedicines/Write", self._extras(data), patient_id=pPatientID)

    @legacy("1.21", "同意器官捐贈及安寧緩和醫療註記寫入作業", card=CardKind.HC, supported=False, reason="6.0 業務邏輯端不支援此寫入 (器官捐贈及安寧緩和註記僅提供實體卡註記功能，請用元件端)")
    async def hisWriteOrganDonate(self, pPatientID: str = "", pPatientBirthDate: str = "", pOrganDonate: str = "") -> LegacyResult:
        raise AssertionError("unsupported")  # pragma: no cover

    @legacy("1.22", "預防保健資料寫入作業 (data: 6.0 fields)", card=CardKind.HC)
    async def hisWriteHealthInsurance(self, pPatientID: str = "", pPatientBirthDate: str = "", data: Any = None) -> LegacyResult:
        return await self._json("PreventData/Write", self._extras(data), patient_id=pPatientID)

    @legacy("1.23", "緊急聯絡電話資料寫入作業", card=CardKind.HC)
    async def hisWriteEmergentTel(self, pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "") -> LegacyResult:
        return await self._json("EmergentTel/Write", {"tel": _s(pDataWrite)}, patient_id=pPatientID)

    @legacy("1.24", "寫入產前檢查資料 (data: 6.0 fields)", card=CardKind.HC)
    async def hisWritePredeliveryCheckup(self, pPatientID: str = "", pPatientBirthDate: str = "", data: Any = None) -> LegacyResult:
        return await self._json("PregnantData/Write", self._extras(data), patient_id=pPatientID)

    @legacy("1.25", "清除產前檢查資料", card=CardKind.HC)
    async def hisDeletePredeliveryData(self, pPatientID: str = "", pPatientBirthDate: str = "", data: Any = None) -> LegacyResult:
        return await self._json("PregnantData/Delete", self._extras(data), patient_id=pPatientID)

    @legacy("1.26", "預防接種資料寫入作業 (data: 6.0 fields)", card=CardKind.HC)
    async def hisWriteInoculateData(self, pPatientID: str = "", pPatientBirthDate: str = "", data: Any = None) -> LegacyResult:
        return await self._json("Inoculate/Write", self._extras(data), patient_id=pPatientID)

    # ------------------------------------------------------------------ HC PIN (component side)

    @legacy("1.27", "驗證健保 IC 卡之 PIN 值 (pin)", card=CardKind.HC)
    async def csVerifyHCPIN(self, pin: str = "") -> LegacyResult:
        if not _s(pin):
            raise LegacyFailure(5109, "no PIN given (pass pin: there is no PIN pad dialog over HTTP)")
        return await self._ok(self.agent.hc_verify_pin(_s(pin)))

    @legacy("1.28", "輸入新的健保 IC 卡 PIN 值 (newPin)", card=CardKind.HC)
    async def csInputHCPIN(self, newPin: str = "") -> LegacyResult:
        if not _s(newPin):
            raise LegacyFailure(5109, "no new PIN given")
        return await self._ok(self.agent.hc_set_pin(_s(newPin)))

    @legacy("1.29", "停用健保 IC 卡之 PIN 碼輸入功能", card=CardKind.HC)
    async def csDisableHCPIN(self) -> LegacyResult:
        return await self._ok(self.agent.hc_disable_pin())

    @legacy("1.36", "檢查健保 IC 卡是否設定密碼 (value: 1 set, 0 not set)", card=CardKind.HC)
    async def csISSetPIN(self) -> LegacyResult:
        pin = await self.agent.hc_pin()
        return LegacyResult(0, value=1 if pin.pinSet else 0, data=pin.model_dump())

    @legacy("1.30", "健保 IC 卡卡片內容更新作業", card=CardKind.HC)
    async def csUpdateHCContents(self) -> LegacyResult:
        return await self._json("HcContent/Update")

    @legacy("1.40", "健保 IC 卡卡片內容更新作業 (不重置)", card=CardKind.HC)
    async def csUpdateHCNoReset(self) -> LegacyResult:
        return await self._json("HcContent/Update")

    # ------------------------------------------------------------------ ports, reader, versions

    @legacy("1.31", "開啟讀卡機連結埠 (6.0 Initial; the port number is not needed)")
    async def csOpenCom(self, ComPort: Any = 0) -> LegacyResult:
        await self.agent.initial(None)
        return LegacyResult(0)

    @legacy("1.32", "關閉讀卡機連結埠 (Finalize only when close_com_finalizes)")
    async def csCloseCom(self) -> LegacyResult:
        if self.close_com_finalizes:
            try:
                await self.agent.finalize()
            except StatusCodeError as exc:
                if exc.code != Code.NOT_INITIALIZED:
                    raise
        return LegacyResult(0)

    @legacy("1.34", "讀取讀卡機日期時間 (13 bytes, ROC EEEMMDDHHNNSS)")
    async def csGetDateTime(self) -> LegacyResult:
        d = await self.agent.server_datetime()
        return LegacyResult(0, B.fit(roc_datetime(d.serverDateTime), 13), d.model_dump())

    @legacy("1.35", "讀取卡片號碼 (CardType 1 SAM / 2 HPC / 3 HC; 12 bytes)")
    async def csGetCardNo(self, CardType: Any = 3) -> LegacyResult:
        ct = _int(CardType, "CardType")
        if ct == 1:
            sam = await self.agent.sam_basic()
            return LegacyResult(0, B.fit(sam.samId, 12), sam.model_dump())
        if ct == 2:
            hpc = await self.agent.hpc_basic()
            return LegacyResult(0, B.fit(hpc.cardId, 12), hpc.model_dump())
        if ct == 3:
            hc = await self.agent.hc_basic()
            return LegacyResult(0, B.fit(hc.cardId, 12), hc.model_dump())
        raise LegacyFailure(BAD_PARAMETER, "CardType is 1 (SAM), 2 (HPC) or 3 (HC)")

    @legacy("1.51", "取得控制軟體版本 (buffer: the long version; out sPath: the location)")
    async def csGetVersionEx(self, sPath: str = "") -> LegacyResult:
        v = await self.agent.version()
        return LegacyResult(0, B.encode(v.longVersion), v.model_dump(), out={"sPath": v.location})

    @legacy("1.51", "取得控制軟體版本，舊版函式 (buffer: the short version)")
    async def csGetVersion(self) -> LegacyResult:
        v = await self.agent.version()
        return LegacyResult(0, B.encode(v.shortVersion), v.model_dump())

    @legacy("1.52", "重置讀卡機或卡片 (Device 0 reader: Finalize + Initial; 1 SAM, 2 HPC, 3 HC: Logout)")
    async def csSoftwareReset(self, Device: Any = 0) -> LegacyResult:
        dev = _int(Device, "Device")
        if dev == 0:
            try:
                await self.agent.finalize()
            except StatusCodeError as exc:
                if exc.code != Code.NOT_INITIALIZED:
                    raise
            await self.agent.initial(None)
        elif dev == 1:
            await self.agent.sam_logout()
        elif dev == 2:
            await self.agent.hpc_logout()
        elif dev == 3:
            await self.agent.hc_logout()
        else:
            raise LegacyFailure(BAD_PARAMETER, "Device is 0 (reader), 1 (SAM), 2 (HPC) or 3 (HC)")
        return LegacyResult(0)

    # ------------------------------------------------------------------ critical illness, sequence numbers

    @legacy("1.33", "讀取重大傷病註記資料 (138 bytes)", card=CardKind.HPC)
    async def hisGetCriticalIllness(self) -> LegacyResult:
        data, _ = await self._business("CriticalIllness/Query", {"format": "0"})
        return LegacyResult(0, B.critical_illness(data.get("criticalIllnesses") or []), data)

    @legacy("1.50", "讀取重大傷病註記資料身分比對 (138 bytes)", card=CardKind.HPC)
    async def hisGetCriticalIllnessID(self, pPatientID: str = "", pPatientBirthDate: str = "") -> LegacyResult:
        data, _ = await self._business("CriticalIllness/Query", {"format": "0"}, patient_id=pPatientID)
        return LegacyResult(0, B.critical_illness(data.get("criticalIllnesses") or []), data)

    async def _seq(self, cTreatItem: str, cBabyTreat: str, cTreatAfterCheck: str, n1: bool) -> LegacyResult:
        item = _s(cTreatItem)
        if len(item) != 2:
            raise LegacyFailure(BAD_PARAMETER, "cTreatItem is a 2-character treatment item (01-05, AA-CA)")
        after = _s(cTreatAfterCheck) or "1"
        extras = {"treatmentItem": item, "babyTreatment": _s(cBabyTreat)[:1], "afterCheck": after}
        data, _ = await self._business("SequelNumber/Next", extras)
        return LegacyResult(0, B.seq_number_256(data, n1=n1), data)

    @legacy("1.37", "取得就醫序號新版 (296 bytes)", card=CardKind.HC)
    async def hisGetSeqNumber256(self, cTreatItem: str = "", cBabyTreat: str = " ", cTreatAfterCheck: str = "1") -> LegacyResult:
        return await self._seq(cTreatItem, cBabyTreat, cTreatAfterCheck, n1=False)

    @legacy("1.53", "取得就醫序號新版-就醫識別碼 (316 bytes)", card=CardKind.HC)
    async def hisGetSeqNumber256N1(self, cTreatItem: str = "", cBabyTreat: str = " ", cTreatAfterCheck: str = "1") -> LegacyResult:
        return await self._seq(cTreatItem, cBabyTreat, cTreatAfterCheck, n1=True)

    @legacy("1.39", "取消就醫序號 (退掛)", card=CardKind.HC)
    async def csUnGetSeqNumber(self, pUnTreatDate: str = "") -> LegacyResult:
        if len(_s(pUnTreatDate)) != 13:
            raise LegacyFailure(BAD_PARAMETER, "pUnTreatDate is the 13-digit ROC treatment date-time")
        try:
            return await self._json("SequelNumber/Rollback", {"treatmentDateTime": _s(pUnTreatDate)})
        except StatusCodeError as exc:  # 3209 means "already written": success for a write, a refusal here
            if exc.code == Code.DIAGNOSIS_WRITTEN:
                return LegacyResult(ROLLBACK_WRITTEN, statusCode=exc.code, detail="treatment data already written: the visit cannot be rolled back")
            raise

    @legacy("1.54", "異常時取得就醫識別碼 (layout not public: 6.0 fields in data)", card=CardKind.SAM)
    async def hisGetTreatNumNoICCard(self, pPatientID: str = "", pDateTime: str = "") -> LegacyResult:
        extras = {"patientId": _s(pPatientID)}
        if _s(pDateTime):
            extras["treatmentDateTime"] = _s(pDateTime)
        return await self._json("TreatmentNumber/NoCard", extras)

    @legacy("1.55", "在保狀態查核 (layout not public: 6.0 fields in data)", card=CardKind.HC)
    async def hisQuickInsurance(self) -> LegacyResult:
        return await self._json("Insurance/Quick")

    @legacy("1.56", "單獨取得就醫識別碼 (20 bytes)", card=CardKind.HC)
    async def hisGetTreatNumICCard(self, pDateTime: str = "") -> LegacyResult:
        data, _ = await self._business("TreatmentNumber/Card", {"treatmentDateTime": _s(pDateTime)})
        return LegacyResult(0, B.fit(data.get("treatmentNumber", ""), 20), data)

    # ------------------------------------------------------------------ prescriptions (1.41-1.49)

    @legacy("1.41", "讀取就醫資料-門診處方箋 (layout not public: 6.0 fields in data)", card=CardKind.HPC)
    async def hisReadPrescriptMain(self, iStartPos: Any = 1, iEndPos: Any = 60) -> LegacyResult:
        return await self._json("Prescription/Query", {"startPosition": _int(iStartPos, "iStartPos"), "endPosition": _int(iEndPos, "iEndPos")})

    @legacy("1.42", "讀取就醫資料-長期處方箋 (layout not public: 6.0 fields in data)", card=CardKind.HPC)
    async def hisReadPrescriptLongTerm(self, iStartPos: Any = 1, iEndPos: Any = 30) -> LegacyResult:
        return await self._json("Prescription/LongQuery", {"startPosition": _int(iStartPos, "iStartPos"), "endPosition": _int(iEndPos, "iEndPos")})

    @legacy("1.43", "讀取就醫資料-重要醫令 (layout not public: 6.0 fields in data)", card=CardKind.HPC)
    async def hisReadPrescriptHVE(self, iStartPos: Any = 1, iEndPos: Any = 30) -> LegacyResult:
        return await self._json("Prescription/HveQuery", {"startPosition": _int(iStartPos, "iStartPos"), "endPosition": _int(iEndPos, "iEndPos")})

    @legacy("1.44", "讀取就醫資料-過敏藥物 (layout not public: 6.0 fields in data)", card=CardKind.HPC)
    async def hisReadPrescriptAllergic(self, iStartPos: Any = 1, iEndPos: Any = 3) -> LegacyResult:
        return await self._json("AllergicMedicines/Query", {"startPosition": _int(iStartPos, "iStartPos"), "endPosition": _int(iEndPos, "iEndPos")})

    @legacy("1.45", "多筆處方箋寫入作業 (61 bytes per record)", card=CardKind.HC)
    async def hisWriteMultiPrescript(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "", iWriteCount: Any = 1) -> LegacyResult:
        data, _ = await self._write_prescriptions(pDateTime, pPatientID, pDataWrite, _int(iWriteCount, "iWriteCount"))
        return LegacyResult(0, data=data)

    @legacy("1.46", "過敏藥物寫入指定欄位作業 (data: 6.0 fields)", card=CardKind.HC)
    async def hisWriteAllergicNum(self, pPatientID: str = "", pPatientBirthDate: str = "", data: Any = None) -> LegacyResult:
        return await self._json("AllergicMedicines/WriteByIndex", self._extras(data), patient_id=pPatientID)

    @legacy("1.47", "就醫診療資料及費用寫入作業 (treatment-code layout + 38-byte fee layout)", card=CardKind.HC)
    async def hisWriteTreatmentData(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "") -> LegacyResult:
        raw = B.encode(str(pDataWrite or "").split("\x00", 1)[0])
        if len(raw) < 38 + 8:
            raise LegacyFailure(BAD_PARAMETER, "pDataWrite is the treatment-code layout followed by the 38-byte fee layout")
        extras = {"treatmentDateTime": _s(pDateTime), **B.parse_treatment_code(raw[:-38]), **B.parse_treatment_fee(raw[-38:])}
        data, sig = await self._business("Treatment/WriteCodeFee", extras, patient_id=pPatientID, ok_codes=(0, Code.DIAGNOSIS_WRITTEN))
        return LegacyResult(0, data=data, out={"pBufferDocID": data.get("hpcIdNo") or sig.hpcIdNo or ""})

    @legacy("1.48", "處方箋寫入作業-回傳簽章 (40 bytes)", card=CardKind.HC)
    async def hisWritePrescriptionSign(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "") -> LegacyResult:
        data, sigs = await self._write_prescriptions(pDateTime, pPatientID, pDataWrite, 1)
        return LegacyResult(0, B.signatures_40(sigs[:1]), data)

    @legacy("1.49", "多筆處方箋寫入作業-回傳簽章 (40 bytes per record)", card=CardKind.HC)
    async def hisWriteMultiPrescriptSign(self, pDateTime: str = "", pPatientID: str = "", pPatientBirthDate: str = "", pDataWrite: str = "", iWriteCount: Any = 1) -> LegacyResult:
        n = _int(iWriteCount, "iWriteCount")
        data, sigs = await self._write_prescriptions(pDateTime, pPatientID, pDataWrite, n)
        return LegacyResult(0, B.signatures_40(sigs[:n]), data)

    # ================================================================== 2.x: SAM

    @legacy("2.1", "SAM 與 DC 認證", card=CardKind.SAM)
    async def csVerifySAMDC(self) -> LegacyResult:
        return await self._ok(self.agent.sam_verify())

    @legacy("2.2", "讀取 SAM 院所代碼 (10 bytes)", card=CardKind.SAM)
    async def csGetHospID(self) -> LegacyResult:
        sam = await self.agent.sam_basic()
        return LegacyResult(0, B.fit(sam.hospitalId, 10), sam.model_dump())

    @legacy("2.3", "讀取 SAM 院所名稱 (Big5)", card=CardKind.SAM)
    async def csGetHospName(self) -> LegacyResult:
        sam = await self.agent.sam_basic()
        return LegacyResult(0, B.encode(sam.hospitalName or ""), sam.model_dump())

    @legacy("2.4", "讀取 SAM 院所簡稱 (Big5)", card=CardKind.SAM)
    async def csGetHospAbbName(self) -> LegacyResult:
        sam = await self.agent.sam_basic()
        return LegacyResult(0, B.encode(sam.hospitalShortName or ""), sam.model_dump())

    # ================================================================== 3.x: upload

    @legacy("3.1", "資料上傳 (pUploadData: the XML, as text or base64; sType A1 / A2 / ZZ; out 50 bytes; via /V2000/VNHI_Upload)", card=CardKind.SAM)
    async def csUploadData(self, pUploadFileName: str = "", fFileSize: Any = "", pNumber: Any = "", pUploadData: str = "", sType: str = "A1") -> LegacyResult:
        """Sent as 6.0 does: ``POST /V2000/VNHI_Upload`` (the upload host, or the gateway that serves it), SAM
        signature 30. A refusal's ``RtnCode`` (5003, 8203, 9002 ...) is returned as the ERRORCODE, with the
        host's message; the out buffer's receive time is when the host's answer arrived."""
        content = str(pUploadData or "")
        if not content:
            raise LegacyFailure(6017, "pass the file content as pUploadData (compat cannot read the HIS's files)")
        try:
            b64 = base64.b64encode(base64.b64decode(content, validate=True)).decode()
        except ValueError:
            b64 = base64.b64encode(B.encode(content)).decode()
        signed_at = roc_datetime((await self.agent.server_datetime()).serverDateTime)  # the reader's (or the DC's) clock
        sig = await self._signature(VNHI_UPLOAD.url)
        key = uuid.uuid4().hex
        try:
            res = await self.cloud.vnhi_upload(sig, _s(sType) or "A1", b64, signed_at + "000", idempotency_key=key)
        except RequestTimeout as exc:  # never repeated: the file may have been taken
            raise LegacyFailure(9003, f"upload outcome unknown (no answer in time); reconcile with Idempotency-Key {key}") from exc
        if res.RtnCode not in ("0000", "0"):
            raise LegacyFailure(int(res.RtnCode) if res.RtnCode.isdigit() else 9999, f"upload host RtnCode {res.RtnCode}: {res.messageEn} {res.detail or ''}".strip())
        op = res.Opcode
        data = {**res.model_dump(), "samId": op[30:42].strip(), "hospitalId": op[20:30].strip(), "uploadDateTime": op[:14], "receiveDateTime": f"{taiwan_now():%Y%m%d%H%M%S}"}
        return LegacyResult(0, B.upload_result(data), data)

    # ================================================================== 4.x: HPC

    @legacy("4.1", "取得醫事人員卡狀態 (value: the 6.0 HPC state)", card=CardKind.HPC)
    async def hpcGetHPCStatus(self, Req: Any = 1) -> LegacyResult:
        st = (await self.agent.status()).status
        return LegacyResult(0, value=st.hpc.status)

    @legacy("4.2", "檢查醫事人員卡之 PIN 值 (pin)", card=CardKind.HPC)
    async def hpcVerifyHPCPIN(self, pin: str = "") -> LegacyResult:
        if not _s(pin):
            raise LegacyFailure(6019, "no PIN given (pass pin)")
        return await self._ok(self.agent.hpc_verify(_s(pin)))

    @legacy("4.3", "輸入新的醫事人員卡之 PIN 值 (newPin)", card=CardKind.HPC)
    async def hpcInputHPCPIN(self, newPin: str = "") -> LegacyResult:
        if not _s(newPin):
            raise LegacyFailure(6019, "no new PIN given")
        return await self._ok(self.agent.hpc_set_pin(_s(newPin)))

    @legacy("4.4", "解開鎖住的醫事人員卡 (puk, newPin)", card=CardKind.HPC)
    async def hpcUnlockHPC(self, puk: str = "", newPin: str = "") -> LegacyResult:
        if not (_s(puk) and _s(newPin)):
            raise LegacyFailure(6019, "puk and newPin are required")
        return await self._ok(self.agent.hpc_unlock(_s(puk), _s(newPin)))

    @legacy("4.5", "取得醫事人員卡序號 (12 bytes)", card=CardKind.HPC)
    async def hpcGetHPCSN(self) -> LegacyResult:
        hpc = await self.agent.hpc_basic()
        return LegacyResult(0, B.fit(hpc.cardId, 12), hpc.model_dump())

    @legacy("4.6", "取得醫事人員卡身分證字號 (10 bytes)", card=CardKind.HPC)
    async def hpcGetHPCSSN(self) -> LegacyResult:
        hpc = await self.agent.hpc_basic()
        return LegacyResult(0, B.fit(hpc.idNo, 10), hpc.model_dump())

    @legacy("4.7", "取得醫事人員卡中文姓名 (Big5)", card=CardKind.HPC)
    async def hpcGetHPCCNAME(self) -> LegacyResult:
        hpc = await self.agent.hpc_basic()
        return LegacyResult(0, B.encode(hpc.cName), hpc.model_dump())

    @legacy("4.8", "取得醫事人員卡英文姓名", card=CardKind.HPC)
    async def hpcGetHPCENAME(self) -> LegacyResult:
        hpc = await self.agent.hpc_basic()
        return LegacyResult(0, B.encode(hpc.eName), hpc.model_dump())

    @legacy("4.9", "虛擬醫師卡登出", card=CardKind.HPC)
    async def hpcVHPCLogout(self) -> LegacyResult:
        return await self._ok(self.agent.hpc_logout())

    # ================================================================== 5.x: ICD-10

    @legacy("5.1", "進行疾病診斷碼押碼 (out 5 bytes)", card=CardKind.SAM)
    async def hisGetICD10EnC(self, IN: str = "") -> LegacyResult:
        if not _s(IN):
            raise LegacyFailure(BAD_PARAMETER, "IN: the ICD-10-CM code to encode")
        data, _ = await self._business("Icd/Encode", {"icdCode": _s(IN)})
        return LegacyResult(0, B.fit(_first_str(data, ("encodedCode",)), 5), data)

    @legacy("5.2", "進行疾病診斷碼解押碼 (out: the ICD-10-CM code)", card=CardKind.SAM)
    async def hisGetICD10DeC(self, IN: str = "") -> LegacyResult:
        if not _s(IN):
            raise LegacyFailure(BAD_PARAMETER, "IN: the 5-byte encoded code")
        data, _ = await self._business("Icd/Decode", {"encodedCode": _s(IN)})
        return LegacyResult(0, B.encode(_first_str(data, ("icdCode",))), data)
