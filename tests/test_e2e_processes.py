"""Issue 2's proof on real parts, as separate processes: pcscd + vpcd virtual cards,
redis-server, ``nhigw vcard``, ``nhigw agent --pcsc``, ``nhigw gateway``, ``nhigw sim``;
and the same flow under ``nhigw up``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import Proc, eventually, free_port, insecure_ssl, ok
from tests.pcsc import Pcscd

pytestmark = [pytest.mark.pcsc, pytest.mark.redis]

TEST10 = {"cardSn": "000073898381", "name": "測試十", "idCardNum": "Z299999929", "birthday": "0920315", "sex": "F", "dateIssue": "1050217"}


@dataclass
class Urls:
    sim: str
    vcard: str
    agent: str
    gateway: str
    procs: dict[str, Proc]


@pytest.fixture
def stack(pcscd: Pcscd, redis_server: str, bus_key: str, bus_prefix: str, tmp_path: Path) -> Iterator[Urls]:
    ports = {n: free_port() for n in ("sim", "vcard", "agent", "gateway")}
    sim_url = f"http://127.0.0.1:{ports['sim']}"
    bus = ["--redis", redis_server, "--bus-key", bus_key, "--bus-prefix", bus_prefix]
    procs: dict[str, Proc] = {}
    try:
        procs["sim"] = Proc("sim", ["sim", "--port", str(ports["sim"])], tmp_path).wait_ready()
        procs["vcard"] = Proc(
            "vcard",
            ["vcard", "--port", str(ports["vcard"]), "--sim", sim_url, "--data-dir", str(tmp_path / "data"),
             "--slot", "0=sam:001000000103", "--slot", "1=hc:000073898381", "--slot", "2=hpc:000000329470"],
            tmp_path,
        ).wait_ready()
        procs["gateway"] = Proc("gateway", ["gateway", "--port", str(ports["gateway"]), "--cloud", sim_url, *bus], tmp_path).wait_ready()
        # The agent enrols with a one-time token from the gateway side; the gateway key never leaves it.
        token = subprocess.run([sys.executable, "-m", "nhigw", "gateway", "enrol-token", "--workstation", "ws-03", *bus], check=True, capture_output=True, text=True).stdout.strip()
        procs["agent"] = Proc(
            "agent",
            ["agent", "--pcsc", "--port", str(ports["agent"]), "--workstation", "ws-03", "--cloud", sim_url, "--data-dir", str(tmp_path / "data"),
             "--redis", redis_server, "--bus-prefix", bus_prefix, "--enrol-token", token],
            tmp_path,
        ).wait_ready()
        yield Urls(sim_url, f"http://127.0.0.1:{ports['vcard']}", f"https://127.0.0.1:{ports['agent']}", f"http://127.0.0.1:{ports['gateway']}", procs)
    finally:
        for p in reversed(list(procs.values())):
            p.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure_ssl())) as s:
        yield s


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: object) -> tuple[int, dict]:
    async with http.request(method, url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.json(content_type=None)


async def ws03_online(http: aiohttp.ClientSession, gateway: str) -> bool:
    """The gateway sees ws-03 online with its SAM verified (state 2)."""
    _, body = await call(http, "GET", gateway + "/api/workstations")
    return any(w["workstation"] == "ws-03" and w["online"] and w["states"]["sam"] == 2 for w in body["workstations"])


async def sam_verified_and_online(http: aiohttp.ClientSession, stack: Urls, timeout_s: float = 10.0) -> None:
    """The HIS's opening on ws-03's agent (Initial, SAM verification), then until the gateway sees it."""
    assert (await call(http, "POST", stack.agent + "/api/common/v1/Initial", json={}))[1]["statusCode"] == 0
    assert (await call(http, "POST", stack.agent + "/api/sam/v1/Verification", json={}))[1]["statusCode"] == 0
    assert await eventually(lambda: ws03_online(http, stack.gateway), timeout_s)


async def test_registration_over_real_pcsc_and_redis(stack: Urls, http: aiohttp.ClientSession) -> None:
    a, g = stack.agent, stack.gateway
    # The HIS's usual opening: Status, Initial, SAM verification (public facts 6).
    assert (await call(http, "GET", a + "/api/common/v1/Status"))[1]["status"]["initialized"] is False
    assert (await call(http, "POST", a + "/api/common/v1/Initial", json={}))[1]["statusCode"] == 0
    _, st = await call(http, "GET", a + "/api/common/v1/Status")
    assert (st["status"]["sam"]["status"], st["status"]["hc"]["status"], st["status"]["hpc"]["status"]) == (1, 1, 1)
    assert (await call(http, "POST", a + "/api/sam/v1/Verification", json={}))[1]["statusCode"] == 0
    _, basic = await call(http, "GET", a + "/api/sam/v1/Basic")
    assert basic == {"samId": "001000000103", "hospitalId": "3501200000", "hospitalName": "臺北虛擬診所", "hospitalShortName": "臺北虛擬診", "statusCode": 0}

    # The gateway learns of ws-03 from its presence on Redis.
    assert await eventually(lambda: ws03_online(http, g))

    # One call: the gateway gets the HC signature from ws-03 over Redis.
    status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
    assert status == 200, body
    assert {k: body[k] for k in TEST10} == TEST10

    # Pass-through: the HIS gets the signature from the agent and posts it as 6.0 HIS code does.
    status, sig = await call(http, "POST", a + "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
    assert status == 200 and sig["statusCode"] == 0 and len(sig["signature"]) == 344  # 256-byte RSA signature
    status, body2 = await call(http, "POST", g + "/api/v1/BasicData/Register", json=sig)
    assert status == 200 and {k: body2[k] for k in TEST10} == TEST10
    status, body3 = await call(http, "POST", g + "/api/v1/BasicData/Register", json=sig)
    assert status == 200 and body3["statusCode"] == 3245

    # HPC PIN through PC/SC, then the three-card signature.
    status, bad = await call(http, "POST", a + "/api/hpc/v1/Verification/Hpc", json={"pin": "00000000"})
    assert bad["statusCode"] == 1410 and bad["triesLeft"] == 2
    assert (await call(http, "POST", a + "/api/hpc/v1/Verification/Hpc", json={"pin": "12345678"}))[1]["statusCode"] == 0
    status, sig3 = await call(http, "POST", a + "/api/hc/v1/Signature/HpcHc", json={"serviceType": "01"})
    assert status == 200 and sig3["hpcId"] == "000000329470" and sig3["hpcIdNo"] == "C123456789"

    # Remove the HC at run time: the agent sees it, and the one-call answers with a 6.0 code.
    assert ok(await call(http, "DELETE", stack.vcard + "/slots/1"))

    async def hc_gone() -> bool:
        _, s = await call(http, "GET", a + "/api/common/v1/Status")
        return s["status"]["hc"]["status"] == 0

    assert await eventually(hc_gone, 3.0)
    status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
    assert status == 200 and body["statusCode"] in (1102, 1501)
    assert ok(await call(http, "PUT", stack.vcard + "/slots/1", json={"card": "hc:000073898381"}))

    async def hc_back() -> bool:
        _, s = await call(http, "GET", a + "/api/common/v1/Status")
        return s["status"]["hc"]["status"] == 2

    assert await eventually(hc_back, 3.0)
    status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
    assert status == 200 and body["name"] == "測試十"

    # The agent goes away: the gateway says so (at once after a clean stop).
    stack.procs["agent"].stop()

    async def offline() -> bool:
        st, b = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
        return st == 200 and b["statusCode"] == 9400

    assert await eventually(offline, 3.0)
    # Secrets never reach a log: PINs, full IDs, full signatures.
    for p in stack.procs.values():
        text = p.log()
        assert "12345678" not in text and "Z299999929" not in text and sig["signature"][:40] not in text


async def test_four_character_name_and_three_digit_year_byte_exact_over_pcsc(pcscd: Pcscd) -> None:
    """歐陽測試 (4 Big5 characters, 8 bytes) born 1000101, read by the agent through pcscd."""
    from smartcard.System import readers

    from nhigw.agent.cardio import PcscBackend, release_connection
    from nhigw.agent.core import Agent
    from nhigw.agent.dc import DcClient
    from nhigw.vcard.bank import CardFactory
    from nhigw.vcard.identities import Identities, KeyStore
    from nhigw.vcard.vpcd import VpcdLink

    expected = b"000073898382" + "歐陽測試".encode("big5").ljust(20, b"\x00") + b"A234567890" + b"1000101" + b"M" + b"1100801"
    assert len(expected) == 57
    link = VpcdLink(CardFactory(Identities.load(), KeyStore(None)).make("hc:000073898382"), port=pcscd.ports[0])
    await link.insert()
    backend = PcscBackend()
    agent = Agent(backend=backend, dc=DcClient("http://127.0.0.1:9"), workstation="t")
    try:
        async def present() -> bool:
            return (await backend.presence()).get("Virtual PCD 00 00") is not None

        assert await eventually(present, 5.0)

        def raw_read() -> bytes:
            conn = [r for r in readers() if str(r) == "Virtual PCD 00 00"][0].createConnection()
            conn.connect()
            _d, sw1, _sw2 = conn.transmit(list(bytes.fromhex("00A4040010D1580000010000000000000000001100")))
            assert sw1 == 0x90
            data, sw1, sw2 = conn.transmit(list(bytes.fromhex("00CA11000200 00".replace(" ", ""))))
            release_connection(conn)
            return bytes(data) + bytes([sw1, sw2])

        from smartcard.Exceptions import CardConnectionException, NoCardException

        async def raw_read_settled() -> bytes:
            # pcscd may still be powering the card it just saw (vpcd: "Card is unpowered"): retry briefly.
            got: list[bytes] = []

            async def read() -> bool:
                try:
                    got.append(await asyncio.to_thread(raw_read))
                except (CardConnectionException, NoCardException):
                    return False
                return True

            if await eventually(read, 5, interval_s=0.1):
                return got[0]
            return await asyncio.to_thread(raw_read)  # once more, to fail with the card's error

        assert await raw_read_settled() == expected + b"\x90\x00"
        await agent.initial(None)
        agent.start_monitor()

        async def hc_seen() -> bool:
            return agent.status().hc.status >= 1

        assert await eventually(hc_seen, 5.0)
        # The public profile needs no SAM: the agent serves it with SAM state 0.
        basic = await agent.hc_basic()
        assert (basic.cardId, basic.name, basic.idNo, basic.birthday, basic.sex, basic.dateIssue) == ("000073898382", "歐陽測試", "A234567890", "1000101", "M", "1100801")
        assert agent.status().sam.status == 0  # a reader with only an HC: Initial works, SAM state 0
    finally:
        await agent.stop()
        await link.remove()


async def test_nhigw_up_serves_the_same_flow(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    ports = {n: free_port() for n in ("sim", "agent", "gateway")}
    up = Proc("up", ["up", "--data-dir", str(tmp_path), "--sim-port", str(ports["sim"]), "--agent-port", str(ports["agent"]), "--gateway-port", str(ports["gateway"])], tmp_path).wait_ready()
    try:
        assert f"http://127.0.0.1:{ports['gateway']}" in up.log()
        g, a = f"http://127.0.0.1:{ports['gateway']}", f"https://127.0.0.1:{ports['agent']}"
        status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-01"})
        assert status == 200 and {k: body[k] for k in TEST10} == TEST10
        status, sig = await call(http, "POST", a + "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
        status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json=sig)
        assert status == 200 and body["idCardNum"] == "Z299999929"
    finally:
        assert up.stop() == 0
