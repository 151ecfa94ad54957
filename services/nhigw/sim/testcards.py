"""The seed's test-card API for virtual health cards (虛擬健保卡測試卡), simulated.

- ``POST /test/v1/ApplyVirtualHc/Apply`` (SAM signature, serviceType 06; public facts 3.3):
  ``{sex, birthday, isForeigner}`` -> a new test patient (card number, ID number). At most 10
  per institution (3205 after that). The patient goes into ``SimStore.patients_by_id``, where
  the DC's ``/test/v1/VirtualHc/QrCode`` and ``/dc/v1/VirtualHc/Verify`` (``dc.py``) find it.
  Card numbers are ``0000`` + 8 digits from 90000001; ID numbers start with ``T``, the second
  digit is 1/2 (M/F) or, for foreigners (the 2021 format), 8/9, and carry a valid check digit.
- ``POST /test/v1/VirtualHc/CriticalIllness``, ``/Identity``, ``/OrganDonate``: set the
  critical-illness, identity and organ-donation / hospice marks of a test card, named by card
  number and birthday (seed: 輸入卡號、生日、註記資料). Only cards made by Apply (3205 otherwise);
  a wrong birthday is 3203.
- ``POST /test/v1/ApplyVirtualHc/List`` (SAM signature, serviceType 06; path and fields are this
  simulator's choice, the seed names no API for it): the calling institution's test cards, oldest
  first, and how many more it may apply for (``remaining``).
- ``POST /test/v1/ApplyVirtualHc/Delete`` (SAM signature, serviceType 06; ``cardSn`` and
  ``birthday``): give one back; its place of the 10 is free again, its card number is never issued
  again, its QR tokens no longer verify (the DC answers 3203). Another institution's card is 3205
  (as a card that is not a test card); a wrong birthday 3203.
- ``POST /test/v1/VirtualHc/QrCode`` (``dc.py``): a card's QR code by card number and birthday,
  with the seed's 是否有PIN / 是否驗PIN options (``hasPin``, ``verifyPin``).
"""

from __future__ import annotations

from aiohttp import web

from nhigw.common.http import json_response, parse_body
from nhigw.contracts.cloud import (
    ApplyVirtualHcRequest,
    ApplyVirtualHcResponse,
    CloudResponse,
    TestCard,
    TestCardDeleteRequest,
    TestCardList,
    TestCardListRequest,
    TestCardRef,
    TestCriticalIllnessRequest,
    TestIdentityRequest,
    TestOrganDonateRequest,
)
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import SignatureKind
from nhigw.contracts.routes import Route
from nhigw.sim.auth import check_signature
from nhigw.sim.dc import STORE
from nhigw.sim.store import Patient, SimStore

APPLY_ROUTE = Route("ApplyVirtualHc/Apply", SignatureKind.SAM, "06", True, "申請虛擬健保卡測試卡")
LIST_ROUTE = Route("ApplyVirtualHc/List", SignatureKind.SAM, "06", False, "本院所的虛擬健保卡測試卡")
DELETE_ROUTE = Route("ApplyVirtualHc/Delete", SignatureKind.SAM, "06", True, "刪除虛擬健保卡測試卡")
_LETTERS = "ABCDEFGHJKLMNPQRSTUVXYWZIO"  # letter -> 10..35 of the ID check-digit rule


def id_check_digit(first9: str) -> str:
    n = _LETTERS.index(first9[0]) + 10
    digits = [n // 10, n % 10] + [int(x) for x in first9[1:]]
    total = sum(d * w for d, w in zip(digits, [1, 9, 8, 7, 6, 5, 4, 3, 2, 1], strict=True))
    return first9 + str((10 - total % 10) % 10)


def _test_card(st: SimStore, ref: TestCardRef) -> Patient:
    p = next((x for x in st.patients_by_id.values() if x.cardSn == ref.cardSn), None)
    if p is None or p.testCardOf is None:
        raise StatusError(Code.RESTRICTED, "not a virtual test card made by ApplyVirtualHc/Apply")
    if p.birthday != ref.birthday:
        raise StatusError(Code.CARD_CANCELLED, "card number and birthday do not match")
    return p


def _card(p: Patient) -> TestCard:
    return TestCard(cardSn=p.cardSn, idCardNum=p.idCardNum, name=p.name, birthday=p.birthday, sex=p.sex, isForeigner=p.isForeigner)


def _cards_of(st: SimStore, hospital_id: str) -> list[Patient]:
    return sorted((p for p in st.patients_by_id.values() if p.testCardOf == hospital_id), key=lambda p: p.cardSn)


async def apply(req: web.Request) -> web.Response:
    st = req.app[STORE]
    body = await parse_body(req, ApplyVirtualHcRequest, empty_ok=False)
    check_signature(st, body, APPLY_ROUTE)
    mine = _cards_of(st, body.hospitalId)
    if len(mine) >= st.test_cards_max:
        raise StatusError(Code.RESTRICTED, f"an institution may apply for at most {st.test_cards_max} test cards")
    st.test_card_counter += 1
    n = st.test_card_counter
    second = ("8" if body.sex == "M" else "9") if body.isForeigner else ("1" if body.sex == "M" else "2")
    id_no = id_check_digit(f"T{second}{n:07d}")
    while id_no in st.patients_by_id:  # pragma: no cover - only with hand-made seeds
        n = st.test_card_counter = n + 1
        id_no = id_check_digit(f"T{second}{n:07d}")
    p = Patient(
        cardSn=f"0000{90000000 + n:08d}", name=body.name or f"虛擬測試{n}", idCardNum=id_no, birthday=body.birthday, sex=body.sex,
        dateIssue=st.today(), isForeigner=body.isForeigner, testCardOf=body.hospitalId,
    )
    st.patients_by_id[id_no] = p
    return json_response(ApplyVirtualHcResponse(cardSn=p.cardSn, idCardNum=p.idCardNum, name=p.name, birthday=p.birthday, sex=p.sex, isForeigner=p.isForeigner))


async def list_cards(req: web.Request) -> web.Response:
    st = req.app[STORE]
    body = await parse_body(req, TestCardListRequest, empty_ok=False)
    check_signature(st, body, LIST_ROUTE)
    mine = _cards_of(st, body.hospitalId)
    return json_response(TestCardList(cards=[_card(p) for p in mine], remaining=max(0, st.test_cards_max - len(mine))))


async def delete_card(req: web.Request) -> web.Response:
    st = req.app[STORE]
    body = await parse_body(req, TestCardDeleteRequest, empty_ok=False)
    check_signature(st, body, DELETE_ROUTE)
    p = _test_card(st, TestCardRef(cardSn=body.cardSn, birthday=body.birthday))
    if p.testCardOf != body.hospitalId:
        raise StatusError(Code.RESTRICTED, "this test card belongs to another institution")
    del st.patients_by_id[p.idCardNum]
    return json_response(CloudResponse())


async def critical(req: web.Request) -> web.Response:
    body = await parse_body(req, TestCriticalIllnessRequest, empty_ok=False)
    p = _test_card(req.app[STORE], body)
    p.criticalIllnesses = [x.model_dump() for x in body.criticalIllnesses]
    return json_response(CloudResponse())


async def identity(req: web.Request) -> web.Response:
    body = await parse_body(req, TestIdentityRequest, empty_ok=False)
    _test_card(req.app[STORE], body).identityStatus = body.identityStatus
    return json_response(CloudResponse())


async def organ(req: web.Request) -> web.Response:
    body = await parse_body(req, TestOrganDonateRequest, empty_ok=False)
    p = _test_card(req.app[STORE], body)
    p.organDonate, p.palliativeCare = body.organDonate, body.palliativeCare
    return json_response(CloudResponse())


ROUTES: list[web.RouteDef] = [
    web.post("/test/v1/ApplyVirtualHc/Apply", apply),
    web.post("/test/v1/ApplyVirtualHc/List", list_cards),
    web.post("/test/v1/ApplyVirtualHc/Delete", delete_card),
    web.post("/test/v1/VirtualHc/CriticalIllness", critical),
    web.post("/test/v1/VirtualHc/Identity", identity),
    web.post("/test/v1/VirtualHc/OrganDonate", organ),
]


def add_testcard_routes(app: web.Application) -> None:
    app.router.add_routes(ROUTES)
