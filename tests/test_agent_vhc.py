"""Virtual health cards: QR tokens issued by the simulator's test-card API, resolved by the agent through the DC."""

from __future__ import annotations

import time

from tests.agent_stack import SAM, agent_stack
from tests.helpers import ok

TEST10 = {"cardSn": "000073898381", "name": "測試十", "idCardNum": "Z299999929", "birthday": "0920315", "sex": "F"}


async def test_virtual_hc_verify_sign_and_a_business_call_accepted_by_the_cloud() -> None:
    async with agent_stack([SAM]) as s:  # no physical HC at all
        await s.ready()
        token = await s.qr(birthday="0920315")
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": token}) == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hc"] == {"status": 2, "pinSet": False, "pinVerified": False, "virtual": True}  # the DC says whether the card has a PIN (test QR option hasPin)
        status, basic = await s.a("GET", "/api/hc/v1/Basic")
        assert status == 200 and basic["cardId"] == "000073898381" and basic["identityStatus"] == "3" and "dateIssue" not in basic

        status, sig = await s.a("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
        assert status == 200 and sig["hcId"] == "000073898381" and sig["hcIdNo"] == "Z299999929"
        status, body = await s.sim("/api/v1/BasicData/Register", sig)
        assert status == 200, body
        assert {k: body[k] for k in TEST10} == TEST10

        # The same QR code again, as 6.0 HIS code verifies it for each step of a visit: accepted.
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": token}) == 0

        # A virtual HC cannot call PIN functions.
        for method, body in (("GET", None), ("POST", {"pin": "1234"}), ("PUT", {"newPin": "1234"}), ("DELETE", None)):
            assert await s.code(method, "/api/hc/v1/Pin", body) == 1526

        # Logout: N -> 0; the signature then needs an HC again.
        assert await s.code("DELETE", "/api/hc/v1/Logout") == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hc"]["status"] == 0
        assert await s.code("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"}) == 1501


async def test_read_basic_does_not_verify_and_reports_data_issue_null() -> None:
    async with agent_stack([SAM]) as s:
        await s.ready()
        token = await s.qr("000073898382")
        status, body = await s.a("POST", "/api/hc/v1/VirtualHc/ReadBasic", {"token": token})
        assert status == 200
        assert body == {
            "cardId": "000073898382", "idNo": "A234567890", "name": "歐陽測試", "birthday": "1000101", "sex": "M",
            "dataIssue": None, "dateIssue": None, "identityStatus": "3", "statusCode": 0,
        }
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hc"]["status"] == 0  # ReadBasic reads; it does not verify a card
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": token}) == 0  # the same token verifies


async def test_expired_forged_and_malformed_tokens_are_refused() -> None:
    async with agent_stack([SAM]) as s:
        await s.ready()
        now = [time.time()]
        s.vhc.clock = lambda: now[0]  # the DC's clock: the token expires when the test moves it
        short = await s.qr(ttl_s=0.05)
        now[0] += 0.1
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": short}) == 1018
        good = await s.qr()
        prefix, body, mac = good.split(".")
        forged = f"{prefix}.{body}.{'A' * len(mac)}"
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": forged}) == 1522
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": "not a qr code"}) == 1521
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": ""}) == 1706
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {}) == 1705
        # The forged attempt did not use the good token up.
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": good}) == 0
        # Test-card API: an unknown patient or a wrong birthday gets no QR code.
        assert (await s.sim("/test/v1/VirtualHc/QrCode", {"cardNo": "000073898381", "birthday": "0010101"}))[1]["statusCode"] == 1706


async def test_exporting_the_transfer_code_logs_the_card_out_here_and_it_imports_elsewhere() -> None:
    async with agent_stack([SAM]) as s:
        await s.ready()
        first = await s.qr()
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": first}) == 0
        status, exp = await s.a("GET", "/api/hc/v1/VirtualHc/Import")
        assert status == 200 and exp["token"].startswith("NHIVHC1.") and exp["expiresAt"] > 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hc"]["status"] == 0  # seed: 匯出轉移碼 -> 原設備狀態 0
        assert await s.code("GET", "/api/hc/v1/VirtualHc/Import") == 1501
        # Another workstation (here: the same agent after Finalize/Initial) takes the transfer code.
        assert await s.code("POST", "/api/hc/v1/VirtualHc/Import", {"token": exp["token"]}) == 0
        _, sig = await s.a("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
        assert ok(await s.sim("/api/v1/BasicData/Query", sig))
        assert await s.code("POST", "/api/hc/v1/VirtualHc/Import", {"token": exp["token"]}) == 3244
        # The card moved: its QR code logs in nowhere any more, the origin included.
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": first}) == 1525


async def test_dc_requests_must_carry_a_valid_sam_signature() -> None:
    async with agent_stack([SAM]) as s:
        token = await s.qr()
        body = {"token": token, "purpose": "verify", "samId": "001000000103", "hospitalId": "3501200000", "clientRandom": "AAAAAAAAAAA=", "signature": "AAAA"}
        status, resp = await s.sim("/dc/v1/VirtualHc/Verify", body)
        assert status == 200 and resp["statusCode"] == 3100
        # The refused request did not use the token up.
        await s.ready()
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": token}) == 0
