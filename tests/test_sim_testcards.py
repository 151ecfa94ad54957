"""The test-card API (虛擬健保卡測試卡): apply, limits, marks, and the cards working in business calls."""

from __future__ import annotations

from nhigw.sim.testcards import id_check_digit
from tests.helpers import ok
from tests.simkit import running_sim


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
