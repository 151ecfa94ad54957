"""Business route handlers of the simulator (``/api/v1/...``), one per route of the seed's table.

Each handler gets the store, the verified signature object (with the HIS's extra
fields) and the route, and returns the response body. Register with ``@handles``.
"""

from __future__ import annotations

from typing import Any

from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import (
    BasicDataResponse,
    OpenModel,
    RegisterResponse,
    SignatureObject,
)
from nhigw.contracts.routes import Route
from nhigw.sim.registry import handles
from nhigw.sim.store import Patient, SimStore


def patient_of(store: SimStore, sig: SignatureObject) -> Patient:
    p = store.patients_by_id.get(sig.hcIdNo or "")
    if p is None or p.cardSn != sig.hcId:
        raise StatusError(Code.CARD_CANCELLED, "no insured person with this card")
    return p


@handles("BasicData/Query")
async def basic_query(store: SimStore, sig: SignatureObject, _r: Route) -> OpenModel:
    p = patient_of(store, sig)
    return BasicDataResponse(cardSn=p.cardSn, name=p.name, idCardNum=p.idCardNum, birthday=p.birthday, sex=p.sex, dateIssue=p.dateIssue, cancelTermination=p.cancelTermination, emergentTel=p.emergentTel)


@handles("BasicData/Register")
async def register(store: SimStore, sig: SignatureObject, _r: Route) -> OpenModel:
    p = patient_of(store, sig)
    return RegisterResponse(
        cardSn=p.cardSn, name=p.name, idCardNum=p.idCardNum, birthday=p.birthday, sex=p.sex, dateIssue=p.dateIssue,
        cancelTermination=p.cancelTermination, emergentTel=p.emergentTel, insurerCode=p.insurerCode, insurerId=p.insurerId,
        cardValidity=p.cardValidity, treatmentCounter=p.treatmentCounter, newbornBirthday=p.newbornBirthday, newbornBaby=p.newbornBaby,
    )


@handles("BasicData/Register2")
async def register2(store: SimStore, sig: SignatureObject, _r: Route) -> dict[str, Any]:
    p = patient_of(store, sig)
    return {"cardValidity": p.cardValidity, "treatmentCounter": p.treatmentCounter, "statusCode": 0}


