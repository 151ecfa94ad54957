"""``nhigw agent --no-pcsc`` as a real process: a virtual workstation with a cloud SAM and no reader
serves a device session through a real gateway process on real Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import Proc, eventually, free_port, insecure_ssl, ok


@pytest.fixture(autouse=True)
def _no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NHIGW_MASTER_KEY", raising=False)


@pytest.fixture
def procs(redis_server: str, bus_key: str, bus_prefix: str, tmp_path: Path) -> Iterator[tuple[str, str, str, list[Proc]]]:
    ports = {n: free_port() for n in ("sim", "agent", "gateway")}
    sim, gw, agent = (f"http://127.0.0.1:{ports['sim']}", f"http://127.0.0.1:{ports['gateway']}", f"https://127.0.0.1:{ports['agent']}")
    bus = ["--redis", redis_server, "--bus-key", bus_key, "--bus-prefix", bus_prefix]
    procs: list[Proc] = []
    try:
        procs.append(Proc("sim", ["sim", "--port", str(ports["sim"])], tmp_path).wait_ready())
        procs.append(Proc("gateway", ["gateway", "--port", str(ports["gateway"]), "--cloud", sim, *bus], tmp_path).wait_ready())
        token = subprocess.run([sys.executable, "-m", "nhigw", "gateway", "enrol-token", "--workstation", "kiosk-host", *bus], check=True, capture_output=True, text=True).stdout.strip()
        procs.append(
            Proc(
                "agent",
                ["agent", "--no-pcsc", "--port", str(ports["agent"]), "--workstation", "kiosk-host", "--cloud", sim, "--data-dir", str(tmp_path / "data"),
                 "--redis", redis_server, "--bus-prefix", bus_prefix, "--enrol-token", token],
                tmp_path,
            ).wait_ready()
        )
        yield sim, gw, agent, procs
    finally:
        for p in reversed(procs):
            p.stop()


async def test_no_pcsc_agent_process_serves_a_device_session(procs: tuple[str, str, str, list[Proc]]) -> None:
    sim, gw, agent, running = procs
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure_ssl())) as http:

        async def call(method: str, url: str, **kw: object) -> tuple[int, dict]:
            async with http.request(method, url, **kw) as r:  # type: ignore[arg-type]
                return r.status, await r.json(content_type=None)

        # The cloud SAM is imported and chosen as on any agent; there is no reader to choose from.
        _, f = await call("POST", sim + "/test/v1/CloudSam/Issue", json={"hospitalId": "3501200000", "samId": "901000000099"})
        assert ok(await call("POST", agent + "/api/common/v1/Settings/CloudSam", json=f))
        assert (await call("POST", agent + "/api/common/v1/Initial", json={}))[1]["statusCode"] == 0
        _, st = await call("GET", agent + "/api/common/v1/Status")
        assert st["status"]["sam"]["status"] == 2 and st["status"]["hc"]["status"] == 0, st

        async def host_online_sam_verified() -> bool:
            _, ws = await call("GET", gw + "/api/workstations")
            return any(w["workstation"] == "kiosk-host" and w["online"] and w["states"]["sam"] == 2 for w in ws["workstations"])

        assert await eventually(host_online_sam_verified, 10), "the gateway does not see kiosk-host online with its SAM verified"

        status, opened = await call("POST", gw + "/api/sessions", json={"device": "kiosk-lobby"})
        assert status == 200 and opened["workstation"] == "kiosk-host", opened
        h = {"X-Device-Session": opened["token"]}
        _, qr = await call("POST", sim + "/test/v1/VirtualHc/QrCode", json={"cardNo": "000073898382"})
        status, body = await call("POST", gw + "/api/sessions/hc/v1/Verification/VirtualHc", headers=h, json={"token": qr["token"]})
        assert status == 200 and body["states"]["hc"] == 2, body
        status, reg = await call("POST", gw + "/api/v1/BasicData/Register", headers=h, json={})
        assert status == 200 and reg["cardSn"] == "000073898382" and reg["idCardNum"] == "A234567890", reg
        # The agent's own (workstation) HC stays empty: the card lives in the session only.
        _, st = await call("GET", agent + "/api/common/v1/Status")
        assert st["status"]["hc"]["status"] == 0
        assert ok(await call("DELETE", gw + "/api/sessions", headers=h))
        status, body = await call("POST", gw + "/api/v1/BasicData/Register", headers=h, json={})
        assert status == 200 and body["statusCode"] == 9410
    running[-1].stop()
    log = running[-1].log()
    assert "A234567890" not in log and "Traceback" not in log
