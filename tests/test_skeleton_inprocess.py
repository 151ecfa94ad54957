"""The registration flow and its failure modes, through real HTTP servers in one process."""

from __future__ import annotations

import asyncio

import pytest

from nhigw.contracts.codes import http_status
from tests.helpers import eventually, ok
from tests.stack import running_stack

TEST10 = {"cardSn": "000073898381", "name": "測試十", "idCardNum": "Z299999929", "birthday": "0920315", "sex": "F", "dateIssue": "1050217"}


async def test_one_call_and_pass_through_registration_return_the_patient() -> None:
    async with running_stack() as s:
        await s.ready()
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        assert status == 200, body
        assert {k: body[k] for k in TEST10} == TEST10
        assert body["statusCode"] == 0

        status, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        assert status == 200 and sig["statusCode"] == 0
        assert sig["hcId"] == "000073898381" and sig["hcIdNo"] == "Z299999929" and sig["samId"] == "001000000103"
        status, body2 = await s.gw("/api/v1/BasicData/Register", sig)
        assert status == 200, body2
        assert {k: body2[k] for k in TEST10} == TEST10
        assert s.store.calls["BasicData/Register"] == 2  # one upstream call per HIS request


async def test_replayed_signature_is_refused_with_3245() -> None:
    async with running_stack() as s:
        await s.ready()
        _, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        assert ok(await s.gw("/api/v1/BasicData/Query", sig))
        status, body = await s.gw("/api/v1/BasicData/Query", sig)
        assert status == 200 and body["statusCode"] == 3245
        assert body["message"] and body["messageEn"]


async def test_signature_for_another_service_type_is_refused_with_3100() -> None:
    async with running_stack() as s:
        await s.ready()
        _, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "03"})
        sig.pop("serviceType")  # HIS code often drops it; the signature still binds it
        status, body = await s.gw("/api/v1/BasicData/Register", sig)
        assert status == 200 and body["statusCode"] == 3100


async def test_tampered_signature_object_is_refused_with_3100() -> None:
    async with running_stack() as s:
        await s.ready()
        _, sig = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        sig["hcIdNo"] = "A234567890"
        status, body = await s.gw("/api/v1/BasicData/Register", sig)
        assert status == 200 and body["statusCode"] == 3100


@pytest.mark.parametrize(
    ("method", "path", "raw", "code"),
    [
        ("POST", "/api/hc/v1/Signature/Hc", b"{not json", 9414),
        ("POST", "/api/hc/v1/Signature/Hc", b'{"serviceType": "77"}', 1706),
        ("POST", "/api/hc/v1/Signature/Hc", b'{"serviceType": 1}', 1706),
        ("POST", "/api/common/v1/Initial", b'["x"]', 1706),
        ("GET", "/api/hc/v1/Nope", b"", 9405),
    ],
)
async def test_bad_input_gets_a_json_error_with_a_6_0_code(method: str, path: str, raw: bytes, code: int) -> None:
    async with running_stack() as s:
        await s.ready()
        status, body = await s.agent_call(method, path, data=raw, headers={"Content-Type": "application/json"})
        assert status == http_status(code) and (status == 200) is (code not in (9405, 9414))  # 6.0 codes: 200; no route, not JSON: 404, 400
        assert body["statusCode"] == code
        assert body["message"] and body["messageEn"]
        assert "Traceback" not in str(body)


async def test_calls_in_the_wrong_state_get_the_seed_codes() -> None:
    async with running_stack() as s:
        # Not initialised yet.
        status, body = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        assert status == 200 and body["statusCode"] == 1000
        assert (await s.agent_call("POST", "/api/common/v1/Initial", json={}))[1]["statusCode"] == 0
        # Initialised twice.
        assert (await s.agent_call("POST", "/api/common/v1/Initial", json={}))[1]["statusCode"] == 1001
        # SAM present but not verified (state 1): HC state 1, signatures need SAM 2.
        _, st = await s.agent_call("GET", "/api/common/v1/Status")
        assert st["status"]["sam"]["status"] == 1 and st["status"]["hc"]["status"] == 1
        status, body = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        assert body["statusCode"] == 1301
        # The public basic profile of a physical HC needs no SAM (issue 2: as real cards allow).
        status, basic = await s.agent_call("GET", "/api/hc/v1/Basic")
        assert status == 200 and basic["name"] == "測試十"
        # SAM logout needs state 2.
        assert (await s.agent_call("POST", "/api/sam/v1/Logout"))[1]["statusCode"] == 1301


async def test_signature_with_no_health_card() -> None:
    async with running_stack() as s:
        s.bank.remove(s.bank.names[1])  # the HC
        await s.ready()
        status, body = await s.agent_call("POST", "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        assert status == 200 and body["statusCode"] == 1501
        # One-call through the gateway: the agent's code, said by the gateway.
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        assert status == 200 and body["statusCode"] == 1501 and body["workstation"] == "ws-01"
        # A SAM signature still works without an HC.
        status, sig = await s.agent_call("POST", "/api/sam/v1/Signature", json={"serviceType": "01"})
        assert status == 200 and "hcId" not in sig and sig["samId"] == "001000000103"


async def test_card_removed_then_inserted_is_seen_by_status() -> None:
    async with running_stack() as s:
        await s.ready()
        hc_reader = s.bank.names[1]
        card = s.bank.cards[hc_reader]

        async def hc_status(want: int) -> bool:
            _, st = await s.agent_call("GET", "/api/common/v1/Status")
            return bool(st["status"]["hc"]["status"] == want)

        s.bank.remove(hc_reader)
        assert await eventually(lambda: hc_status(0)), "the removal is not seen"
        s.bank.insert(hc_reader, card)
        assert await eventually(lambda: hc_status(2)), "the insertion is not seen"


async def test_unknown_workstation_is_offline_at_once() -> None:
    async with running_stack() as s:
        await s.ready()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-99")
        assert status == 200 and body["statusCode"] == 9400
        assert loop.time() - t0 < 2.0  # no hang waiting for a reply that cannot come


async def test_gateway_lists_the_workstation_with_its_states() -> None:
    async with running_stack() as s:
        await s.ready()
        ws: dict = {}

        async def sam_verified_seen() -> bool:
            _, body = await s.call("GET", s.gateway_url + "/api/workstations")
            ws.update({w["workstation"]: w for w in body["workstations"]})
            return bool(ws.get("ws-01", {}).get("states", {}).get("sam") == 2)

        assert await eventually(sam_verified_seen)
        assert ws["ws-01"]["online"] is True
        assert ws["ws-01"]["states"] == {"initialized": True, "sam": 2, "hpc": 2, "hc": 2, "reader": ws["ws-01"]["states"]["reader"]}
