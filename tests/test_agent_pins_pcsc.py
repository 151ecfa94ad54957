"""PINs through real PC/SC (pcscd + vpcd virtual cards): HPC tries left, blocking, PUK unlock; HC PIN
set / verify / disable; APDU counts; and no PIN in any log event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from nhigw.agent.cardio import PcscBackend
from nhigw.vcard.vpcd import VpcdLink
from tests.agent_stack import HC_PIN, HPC, SAM, AgentStack, agent_stack
from tests.helpers import eventually, ok
from tests.pcsc import Pcscd

pytestmark = [pytest.mark.pcsc]
# Every PIN and PUK these tests send that cannot occur by chance in a card id or a name (the seed HC PIN 1234 is in C123456789).
PINS = ["12345678", "87654321", "11223344", "00000000", "99999999", "11111111", "5917", "6042", "2580"]


async def readers_empty(backend: PcscBackend) -> None:
    """Wait until pcscd reports no card anywhere: vpcd swaps faster than pcscd polls look like no change at all."""

    async def empty() -> bool:
        return not any((await backend.presence()).values())

    assert await eventually(empty), "pcscd still reports cards from a previous test"


async def agent_holds(s: AgentStack, kinds: set[str]) -> bool:
    """Wait until the agent holds cards of ``kinds``, rescanning (pcscd may lag an insertion)."""

    async def holds() -> bool:
        if kinds <= set(s.agent.slots):
            return True
        await s.agent.rescan()
        return False

    return await eventually(holds)


@pytest.fixture
async def pcsc_stack(pcscd: Pcscd) -> AsyncIterator[AgentStack]:
    backend = PcscBackend()
    async with agent_stack([], backend=backend) as s:
        await readers_empty(backend)
        links = [VpcdLink(s.factory.make(spec), port=port) for spec, port in zip([SAM, HC_PIN, HPC], pcscd.ports, strict=False)]
        for link in links:
            await link.insert()

        async def three_cards() -> bool:
            return sum(v is not None for v in (await backend.presence()).values()) >= 3

        assert await eventually(three_cards), "pcscd does not report the three cards inserted"
        try:
            yield s
        finally:
            await s.agent.finalize(quiet=True)
            for link in links:
                await link.remove()
            await readers_empty(backend)


async def ready_with_all_cards(s: AgentStack) -> None:
    """Initial, wait until the agent holds all three cards (pcscd may lag an insertion), then SAM verification."""
    assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
    assert await agent_holds(s, {"sam", "hc", "hpc"}), set(s.agent.slots)
    assert await s.code("POST", "/api/sam/v1/Verification", {}) == 0


async def test_hpc_pin_tries_left_blocking_and_puk_unlock_over_pcsc(pcsc_stack: AgentStack) -> None:
    s = pcsc_stack
    with capture_logs() as logs:
        await ready_with_all_cards(s)
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert (st["status"]["sam"]["status"], st["status"]["hpc"]["status"], st["status"]["hc"]["status"]) == (2, 2, 2)

        for left in (2, 1):
            status, body = await s.a("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "00000000"})
            assert status == 200 and body["statusCode"] == 1410 and body["triesLeft"] == left and body["blocked"] is False
        status, body = await s.a("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "99999999"})
        assert body["statusCode"] == 1410 and body["triesLeft"] == 0 and body["blocked"] is True
        # Blocked: even the right PIN is refused, and the HPC stays in state 2.
        status, body = await s.a("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"})
        assert body["statusCode"] == 1410 and body["triesLeft"] == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hpc"]["status"] == 2
        assert await s.code("POST", "/api/hpc/v1/Signature", {"serviceType": "01"}) == 1402

        # Unlock with the PUK (a wrong PUK first), then the new PIN works and the old one does not.
        status, body = await s.a("PUT", "/api/hpc/v1/Pin", {"puk": "11111111", "newPin": "11223344"})
        assert body["statusCode"] == 1410 and body["pukTriesLeft"] == 9
        assert await s.code("PUT", "/api/hpc/v1/Pin", {"puk": "87654321", "newPin": "11223344"}) == 0
        status, body = await s.a("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"})
        assert body["statusCode"] == 1410 and body["triesLeft"] == 2
        assert await s.code("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "11223344"}) == 0
        status, basic = await s.a("GET", "/api/hpc/v1/Basic")
        assert basic == {"cardId": "000000329470", "idNo": "C123456789", "cName": "測試醫師", "eName": "TEST DOCTOR", "mobile": False, "statusCode": 0}

        # Change the PIN (needs state 3) back to the seed's.
        assert await s.code("POST", "/api/hpc/v1/Pin", {"newPin": "12345678"}) == 0
        assert await s.code("POST", "/api/hpc/v1/Pin", {"newPin": "123"}) == 1706
        status, sig = await s.a("POST", "/api/hpc/v1/Signature", {"serviceType": "01"})
        assert status == 200 and sig["hpcId"] == "000000329470"
        assert (await s.sim("/api/v1/Treatment/NeedHPC", sig))[1].get("statusCode") != 3100
        assert await s.code("DELETE", "/api/hpc/v1/Logout") == 0
        assert await s.code("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"}) == 0
    text = repr(logs)
    assert [p for p in PINS if p in text] == []


async def test_hc_pin_set_verify_disable_over_pcsc_and_apdu_counts(pcsc_stack: AgentStack) -> None:
    s = pcsc_stack
    with capture_logs() as logs:
        await ready_with_all_cards(s)
        hc_conn = s.agent.slots["hc"].conn
        assert hc_conn.apdu_count == 2  # SELECT + READ basic, once, at insertion
        status, basic = await s.a("GET", "/api/hc/v1/Basic")
        assert status == 200 and basic["name"] == "測試一" and basic["dateIssue"] == "1080101"
        await s.a("GET", "/api/hc/v1/Basic")
        assert hc_conn.apdu_count == 2  # served from memory

        status, pin = await s.a("GET", "/api/hc/v1/Pin")
        assert pin == {"pinSet": True, "pinVerified": False, "statusCode": 0}
        assert await s.code("PUT", "/api/hc/v1/Pin", {"newPin": "5917"}) == 1511  # set needs the PIN verified
        assert await s.code("DELETE", "/api/hc/v1/Pin") == 1511
        status, body = await s.a("POST", "/api/hc/v1/Pin", {"pin": "2580"})
        assert body["statusCode"] == 1514 and body["triesLeft"] == 2
        assert await s.code("POST", "/api/hc/v1/Pin", {"pin": "1234"}) == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hc"]["pinSet"] is True and st["status"]["hc"]["pinVerified"] is True
        assert await s.code("PUT", "/api/hc/v1/Pin", {"newPin": "5917"}) == 0
        assert await s.code("DELETE", "/api/hc/v1/Pin") == 0
        assert (await s.a("GET", "/api/hc/v1/Pin"))[1] == {"pinSet": False, "pinVerified": False, "statusCode": 0}
        assert await s.code("POST", "/api/hc/v1/Pin", {"pin": "5917"}) == 1510
        assert await s.code("DELETE", "/api/hc/v1/Pin") == 1510
        # Set a PIN on a card without one; Logout forgets its verification.
        assert await s.code("PUT", "/api/hc/v1/Pin", {"newPin": "6042"}) == 0
        assert (await s.a("GET", "/api/hc/v1/Pin"))[1]["pinVerified"] is True
        assert await s.code("DELETE", "/api/hc/v1/Logout") == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hc"]["pinVerified"] is False and st["status"]["hc"]["status"] == 2
        assert await s.code("DELETE", "/api/hc/v1/Pin") == 1511
        assert await s.code("POST", "/api/hc/v1/Pin", {"pin": "6042"}) == 0
        sam_conn, hc_before = s.agent.slots["sam"].conn, hc_conn.apdu_count
        sam_before = sam_conn.apdu_count
        status, sig = await s.a("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
        assert status == 200 and sig["hcId"] == "000073898383"
        # An HC signature: SELECT + GET CHALLENGE + INTERNAL AUTHENTICATE on the SAM, nothing on the HC.
        assert (sam_conn.apdu_count - sam_before, hc_conn.apdu_count - hc_before) == (3, 0)
    text = repr(logs)
    assert [p for p in PINS if p in text] == []


async def test_insert_and_remove_seen_through_pcsc_status_change_not_polling(pcscd: Pcscd) -> None:
    """The monitor's safety-net rescan is 30 s here: only PC/SC status-change events can make the agent see cards in time."""
    backend = PcscBackend()
    async with agent_stack([], backend=backend, monitor_s=30.0) as s:
        sam = VpcdLink(s.factory.make(SAM), port=pcscd.ports[0])
        hc = VpcdLink(s.factory.make("hc:000073898381"), port=pcscd.ports[1])
        await readers_empty(backend)
        await sam.insert()
        try:
            assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
            assert await agent_holds(s, {"sam"})
            assert await s.code("POST", "/api/sam/v1/Verification", {}) == 0
            q = s.agent.subscribe()
            seen: dict[str, float] = {}
            for action, link in (("inserted", hc), ("removed", hc)):
                t0 = time.monotonic()
                await (link.insert() if action == "inserted" else link.remove())
                while True:
                    ev = await asyncio.wait_for(q.get(), 10)
                    if ev.type == action and ev.kind == "hc":
                        seen[action] = time.monotonic() - t0
                        break
                _, st = await s.a("GET", "/api/common/v1/Status")
                assert st["status"]["hc"]["status"] == (2 if action == "inserted" else 0)
            print("card event latency (s):", {k: round(v, 3) for k, v in seen.items()})
            assert max(seen.values()) < 3.0, seen  # seen within a second on an idle machine; far below the 30 s rescan
        finally:
            await s.agent.finalize(quiet=True)
            await hc.remove()
            await sam.remove()
            await readers_empty(backend)


async def test_pcscd_restarted_under_the_running_agent_serves_again(pcscd: Pcscd) -> None:
    """The seed's Q4/Q5 (unplug, hang: restart the software) need no restart here: pcscd itself is
    restarted (same configuration) and the agent, still running, serves again by itself."""
    backend = PcscBackend()
    async with agent_stack([], backend=backend, monitor_s=1.0) as s:
        await readers_empty(backend)
        links = [VpcdLink(s.factory.make(SAM), port=pcscd.ports[0]), VpcdLink(s.factory.make("hc:000073898381"), port=pcscd.ports[1])]
        for link in links:
            await link.insert()
        try:
            assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
            assert await agent_holds(s, {"sam", "hc"})
            assert await s.code("POST", "/api/sam/v1/Verification", {}) == 0
            assert ok(await s.a("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"}))

            t0 = time.monotonic()
            await asyncio.to_thread(pcscd.restart)

            async def serving() -> bool:
                _, st = await s.a("GET", "/api/common/v1/Status")
                return bool(st["status"]["sam"]["status"] == 1 and st["status"]["hc"]["status"] == 1)

            assert await eventually(serving, timeout_s=10), "the agent does not serve again after pcscd restarted"
            recovered_s = time.monotonic() - t0
            print(f"pcscd restart: agent serving again {recovered_s:.2f} s after the kill")
            # The card was powered down with pcscd: the SAM is verified again (on purpose), then it signs.
            assert await s.code("POST", "/api/sam/v1/Verification", {}) == 0
            status, sig = await s.a("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
            assert status == 200 and sig["hcId"] == "000073898381"
        finally:
            await s.agent.finalize(quiet=True)
            for link in links:
                await link.remove()
            await readers_empty(backend)
