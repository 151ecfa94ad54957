"""Virtual cards made by the simulator work end to end through the agent: a test card applied
for (``/test/v1/ApplyVirtualHc/Apply``), and the QR code a telemedicine ``ResponseToken`` returns."""

from __future__ import annotations

from typing import Any

from tests.stack import Stack, running_stack


async def _sam_sig(s: Stack, service_type: str) -> dict[str, Any]:
    status, sig = await s.agent_call("POST", "/api/sam/v1/Signature", json={"serviceType": service_type})
    assert status == 200, sig
    sig.pop("statusCode")
    return sig


async def _basic_with_virtual_card(s: Stack, token: str) -> dict[str, Any]:
    status, body = await s.agent_call("POST", "/api/hc/v1/Verification/VirtualHc", json={"token": token})
    assert status == 200 and body["statusCode"] == 0, body
    status, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
    assert status == 200, sig
    status, basic = await s.call("POST", f"{s.sim_url}/api/v1/BasicData/Query", json=sig)
    assert status == 200, basic
    return basic


async def test_an_applied_test_card_is_used_as_a_virtual_hc() -> None:
    async with running_stack(cards=["sam:001000000103"]) as s:
        await s.ready()
        status, card = await s.call("POST", f"{s.sim_url}/test/v1/ApplyVirtualHc/Apply", json={**await _sam_sig(s, "06"), "sex": "M", "birthday": "0850505"})
        assert status == 200, card
        status, qr = await s.call("POST", f"{s.sim_url}/test/v1/VirtualHc/QrCode", json={"cardNo": card["cardSn"], "birthday": "0850505"})
        assert status == 200, qr
        basic = await _basic_with_virtual_card(s, qr["token"])
        assert (basic["cardSn"], basic["idCardNum"], basic["sex"]) == (card["cardSn"], card["idCardNum"], "M")
        hc = (await s.agent_call("GET", "/api/common/v1/Status"))[1]["status"]["hc"]
        assert (hc["virtual"], hc["pinSet"], hc["pinVerified"]) == (True, False, False)
        # ... and registers through the gateway (the agent signs with the virtual HC, the gateway calls the cloud)
        status, reg = await s.gw("/api/v1/BasicData/Register", workstation=s.workstation)
        assert status == 200 and reg["statusCode"] == 0 and reg["cardSn"] == card["cardSn"], reg
        # the QR options 是否有PIN / 是否驗PIN reach the agent's card status through the DC
        status, qr = await s.call("POST", f"{s.sim_url}/test/v1/VirtualHc/QrCode", json={"cardNo": card["cardSn"], "birthday": "0850505", "hasPin": True})
        assert status == 200, qr
        await _basic_with_virtual_card(s, qr["token"])
        hc = (await s.agent_call("GET", "/api/common/v1/Status"))[1]["status"]["hc"]
        assert (hc["pinSet"], hc["pinVerified"]) == (True, False)
        status, qr = await s.call("POST", f"{s.sim_url}/test/v1/VirtualHc/QrCode", json={"cardNo": card["cardSn"], "birthday": "0850505", "hasPin": True, "verifyPin": True})
        await _basic_with_virtual_card(s, qr["token"])
        hc = (await s.agent_call("GET", "/api/common/v1/Status"))[1]["status"]["hc"]
        assert (hc["pinSet"], hc["pinVerified"]) == (True, True)
        status, err = await s.call("POST", f"{s.sim_url}/test/v1/VirtualHc/QrCode", json={"cardNo": card["cardSn"], "birthday": "0850505", "verifyPin": True})
        assert err["statusCode"] == 1706, err  # a PIN cannot be verified on a card without one
        status, err = await s.call("POST", f"{s.sim_url}/test/v1/VirtualHc/QrCode", json={"cardNo": card["cardSn"], "birthday": "0850506"})
        assert err["statusCode"] == 1706, err  # wrong birthday


async def test_telemedicine_response_token_is_a_virtual_hc_qr_code() -> None:
    async with running_stack(cards=["sam:001000000103"]) as s:
        await s.ready()
        status, a = await s.call("POST", f"{s.sim_url}/api/v1/TeleMedicine/RequestToken", json={**await _sam_sig(s, "01"), "patientId": "A234567890"})
        assert status == 200, a
        status, r = await s.call("POST", f"{s.sim_url}/api/v1/TeleMedicine/ResponseToken", json={**await _sam_sig(s, "01"), "accessToken": a["accessToken"]})
        assert status == 200, r
        basic = await _basic_with_virtual_card(s, r["virtualCardToken"])
        assert basic["idCardNum"] == "A234567890" and basic["name"] == "歐陽測試"
