"""What an HIS written against the real 6.0 sees: ``raise_for_status()``, then ``statusCode``.

The one public 6.0 client (facts section 3.3a) calls ``requests.request(...)``, then
``raise_for_status()``, and reads ``statusCode`` only from a 2xx body: a refusal answered
with HTTP 4xx/5xx reaches its user as -1 「不明的錯誤」. This client does the same, with
``requests`` in a thread, against the whole stack on loopback (simulator, agent, gateway),
and must read every 6.0 refusal as its code — never as a bare HTTP error. The few answers
that stay non-2xx (``nhigw.contracts.codes.HTTP_STATUS``) are checked to be exactly those.
"""

from __future__ import annotations

import asyncio
from typing import Any

import requests

from nhigw.contracts.codes import HTTP_STATUS, Code
from tests.stack import Stack, running_stack


def his_call(method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """As the public client: raise_for_status(), then the JSON body (its statusCode)."""
    r = requests.request(method, url, json=body, headers=headers, timeout=10)
    r.raise_for_status()  # a non-2xx answer: the HIS shows -1
    out = r.json()
    assert isinstance(out, dict) and isinstance(out.get("statusCode", 0), int), out
    return out


async def his(method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return await asyncio.to_thread(his_call, method, url, body, headers)


async def test_a_second_initial_is_1001_not_an_http_error() -> None:
    async with running_stack() as s:
        assert (await his("POST", s.agent_url + "/api/common/v1/Initial", {}))["statusCode"] == 0
        again = await his("POST", s.agent_url + "/api/common/v1/Initial", {})
        assert again["statusCode"] == 1001 and again["message"] == "控制軟體已初始化"
        # The same through the gateway's forwarding of the workstation's component API.
        fwd = await his("POST", s.gateway_url + "/api/workstations/ws-01/common/v1/Initial", {})
        assert fwd["statusCode"] == 1001


async def test_a_wrong_hpc_pin_is_1410_with_tries_left() -> None:
    async with running_stack() as s:
        await s.ready()
        wrong = await his("POST", s.agent_url + "/api/hpc/v1/Verification/Hpc", {"pin": "00000000"})
        assert (wrong["statusCode"], wrong["triesLeft"], wrong["blocked"]) == (1410, 2, False), wrong
        assert wrong["message"] and wrong["messageEn"]
        fwd = await his("POST", s.gateway_url + "/api/workstations/ws-01/hpc/v1/Verification/Hpc", {"pin": "00000000"})
        assert (fwd["statusCode"], fwd["triesLeft"]) == (1410, 1), fwd
        assert (await his("POST", s.agent_url + "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"}))["statusCode"] == 0


async def test_a_replayed_signature_is_3245_at_the_cloud_and_through_the_gateway() -> None:
    async with running_stack() as s:
        await s.ready()
        for base in (s.sim_url, s.gateway_url):
            sig = await his("POST", s.agent_url + "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
            sig.pop("statusCode")
            first = await his("POST", base + "/api/v1/BasicData/Query", sig)
            assert first["statusCode"] == 0 and first["name"] == "測試十"
            replay = await his("POST", base + "/api/v1/BasicData/Query", sig)
            assert replay["statusCode"] == 3245 and replay["message"] == "簽章已使用過", (base, replay)


async def test_an_offline_workstation_is_9400_through_the_gateway() -> None:
    async with running_stack() as s:
        one_call = await his("POST", s.gateway_url + "/api/v1/BasicData/Register", {}, {"X-Workstation": "ws-99"})
        assert (one_call["statusCode"], one_call["workstation"]) == (9400, "ws-99")
        component = await his("GET", s.gateway_url + "/api/workstations/ws-99/common/v1/Status")
        assert component["statusCode"] == 9400 and component["message"] == "工作站離線"


async def _raw(s: Stack, method: str, url: str, data: bytes | None = None) -> tuple[int, dict[str, Any]]:
    async with s.http.request(method, url, data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json(content_type=None)


async def test_the_few_answers_that_stay_non_2xx() -> None:
    """No route, a method a route does not take, a body that is not JSON: refusals no 6.0 program provokes."""
    assert {c: s for c, s in HTTP_STATUS.items() if s >= 400} == {
        Code.NOT_JSON: 400, Code.UNAUTHORIZED: 401, Code.FORBIDDEN: 403, Code.NOT_FOUND: 404, Code.METHOD_NOT_ALLOWED: 405, Code.BODY_TOO_LARGE: 413, Code.INTERNAL: 500,
    }
    async with running_stack() as s:
        for base in (s.agent_url, s.sim_url, s.gateway_url):
            path = "/api/hc/v1/NoSuchThing" if base == s.agent_url else "/api/v1/No/Such"
            status, body = await _raw(s, "POST", base + path, b"{}")
            assert (status, body["statusCode"]) == (404, 9405), (base, body)
        status, body = await _raw(s, "POST", s.agent_url + "/api/hc/v1/Signature/Hc", b"{not json")
        assert (status, body["statusCode"]) == (400, 9414) and body["message"] and body["messageEn"]
        for base in (s.sim_url, s.gateway_url):
            status, body = await _raw(s, "POST", base + "/api/v1/BasicData/Query", b"{not json")
            assert (status, body["statusCode"]) == (400, 9414), (base, body)
        status, body = await _raw(s, "DELETE", s.agent_url + "/api/common/v1/Initial")
        assert (status, body["statusCode"]) == (405, 9412)
