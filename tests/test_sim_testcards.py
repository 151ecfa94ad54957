"""The test-card API (虛擬健保卡測試卡): apply, limits, marks, and the cards working in business calls."""

from __future__ import annotations

from nhigw.sim.testcards import id_check_digit
from tests.helpers import ok
from tests.simkit import Signer, running_sim


async def test_apply_for_test_cards_up_to_ten_per_institution() -> None:
    async with running_sim() as s:
        cards = []
        for i in range(10):
            body = s.signer.sign("06", sex="M" if i % 2 else "F", birthday="0900101", isForeigner=i == 3)
            status, card = await s.post("/test/v1/ApplyVirtualHc/Apply", body)
            assert status == 200, card
            cards.append(card)
        assert len({c["cardSn"] for c in cards}) == 10 and all(len(c["cardSn"]) == 12 for c in cards)
        assert all(id_check_digit(c["idCardNum"][:9]) == c["idCardNum"] for c in cards)
        assert cards[0]["idCardNum"][1] == "2" and cards[1]["idCardNum"][1] == "1" and cards[3]["idCardNum"][1] == "8"
        status, err = await s.post("/test/v1/ApplyVirtualHc/Apply", s.signer.sign("06", sex="F", birthday="0900101"))
        assert status == 200 and err["statusCode"] == 3205
        # the SAM signature must be for serviceType 06
        status, err = await s.post("/test/v1/ApplyVirtualHc/Apply", s.signer.sign("01", sex="F", birthday="0900101"))
        assert err["statusCode"] == 3100

        # a test card works in business calls and its marks can be set
        card = cards[0]
        hc = {"hcId": card["cardSn"], "hcIdNo": card["idCardNum"]}
        _, basic = await s.call("BasicData/Query", hc=hc)
        assert (basic["idCardNum"], basic["birthday"], basic["sex"]) == (card["idCardNum"], "0900101", "F")
        ref = {"cardSn": card["cardSn"], "birthday": "0900101"}
        ci = [{"ciCode": "C50.911", "validityStart": "1130101", "validityEnd": "1180101"}]
        assert ok(await s.post("/test/v1/VirtualHc/CriticalIllness", {**ref, "criticalIllnesses": ci}))
        assert (await s.call("CriticalIllness/Query", hc=hc))[1]["criticalIllnesses"] == ci
        assert ok(await s.post("/test/v1/VirtualHc/OrganDonate", {**ref, "organDonate": "1", "palliativeCare": "1"}))
        assert (await s.call("OrganDonate/Query", hc=hc))[1] == {"statusCode": 0, "organDonate": "1", "palliativeCare": "1"}
        assert ok(await s.post("/test/v1/VirtualHc/Identity", {**ref, "identityStatus": "1"}))
        assert s.store.patients_by_id[card["idCardNum"]].identityStatus == "1"
        _, nxt = await s.call("SequelNumber/Next", hc=hc)
        assert nxt["sequenceNumber"] == "W001"
        # marks only for test cards, with the right birthday
        assert (await s.post("/test/v1/VirtualHc/Identity", {"cardSn": "000073898381", "birthday": "0920315", "identityStatus": "1"}))[1]["statusCode"] == 3205
        assert (await s.post("/test/v1/VirtualHc/Identity", {**ref, "birthday": "0900102", "identityStatus": "1"}))[1]["statusCode"] == 3203


async def test_list_and_delete_an_institutions_test_cards() -> None:
    async with running_sim() as s:
        other = Signer(samId="001000099902", hospitalId="3501288888")
        s.store.register_sam(other.samId, other.hospitalId, other.public_pem())
        status, empty = await s.post("/test/v1/ApplyVirtualHc/List", s.signer.sign("06"))
        assert status == 200 and empty == {"statusCode": 0, "cards": [], "remaining": 10}
        cards = [(await s.post("/test/v1/ApplyVirtualHc/Apply", s.signer.sign("06", sex="F", birthday=f"09001{i:02d}")))[1] for i in range(1, 11)]
        theirs = (await s.post("/test/v1/ApplyVirtualHc/Apply", other.sign("06", sex="M", birthday="0800101")))[1]
        _, listed = await s.post("/test/v1/ApplyVirtualHc/List", s.signer.sign("06"))
        assert [c["cardSn"] for c in listed["cards"]] == [c["cardSn"] for c in cards] and listed["remaining"] == 0
        assert listed["cards"][0] == {k: cards[0][k] for k in ("cardSn", "idCardNum", "name", "birthday", "sex", "isForeigner")}
        assert [c["cardSn"] for c in (await s.post("/test/v1/ApplyVirtualHc/List", other.sign("06")))[1]["cards"]] == [theirs["cardSn"]]
        # refusals: a SAM signature for serviceType 06, the card's birthday, the institution's own card, a test card
        assert (await s.post("/test/v1/ApplyVirtualHc/List", s.signer.sign("01")))[1]["statusCode"] == 3100
        first = {"cardSn": cards[0]["cardSn"], "birthday": cards[0]["birthday"]}
        assert (await s.post("/test/v1/ApplyVirtualHc/Delete", s.signer.sign("06", cardSn=first["cardSn"], birthday="0900102")))[1]["statusCode"] == 3203
        assert (await s.post("/test/v1/ApplyVirtualHc/Delete", other.sign("06", **first)))[1]["statusCode"] == 3205
        assert (await s.post("/test/v1/ApplyVirtualHc/Delete", s.signer.sign("06", cardSn="000073898381", birthday="0920315")))[1]["statusCode"] == 3205
        assert (await s.post("/test/v1/ApplyVirtualHc/Delete", s.signer.sign("06", cardSn="12", birthday="0900101")))[1]["statusCode"] == 1706
        # a deleted card frees its place, is gone from business calls and its number is not issued again
        assert ok(await s.post("/test/v1/ApplyVirtualHc/Delete", s.signer.sign("06", **first)))
        _, listed = await s.post("/test/v1/ApplyVirtualHc/List", s.signer.sign("06"))
        assert len(listed["cards"]) == 9 and listed["remaining"] == 1
        assert (await s.call("BasicData/Query", hc={"hcId": cards[0]["cardSn"], "hcIdNo": cards[0]["idCardNum"]}))[1]["statusCode"] == 3203
        status, new = await s.post("/test/v1/ApplyVirtualHc/Apply", s.signer.sign("06", sex="M", birthday="0900101"))
        assert ok((status, new)) and new["cardSn"] not in {c["cardSn"] for c in cards} | {theirs["cardSn"]}
        assert (await s.post("/test/v1/ApplyVirtualHc/Apply", s.signer.sign("06", sex="M", birthday="0900101")))[1]["statusCode"] == 3205
        assert len({c["idCardNum"] for c in [*cards, theirs, new]}) == 12
