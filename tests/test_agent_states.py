"""The seed's state tables, endpoint x state: every call in a state it does not allow gets the seed's code.

Scenarios (the columns 初始化 / SAM / HCA / HC):
- ``uninit``: no Initial;
- ``no_sam``: initialised with an HC and an HPC but no SAM (SAM 0);
- ``sam1``: SAM present, not verified (SAM 1, HPC 1, HC 1);
- ``sam2``: SAM verified with an HC and an HPC inserted (SAM 2, HPC 2, HC 2 physical);
- ``sam2_bare``: SAM verified, no HC and no HPC (HPC 0, HC 0);
- ``vhc``: SAM verified and a virtual HC verified (HC 2 virtual).
A refusal has no side effect, so one stack serves all the endpoints of a scenario.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent_stack import HC, HPC, SAM, AgentStack, agent_stack

MOBILE = {"idNo": "C123456789", "loginDateTime": "2024-05-28T08:44:41Z", "signatureCertificate": "AA==", "signature": "AA=="}
ALL_BAD = {"uninit": 1000, "no_sam": 1301, "sam1": 1301}
# (method, path, body) -> {scenario: expected statusCode}
TABLE: list[tuple[str, str, Any, dict[str, int]]] = [
    ("POST", "/api/common/v1/Finalize", {}, {"uninit": 1000}),
    ("GET", "/api/common/v1/ServerDateTime", None, {"uninit": 1000}),
    ("POST", "/api/common/v1/Initial", {}, {"no_sam": 1001, "sam1": 1001, "sam2": 1001, "sam2_bare": 1001, "vhc": 1001}),
    ("POST", "/api/sam/v1/Verification", {}, {"uninit": 1000, "no_sam": 1300}),
    ("POST", "/api/sam/v1/Logout", {}, ALL_BAD),
    ("GET", "/api/sam/v1/Basic", None, {"uninit": 1000, "no_sam": 1300}),
    ("POST", "/api/sam/v1/Signature", {"serviceType": "01"}, ALL_BAD),
    ("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"}, {**ALL_BAD, "sam2_bare": 1401, "vhc": 1401}),
    ("POST", "/api/hpc/v1/Verification/MobileHca", MOBILE, ALL_BAD),
    ("GET", "/api/hpc/v1/Basic", None, {**ALL_BAD, "sam2": 1402, "sam2_bare": 1402}),
    ("POST", "/api/hpc/v1/Pin", {"newPin": "11112222"}, {**ALL_BAD, "sam2": 1402, "sam2_bare": 1402}),
    ("PUT", "/api/hpc/v1/Pin", {"puk": "87654321", "newPin": "11112222"}, {**ALL_BAD, "sam2_bare": 1401, "vhc": 1401}),
    ("POST", "/api/hpc/v1/Signature", {"serviceType": "01"}, {**ALL_BAD, "sam2": 1402, "sam2_bare": 1402}),
    ("DELETE", "/api/hpc/v1/Logout", None, {**ALL_BAD, "sam2": 1402, "sam2_bare": 1402}),
    ("GET", "/api/hc/v1/Basic", None, {"uninit": 1000, "sam2_bare": 1102}),  # public profile: no SAM needed
    ("GET", "/api/hc/v1/Pin", None, {**ALL_BAD, "sam2_bare": 1501, "vhc": 1526}),
    ("POST", "/api/hc/v1/Pin", {"pin": "1234"}, {**ALL_BAD, "sam2_bare": 1501, "vhc": 1526}),
    ("PUT", "/api/hc/v1/Pin", {"newPin": "1234"}, {**ALL_BAD, "sam2_bare": 1501, "vhc": 1526}),
    ("DELETE", "/api/hc/v1/Pin", None, {**ALL_BAD, "sam2_bare": 1501, "vhc": 1526}),
    ("POST", "/api/hc/v1/Verification/VirtualHc", {"token": "x"}, ALL_BAD),
    ("POST", "/api/hc/v1/VirtualHc/ReadBasic", {"token": "x"}, ALL_BAD),
    ("GET", "/api/hc/v1/VirtualHc/Import", None, {**ALL_BAD, "sam2_bare": 1501, "sam2": 1527}),
    ("POST", "/api/hc/v1/VirtualHc/Import", {"token": "x"}, ALL_BAD),
    ("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"}, {**ALL_BAD, "sam2_bare": 1501}),
    ("POST", "/api/hc/v1/Signature/HpcHc", {"serviceType": "01"}, {**ALL_BAD, "sam2": 1402, "sam2_bare": 1402, "vhc": 1402}),
    ("DELETE", "/api/hc/v1/Logout", None, ALL_BAD),
    ("GET", "/api/hc/v1/OrganDonate", None, {**ALL_BAD, "sam2_bare": 1501, "vhc": 1515}),
    ("PUT", "/api/hc/v1/OrganDonate", {"organDonate": "1"}, {**ALL_BAD, "sam2": 1402, "sam2_bare": 1402, "vhc": 1402}),
]
SCENARIOS = ["uninit", "no_sam", "sam1", "sam2", "sam2_bare", "vhc"]


async def _enter(s: AgentStack, scenario: str) -> None:
    if scenario == "uninit":
        return
    assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
    if scenario in ("sam2", "sam2_bare", "vhc"):
        assert await s.code("POST", "/api/sam/v1/Verification", {}) == 0
    if scenario == "vhc":
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": await s.qr()}) == 0


CARDS = {"no_sam": ["", HC, HPC], "sam2_bare": [SAM], "vhc": [SAM]}
EXPECTED_STATES = {
    "uninit": (0, 0, 0),
    "no_sam": (0, 1, 1),
    "sam1": (1, 1, 1),
    "sam2": (2, 2, 2),
    "sam2_bare": (2, 0, 0),
    "vhc": (2, 0, 2),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_endpoint_refuses_the_states_the_seed_excludes(scenario: str) -> None:
    async with agent_stack(CARDS.get(scenario, [SAM, HC, HPC]), monitor_s=None) as s:
        await _enter(s, scenario)
        _, st = await s.a("GET", "/api/common/v1/Status")
        got = (st["status"]["sam"]["status"], st["status"]["hpc"]["status"], st["status"]["hc"]["status"])
        assert got == EXPECTED_STATES[scenario]
        assert st["status"]["hc"]["virtual"] is (scenario == "vhc")
        mismatches = []
        for method, path, body, expect in TABLE:
            if scenario not in expect:
                continue
            status, resp = await s.a(method, path, body)
            if resp.get("statusCode") != expect[scenario] or status != 200 or not resp.get("message"):
                mismatches.append((method, path, expect[scenario], status, resp.get("statusCode")))
        assert mismatches == []
        # Refusals change nothing.
        _, st2 = await s.a("GET", "/api/common/v1/Status")
        assert st2 == st


def test_the_table_covers_every_state_checked_endpoint() -> None:
    """Every component endpoint with a state rule appears in TABLE (so a new one cannot skip the check)."""
    from nhigw.contracts.api import AGENT

    covered = {(m, p) for m, p, _b, _e in TABLE}
    free = {"/api/common/v1/Status", "/api/common/v1/Name", "/api/common/v1/Version", "/api/common/v1/Record", "/api/common/v1/Events", "/api/swagger/v1/swagger.json"}
    missing = [(e.method, e.path) for e in AGENT if (e.method, e.path) not in covered and e.path not in free and "/Settings" not in e.path]
    assert missing == []
