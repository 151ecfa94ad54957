"""Business route handlers of the simulator (``/api/v1/...``), one per route of the seed's table.

Each handler gets the store, the verified request (the route's model from
``contracts.cloud.ROUTE_MODELS``: the signature object plus the route's fields) and the
route, and returns the response body. Register with ``@handles``. Handlers do not
``await`` between reading and changing the store, so concurrent calls cannot interleave.

Rules and their codes (public facts 3.4; where the table only names a range, the choice
is ours and listed here):

- the card: unknown card or ID 3203; cancelled card (``cancelTermination`` '2') 3203 on
  writes and number requests; not insured 3228; past ``cardValidity`` 5003 on a sequence
  number (the legacy-range code production 6.0 HIS code handles there by updating the card
  and retrying, public facts 3.3a; the table's 3201 has no such handler); no visits
  left 3213 (就醫類別 01-09 only);
- a write that names a visit (``treatmentDateTime``) needs that visit at this institution:
  none 3208, the visit is at another institution 3211; diagnosis written twice 3209;
- rollback (退掛, ``SequelNumber/Rollback``): none 3208, another institution 3211, more than
  24 hours after the number was taken 3218, a visit type (就醫類別) that is not numeric
  (``AC``, ...) 3219 「就醫類別為數值才可退掛」, treatment data already written 3209 (the 6.0
  table's 「已寫入診斷碼」: it has no code of its own for this), already rolled back 3220; a rollback gives the visit back, the number is not reused;
- preventive care: the same item on the same date twice 3214; prenatal check: the same
  item on the same date twice, or a male insured, 3216; newborn mark: a birthday in the
  future or more than 60 days ago 3206;
- upload: base64 / XML that does not parse 1704 (a DOCTYPE is refused); signed (``sUploadDT``)
  more than one hour before the simulator's clock or more than 5 minutes after it 8203; the
  same A1 file twice from one institution 3236;
- ICD-10 押碼 (``Icd/Encode`` / ``Decode``): see ``icd_encode``;
- TeleMedicine: ``accessToken`` valid 5 minutes, single use, only for the institution that
  asked (3237 unknown or used, 3238 expired); the patient's consent is simulated as given.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from nhigw.common.roctime import parse_roc, roc_date, roc_datetime
from nhigw.contracts import cloud as c
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import BasicDataResponse, RegisterResponse, SignatureObject
from nhigw.contracts.routes import Route
from nhigw.sim.registry import handles
from nhigw.sim.store import B36, COUNTING_ITEMS, Patient, SimStore, Treatment, UploadedFile

T = TypeVar("T")
ACCESS_TOKEN_TTL_S = 300
VHC_TOKEN_TTL_S = 300
UPLOAD_MAX_AGE_S = 3600
UPLOAD_MAX_AHEAD_S = 300
ROLLBACK_WINDOW_S = 24 * 3600


# --------------------------------------------------------------------------- helpers


def patient_of(store: SimStore, sig: SignatureObject) -> Patient:
    p = store.patients_by_id.get(sig.hcIdNo or "")
    if p is None or p.cardSn != sig.hcId:
        raise StatusError(Code.CARD_CANCELLED, "no insured person with this card")
    return p


def patient_by_id(store: SimStore, patient_id: str) -> Patient:
    p = store.patients_by_id.get(patient_id)
    if p is None:
        raise StatusError(Code.NOT_INSURED, "no insured person with this ID number")
    return p


def active_card(p: Patient) -> None:
    if p.cancelTermination == "2":
        raise StatusError(Code.CARD_CANCELLED)
    if p.insuranceStatus != "1":
        raise StatusError(Code.NOT_INSURED)


def page(items: Sequence[T], req: c.ListQueryRequest, key: Callable[[T], str]) -> tuple[list[T], int]:
    """Newest first; positions 1-based and inclusive (seed: 起始位置1為最新一筆)."""
    ordered = sorted(items, key=key, reverse=True)
    if req.endPosition is not None and req.endPosition < req.startPosition:
        raise StatusError(Code.PARAM_VALUE, "endPosition is before startPosition")
    end = req.endPosition if req.endPosition is not None else len(ordered)
    return ordered[req.startPosition - 1 : end], len(ordered)


def visits(p: Patient) -> list[Treatment]:
    return [t for t in p.treatments if not t.rolledBack]


def find_visit(p: Patient, hospital_id: str, when: str) -> Treatment:
    mine = [t for t in p.treatments if t.treatDateTime == when]
    live = [t for t in mine if not t.rolledBack]
    here = [t for t in live if t.hospitalId == hospital_id]
    if here:
        return here[-1]
    if live:
        raise StatusError(Code.OTHER_INSTITUTION, "this visit was registered by another institution")
    raise StatusError(Code.REGISTRATION_NOT_FOUND, f"no registration at {when}")


def _fields(model: BaseModel, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(model, n) for n in names}


FEES = ("outpatientFee", "costFee", "inpatientFee", "inpatient30Fee", "inpatient180Fee")
CODES = ("mainCode", "subCode1", "subCode2", "subCode3", "subCode4", "subCode5")


def security_signature(*parts: str) -> str:
    """安全簽章 of a visit (256 bytes, base64). The real one is the card's; ours is a digest expansion."""
    return base64.b64encode(hashlib.shake_256("\n".join(parts).encode()).digest(256)).decode()


# --------------------------------------------------------------------------- basic data


@handles("BasicData/Query")
async def basic_query(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    return BasicDataResponse(cardSn=p.cardSn, name=p.name, idCardNum=p.idCardNum, birthday=p.birthday, sex=p.sex, dateIssue=p.dateIssue, cancelTermination=p.cancelTermination, emergentTel=p.emergentTel)


@handles("BasicData/Register")
async def register(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    return RegisterResponse(
        cardSn=p.cardSn, name=p.name, idCardNum=p.idCardNum, birthday=p.birthday, sex=p.sex, dateIssue=p.dateIssue,
        cancelTermination=p.cancelTermination, emergentTel=p.emergentTel, insurerCode=p.insurerCode, insurerId=p.insurerId,
        cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter, newbornBirthday=p.newbornBirthday, newbornBaby=p.newbornBaby,
    )


@handles("BasicData/Register2")
async def register2(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    return c.Register2Response(cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter)


@handles("Insurance/Quick")
async def insurance_quick(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    return c.InsuranceQuickResponse(insuranceStatus=p.insuranceStatus, cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter)


@handles("HcContent/Update")
async def hc_update(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    """Card content update: renews the validity to the end of next year and the visits to 6."""
    p = patient_of(store, sig)
    active_card(p)
    p.cardValidity = f"{store.now().year - 1911 + 1:03d}1231"
    p.treatmentCounter = "06"
    return c.HcContentUpdateResponse(cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter)


# --------------------------------------------------------------------------- simple marks


@handles("EmergentTel/Query")
async def tel_query(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    return c.EmergentTelResponse(tel=patient_of(store, sig).emergentTel)


@handles("EmergentTel/Write")
async def tel_write(store: SimStore, req: c.EmergentTelWriteRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    p.emergentTel = req.tel
    return c.CloudResponse()


@handles("OrganDonate/Query")
async def organ_query(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    return c.OrganDonateQueryResponse(organDonate=p.organDonate, palliativeCare=p.palliativeCare)


@handles("NewBorn/Write")
async def newborn_write(store: SimStore, req: c.NewBornWriteRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    born = parse_roc(req.newbornBirthday)
    today = parse_roc(store.today())
    if born > today or (today - born).days > 60:
        raise StatusError(Code.NEWBORN_RULE, "newborn birthday must be within the last 60 days")
    p.newbornBirthday, p.newbornBaby = req.newbornBirthday, req.newbornBaby
    return c.CloudResponse()


# --------------------------------------------------------------------------- preventive care, prenatal, inoculation


@handles("PreventData/Query")
async def prevent_query(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    items, total = page(p.preventiveCares, req, lambda x: x["checkDate"])
    return c.PreventQueryResponse(preventiveCares=[c.PreventiveCare(**x) for x in items], recordCount=total)


@handles("PreventData/Write")
async def prevent_write(store: SimStore, req: c.PreventWriteRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    if any(x["preventItem"] == req.preventItem and x["checkDate"] == req.checkDate for x in p.preventiveCares):
        raise StatusError(Code.PREVENT_RULE, "this preventive-care item is already recorded for that date")
    p.preventiveCares.append({"preventItem": req.preventItem, "checkDate": req.checkDate, "hospitalId": req.hospitalId})
    return c.CloudResponse()


@handles("PregnantData/Query")
async def pregnant_query(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    items, total = page(p.pregnantChecks, req, lambda x: x["checkDate"])
    return c.PregnantQueryResponse(pregnantChecks=[c.PregnantCheck(**x) for x in items], recordCount=total)


@handles("PregnantData/Write")
async def pregnant_write(store: SimStore, req: c.PregnantWriteRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    if p.sex != "F":
        raise StatusError(Code.PREGNANT_RULE, "prenatal checks are for female insured persons")
    if any(x["checkItem"] == req.checkItem and x["checkDate"] == req.checkDate for x in p.pregnantChecks):
        raise StatusError(Code.PREGNANT_RULE, "this prenatal check is already recorded for that date")
    p.pregnantChecks.append({"checkItem": req.checkItem, "checkDate": req.checkDate, "hospitalId": req.hospitalId})
    return c.CloudResponse()


@handles("PregnantData/Delete")
async def pregnant_delete(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    active_card(p)
    n = len(p.pregnantChecks)
    p.pregnantChecks.clear()
    return c.PregnantDeleteResponse(deleted=n)


@handles("Inoculate/Query")
async def inoculate_query(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    items, total = page(p.inoculations, req, lambda x: x["inoculateDate"])
    return c.InoculateQueryResponse(inoculations=[c.Inoculation(**x) for x in items], recordCount=total)


@handles("Inoculate/Write")
async def inoculate_write(store: SimStore, req: c.InoculateWriteRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    if parse_roc(req.inoculateDate) > parse_roc(store.today()):
        raise StatusError(Code.PARAM_VALUE, "inoculateDate is in the future")
    p.inoculations.append({"item": req.item, "inoculateDate": req.inoculateDate, "hospitalId": req.hospitalId, "lotNumber": req.lotNumber})
    return c.CloudResponse()


# --------------------------------------------------------------------------- allergies (3 card slots)


@handles("AllergicMedicines/Query")
async def allergic_query(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    items, total = page(list(p.allergies.values()), req, lambda x: x["writeDateTime"])
    return c.AllergicQueryResponse(allergicMedicines=[c.AllergicMedicine(**x) for x in items], recordCount=total)


def _allergy(store: SimStore, req: c.AllergicWriteRequest, index: int) -> dict[str, Any]:
    return {"index": index, "medicine": req.medicine, "writeDateTime": roc_datetime(store.now()), "hospitalId": req.hospitalId}


@handles("AllergicMedicines/Write")
async def allergic_write(store: SimStore, req: c.AllergicWriteRequest, _r: Route) -> BaseModel:
    """Into the first empty slot; with all three used, over the oldest entry (as the card's cyclic area)."""
    p = patient_of(store, req)
    active_card(p)
    free = [i for i in (1, 2, 3) if i not in p.allergies]
    index = free[0] if free else min(p.allergies.values(), key=lambda x: x["writeDateTime"])["index"]
    p.allergies[index] = _allergy(store, req, index)
    return c.CloudResponse()


@handles("AllergicMedicines/WriteByIndex")
async def allergic_write_index(store: SimStore, req: c.AllergicWriteByIndexRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    p.allergies[req.index] = _allergy(store, req, req.index)
    return c.CloudResponse()


# --------------------------------------------------------------------------- critical illness, treatments


@handles("CriticalIllness/Query")
async def critical_query(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    items = sorted(p.criticalIllnesses, key=lambda x: x["validityStart"], reverse=True)
    return c.CriticalIllnessResponse(criticalIllnesses=[c.CriticalIllness(**x) for x in items])


@handles("Treatment/NoNeedHPC")
async def treatment_no_hpc(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    items, total = page(visits(p), req, lambda t: t.treatDateTime)
    cis = sorted(p.criticalIllnesses, key=lambda x: x["validityStart"], reverse=True)
    return c.TreatmentNoNeedHpcResponse(
        criticalIllnesses=[c.CriticalIllnessPeriod(validityStart=x["validityStart"], validityEnd=x["validityEnd"]) for x in cis],
        treatments=[
            c.TreatmentNoNeedHpc(
                treatmentItem=t.treatmentItem, babyTreatment=t.babyTreatment, treatDateTime=t.treatDateTime, afterCheck=t.afterCheck,
                hospitalVisit=t.sequenceNumber, hospitalId=t.hospitalId, **{k: t.fees.get(k, 0) for k in FEES},
            )
            for t in items
        ],
        recordCount=total,
    )


@handles("Treatment/NeedHPC")
async def treatment_need_hpc(store: SimStore, req: c.FormatListQueryRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    items, total = page(visits(p), req, lambda t: t.treatDateTime)
    cis = sorted(p.criticalIllnesses, key=lambda x: x["validityStart"], reverse=True)
    return c.TreatmentNeedHpcResponse(
        criticalIllnesses=[c.CriticalIllness(**x) for x in cis],
        treatments=[c.TreatmentNeedHpc(treatDateTime=t.treatDateTime, **{k: t.codes.get(k, "") for k in CODES}) for t in items],
        recordCount=total,
    )


@handles("Treatment/WriteCode")
async def write_code(store: SimStore, req: c.TreatmentWriteCodeRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    t = find_visit(p, req.hospitalId, req.treatmentDateTime)
    if t.codes.get("mainCode"):
        raise StatusError(Code.DIAGNOSIS_WRITTEN)
    t.codes = _fields(req, CODES)
    t.afterCheck = req.afterCheck
    return c.TreatmentWriteResponse(treatmentDateTime=t.treatDateTime, hpcIdNo=req.hpcIdNo)


@handles("Treatment/WriteCodeFee")
async def write_code_fee(store: SimStore, req: c.TreatmentWriteCodeFeeRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    t = find_visit(p, req.hospitalId, req.treatmentDateTime)
    if t.codes.get("mainCode"):
        raise StatusError(Code.DIAGNOSIS_WRITTEN)
    t.codes = _fields(req, CODES)
    t.fees = _fields(req, FEES)
    t.afterCheck = req.afterCheck
    return c.TreatmentWriteResponse(treatmentDateTime=t.treatDateTime, hpcIdNo=req.hpcIdNo)


@handles("Treatment/WriteFee")
async def write_fee(store: SimStore, req: c.TreatmentWriteFeeRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    t = find_visit(p, req.hospitalId, req.treatmentDateTime)
    t.fees = _fields(req, FEES)
    return c.TreatmentWriteResponse(treatmentDateTime=t.treatDateTime)


def _year_visits(store: SimStore, p: Patient) -> tuple[str, list[Treatment]]:
    year = f"{store.now().year - 1911:03d}"
    return year, [t for t in visits(p) if t.counting and t.treatDateTime.startswith(year)]


@handles("CumulativeData/Query")
async def cumulative_data(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    """This ROC year's counting visits: 05 is inpatient, 01-04 and 06-09 outpatient."""
    p = patient_of(store, sig)
    year, ts = _year_visits(store, p)
    return c.CumulativeDataResponse(
        year=year,
        outpatientTimes=sum(1 for t in ts if t.treatmentItem != "05"),
        inpatientTimes=sum(1 for t in ts if t.treatmentItem == "05"),
        costFeeTotal=sum(t.fees.get("costFee", 0) + t.fees.get("inpatient30Fee", 0) + t.fees.get("inpatient180Fee", 0) for t in ts),
        inpatient30FeeTotal=sum(t.fees.get("inpatient30Fee", 0) for t in ts),
        inpatient180FeeTotal=sum(t.fees.get("inpatient180Fee", 0) for t in ts),
    )


@handles("CumulativeFee/Query")
async def cumulative_fee(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    year, ts = _year_visits(store, p)
    return c.CumulativeFeeResponse(
        year=year,
        outpatientFeeTotal=sum(t.fees.get("outpatientFee", 0) for t in ts),
        inpatientFeeTotal=sum(t.fees.get("inpatientFee", 0) for t in ts),
    )


# --------------------------------------------------------------------------- prescriptions


def _prescriptions(store: SimStore, req: c.ListQueryRequest, kinds: set[str]) -> tuple[list[c.OutpatientPrescription], int]:
    p = patient_of(store, req)
    items, total = page([x for x in p.prescriptions if x["treatmentItem"] in kinds], req, lambda x: x["treatmentDateTime"])
    return [c.OutpatientPrescription(**x) for x in items], total


@handles("Prescription/Query")
async def prescription_query(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    items, total = _prescriptions(store, req, {"1", "2", "3", "4"})
    return c.PrescriptionQueryResponse(outpatientPrescriptions=items, recordCount=total)


@handles("Prescription/LongQuery")
async def prescription_long(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    """Long-term prescriptions: items of 醫令類別 2."""
    items, total = _prescriptions(store, req, {"2"})
    return c.LongTermPrescriptionResponse(longTermPrescriptions=items, recordCount=total)


@handles("Prescription/HveQuery")
async def prescription_hve(store: SimStore, req: c.ListQueryRequest, _r: Route) -> BaseModel:
    """Important orders (重要醫令): items of 醫令類別 3 (treatment) and 4 (special material)."""
    items, total = _prescriptions(store, req, {"3", "4"})
    return c.ImportantOrderResponse(importantOrders=items, recordCount=total)


@handles("Prescription/Write")
async def prescription_write(store: SimStore, req: c.PrescriptionWriteRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    find_visit(p, req.hospitalId, req.treatmentDateTime)
    sigs: list[bytes] = []
    for item in req.prescriptions:
        row = item.model_dump()
        row["hospitalId"] = req.hospitalId
        p.prescriptions.append(row)
        sigs.append(hashlib.sha256(("|".join(str(v) for v in row.values()) + req.clientRandom).encode()).digest()[:20])
    return c.PrescriptionWriteResponse(signatureItems=[base64.b64encode(s).decode() for s in sigs], hexSignatureItems=[s.hex().upper() for s in sigs])


# --------------------------------------------------------------------------- sequence and treatment numbers


@handles("SequalNumber/Last")
async def last_seq(store: SimStore, sig: SignatureObject, _r: Route) -> BaseModel:
    p = patient_of(store, sig)
    ts = sorted((t for t in visits(p) if t.sequenceNumber), key=lambda t: t.treatDateTime, reverse=True)
    if not ts:
        return c.LastSeqResponse()
    return c.LastSeqResponse(treatmentDateTime=ts[0].treatDateTime, sequenceNumber=ts[0].sequenceNumber, hospitalId=ts[0].hospitalId)


def _free_datetime(p: Patient, when: dt.datetime) -> str:
    """A visit time of this patient not used yet (two numbers in one second get successive seconds)."""
    taken = {t.treatDateTime for t in p.treatments}
    while roc_datetime(when) in taken:
        when += dt.timedelta(seconds=1)
    return roc_datetime(when)


def _treatment_number(store: SimStore, hospital_id: str, day: str) -> str:
    n = store.next_treatment_number(hospital_id, day)
    if n is None:
        raise StatusError(Code.TREATMENT_NUMBER_FAILED, "treatment numbers of the day used up")
    return n


@handles("SeqNumber/Next")
@handles("SequelNumber/Next")
async def seq_next(store: SimStore, req: c.SeqNextRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    active_card(p)
    today = store.today()
    if p.cardValidity < today:
        raise StatusError(Code.CARD_UPDATE_NEEDED, "card validity date passed: update the card (HcContent/Update)")
    counting = req.treatmentItem in COUNTING_ITEMS
    if counting and int(p.treatmentCounter or "0") <= 0:
        raise StatusError(Code.NO_VISITS_LEFT, "no available visits: update the card (HcContent/Update)")
    same_day = any(t.counting and t.hospitalId == req.hospitalId and t.treatDateTime.startswith(today) for t in visits(p))
    seq = ""
    if counting:
        got = store.next_sequence(req.hospitalId, today)
        if got is None:
            raise StatusError(Code.TREATMENT_NUMBER_FAILED, "sequence numbers of the day used up (W999)")
        seq = got
    number = _treatment_number(store, req.hospitalId, today)
    when = _free_datetime(p, store.now())
    p.treatments.append(Treatment(req.hospitalId, when, req.treatmentItem, req.babyTreatment, req.afterCheck, seq, number, store.now_s(), counting))
    if counting:
        p.treatmentCounter = f"{int(p.treatmentCounter) - 1:02d}"
    return c.SeqNextResponse(
        treatmentDateTime=when, sequenceNumber=seq, hospitalId=req.hospitalId, samId=req.samId, isSameDay=same_day, treatmentNumber=number,
        signature=security_signature(when, seq, req.hospitalId, req.samId, p.cardSn, number),
    )


@handles("SequelNumber/Rollback")
async def rollback(store: SimStore, req: c.RollbackRequest, _r: Route) -> BaseModel:
    p = patient_of(store, req)
    mine = [t for t in p.treatments if t.treatDateTime == req.treatmentDateTime and t.hospitalId == req.hospitalId]
    if mine and all(t.rolledBack for t in mine):
        raise StatusError(Code.ROLLBACK_DONE)
    t = find_visit(p, req.hospitalId, req.treatmentDateTime)
    if store.now_s() - t.created_s > ROLLBACK_WINDOW_S:
        raise StatusError(Code.ROLLBACK_TOO_LATE)
    if not t.treatmentItem.isdigit():
        raise StatusError(Code.ROLLBACK_NUMERIC_ONLY, f"visit type {t.treatmentItem!r} is not numeric")
    if t.written:
        raise StatusError(Code.DIAGNOSIS_WRITTEN, "treatment data already written: the visit cannot be rolled back")
    t.rolledBack = True
    if t.counting:
        p.treatmentCounter = f"{int(p.treatmentCounter) + 1:02d}"
    return c.RollbackResponse(treatmentDateTime=t.treatDateTime, sequenceNumber=t.sequenceNumber)


@handles("TreatmentNumber/Card")
async def treatment_number_card(store: SimStore, req: c.TreatmentNumberCardRequest, _r: Route) -> BaseModel:
    """The visit's 就醫識別碼; a visit time with no visit yet gets a new number (recorded, no sequence number)."""
    p = patient_of(store, req)
    active_card(p)
    try:
        return c.TreatmentNumberResponse(treatmentNumber=find_visit(p, req.hospitalId, req.treatmentDateTime).treatmentNumber)
    except StatusError as err:
        if err.code != Code.REGISTRATION_NOT_FOUND:
            raise
    number = _treatment_number(store, req.hospitalId, req.treatmentDateTime[:7])
    p.treatments.append(Treatment(req.hospitalId, req.treatmentDateTime, "", "", "1", "", number, store.now_s(), False))
    return c.TreatmentNumberResponse(treatmentNumber=number)


@handles("TreatmentNumber/NoCard")
async def treatment_number_nocard(store: SimStore, req: c.TreatmentNumberNoCardRequest, _r: Route) -> BaseModel:
    """異常時 (no card): SAM signature and the patient's ID; recorded as a 補卡 (afterCheck 2) visit."""
    p = patient_by_id(store, req.patientId)
    active_card(p)
    when = req.treatmentDateTime or _free_datetime(p, store.now())
    number = _treatment_number(store, req.hospitalId, when[:7])
    p.treatments.append(Treatment(req.hospitalId, when, "", "", "2", "", number, store.now_s(), False))
    return c.TreatmentNumberNoCardResponse(treatmentDateTime=when, hospitalId=req.hospitalId, treatmentNumber=number)


# --------------------------------------------------------------------------- upload


@handles("UploadData/Upload")
async def upload(store: SimStore, req: c.UploadRequest, _r: Route) -> BaseModel:
    return take_upload(store, req.hospitalId, req.samId, req.sType, req.sPatData, req.sUploadDT)


_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")


def _parse_xml(xml: bytes) -> ET.Element:
    """The upload's XML. IC-data files are Big5 (``<?xml ... encoding="Big5"?>``), which expat cannot read:
    a declared encoding other than UTF-8 is decoded here first."""
    decl = _XML_DECL.match(xml)
    try:
        if decl and decl.group(1).decode().lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii", "ascii"):
            return ET.fromstring(xml[decl.end() :].decode(decl.group(1).decode()))
        return ET.fromstring(xml)
    except (ET.ParseError, LookupError, UnicodeDecodeError, ValueError) as exc:
        raise StatusError(Code.PARAM_FORMAT, f"sPatData is not well-formed XML ({type(exc).__name__})") from exc


def take_upload(store: SimStore, hospital_id: str, sam_id: str, s_type: str, pat_data: str, upload_dt: str) -> c.UploadResponse:
    """An IC-data upload (``UploadData/Upload`` and the upload host's ``VNHI_Upload``): the XML parsed and
    kept (``store.uploaded``); raises the rule's StatusError."""
    try:
        xml = base64.b64decode(pat_data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StatusError(Code.PARAM_FORMAT, "sPatData is not base64") from exc
    if b"<!DOCTYPE" in xml.upper() or b"<!ENTITY" in xml.upper():
        raise StatusError(Code.PARAM_FORMAT, "sPatData: DOCTYPE / ENTITY not allowed")
    root = _parse_xml(xml)
    signed = parse_roc(upload_dt)
    now = store.now()
    age_s = (now - signed).total_seconds()
    if age_s > UPLOAD_MAX_AGE_S or age_s < -UPLOAD_MAX_AHEAD_S:
        raise StatusError(Code.UPLOAD_SIGNATURE_EXPIRED, RtnCode="8203")
    digest = hashlib.sha256(xml).hexdigest()
    if s_type == "A1":
        if (hospital_id, digest) in store.uploads:
            raise StatusError(Code.DUPLICATE_UPLOAD, RtnCode="3236")
        store.uploads.add((hospital_id, digest))
    store.upload_counter += 1
    up = f"{signed:%Y%m%d%H%M%S}"
    rcv = f"{now:%Y%m%d%H%M%S}"
    opcode = f"{up}{store.upload_counter % 1_000_000:06d}{hospital_id:<10.10}{sam_id:<12.12}"
    store.uploaded.append(UploadedFile(opcode, hospital_id, sam_id, s_type, root.tag, xml))
    del store.uploaded[: -store.uploaded_max]
    return c.UploadResponse(Opcode=opcode, samId=sam_id, hospitalId=hospital_id, uploadDateTime=up, receiveDateTime=rcv)


# --------------------------------------------------------------------------- ICD-10 押碼

_ICD_KEY = [b % 36 for b in hashlib.sha256("nhigw ICD-10-CM 押碼 v1".encode()).digest()]


def icd_needs_encoding(code: str) -> bool:
    """Public facts 2.2: codes longer than 5 characters, and codes starting with E or V, are encoded."""
    return len(code) > 5 or code[0] in "EV"


def _icd_shift(code: str, sign: int) -> str:
    return code[0] + "".join(B36[(B36.index(ch) + sign * _ICD_KEY[i]) % 36] for i, ch in enumerate(code[1:], start=1))


def icd_encode(raw: str) -> str:
    """Reversible 押碼: upper-case, drop the dot; codes that need encoding keep their first letter and
    length, and every later character is shifted over ``0-9A-Z`` by a fixed key (``_ICD_KEY``,
    position-dependent); other codes pass unchanged. Not a valid ICD-10-CM shape -> 3501."""
    code = raw.upper().replace(".", "")
    if not (3 <= len(code) <= 7 and code[0].isalpha() and code[1].isdigit() and all(ch in B36 for ch in code)):
        raise StatusError(Code.ICD_NOT_ENCODABLE, "not an ICD-10-CM code (letter, digit, 1-5 more characters)")
    return _icd_shift(code, +1) if icd_needs_encoding(code) else code


def icd_decode(encoded: str) -> str:
    code = encoded.upper()
    if not (3 <= len(code) <= 7 and code[0].isalpha() and all(ch in B36 for ch in code)):
        raise StatusError(Code.ICD_NOT_ENCODABLE, "not an encoded ICD-10-CM code")
    plain = _icd_shift(code, -1) if icd_needs_encoding(code) else code
    if not plain[1].isdigit():
        raise StatusError(Code.ICD_ENCODE_FAILED, "this is not the output of Icd/Encode")
    return plain


@handles("Icd/Encode")
async def icd_encode_route(_s: SimStore, req: c.IcdEncodeRequest, _r: Route) -> BaseModel:
    return c.IcdEncodeResponse(encodedCode=icd_encode(req.icdCode))


@handles("Icd/Decode")
async def icd_decode_route(_s: SimStore, req: c.IcdDecodeRequest, _r: Route) -> BaseModel:
    return c.IcdDecodeResponse(icdCode=icd_decode(req.encodedCode))


# --------------------------------------------------------------------------- telemedicine


@handles("TeleMedicine/RequestToken")
async def tele_request(store: SimStore, req: c.TeleRequestTokenRequest, _r: Route) -> BaseModel:
    p = patient_by_id(store, req.patientId)
    active_card(p)
    token = secrets.token_urlsafe(24)
    now = store.now_s()
    for k in [k for k, v in store.access_tokens.items() if v[2] < now]:
        del store.access_tokens[k]
    store.access_tokens[token] = (p.idCardNum, req.hospitalId, now + ACCESS_TOKEN_TTL_S)
    return c.TeleRequestTokenResponse(accessToken=token)


@handles("TeleMedicine/ResponseToken")
async def tele_response(store: SimStore, req: c.TeleResponseTokenRequest, _r: Route) -> BaseModel:
    entry = store.access_tokens.get(req.accessToken)
    if entry is None or entry[1] != req.hospitalId:
        raise StatusError(Code.ACCESS_TOKEN_INVALID)
    del store.access_tokens[req.accessToken]
    if entry[2] < store.now_s():
        raise StatusError(Code.ACCESS_TOKEN_EXPIRED)
    p = store.patients_by_id[entry[0]]
    if store.vhc_issue is not None:
        token = store.vhc_issue(p.cardSn, VHC_TOKEN_TTL_S)
    else:  # no DC token authority mounted: an opaque token that names no person
        token = "NHIVHC-TLM." + secrets.token_urlsafe(24)
    return c.TeleResponseTokenResponse(virtualCardToken=token)


__all__ = ["icd_decode", "icd_encode", "patient_of", "roc_date"]
