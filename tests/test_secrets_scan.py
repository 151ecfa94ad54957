"""Fault drill: no PIN, full national ID number or full signature anywhere the system writes.

An end-to-end flow on real processes (pcscd + vpcd virtual cards, ``nhigw vcard``,
``agent --pcsc``, ``gateway``, ``sim``, one redis-server: the ``stack`` fixture of
``test_e2e_processes.py``, so the set-up, enrolment included, is the production one)
runs with every process logging at DEBUG, while a raw ``MONITOR`` connection records
every command the Redis server executes from before the first process starts. The flow
verifies the HPC PIN (wrong, then right), the HC PIN of the card that has one, unblocks
the HPC with its PUK, and registers patients by one call and by pass-through. Then
every byte of: each process's log, the Redis MONITOR stream, and every file under the
test's directory (data dirs: audit trail, sealed keys, settings) is searched for the
test PINs (12345678, 1234, 87654321), the test national IDs (Z299999929, A234567890,
B123456780, C123456789) and every full signature the flow produced. 0 found.

A PIN or ID is matched as a token (not inside a longer run of letters and digits), so
``1234`` inside ``B123456780`` or a port number is not a hit. Full signatures are
matched as the whole base64 string, and also by their first 64 characters (a log that
cut a signature at 64 would still leak it: the masking processor keeps 8).
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import ok
from tests.test_e2e_processes import Urls, call, eventually, http, sam_verified_and_online, stack  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.pcsc, pytest.mark.redis]

PINS = ["12345678", "1234", "87654321"]
NATIONAL_IDS = ["Z299999929", "A234567890", "B123456780", "C123456789"]


def find_secrets(blob: str, signatures: list[str]) -> list[str]:
    """Every secret found in ``blob`` (empty: clean). Pure, so it is tested on vectors."""
    hits = []
    for s in PINS + NATIONAL_IDS:
        if re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", blob):
            hits.append(s)
    for sig in signatures:
        if sig in blob or sig[:64] in blob:
            hits.append(f"signature {sig[:8]}…")
    return hits


def test_find_secrets_vectors() -> None:
    sig = "QUJD" * 86
    assert find_secrets('{"pin": "12345678"} id=Z299999929', []) == ["12345678", "Z299999929"]
    assert find_secrets("pin 1234 here", []) == ["1234"]
    assert find_secrets("B123456780", []) == ["B123456780"]  # not reported as the PIN 1234 as well
    assert find_secrets("port 41234, Z29*****29, 123456789", []) == []
    assert find_secrets("sig=" + sig[:64] + "…", [sig]) == [f"signature {sig[:8]}…"]
    assert find_secrets("sig=" + sig[:8] + "…", [sig]) == []


def scan_files(root: Path, signatures: list[str]) -> dict[str, list[str]]:
    """Every file under ``root`` but the process logs (scanned as logs): data dirs, audit, keys."""
    out = {}
    for f in root.rglob("*"):
        if f.is_file() and not f.name.endswith(".log"):
            if hits := find_secrets(f.read_bytes().decode("utf-8", errors="replace"), signatures):
                out[str(f.relative_to(root))] = hits
    return out


class Monitor:
    """A raw ``MONITOR`` connection: every command the server runs, as the server prints it."""

    def __init__(self, redis_url: str) -> None:
        host_port = redis_url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.sendall(b"MONITOR\r\n")
        assert self.sock.recv(5) == b"+OK\r\n"
        self.sock.settimeout(0.2)
        self.chunks: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return b"".join(self.chunks).decode("utf-8", errors="replace")


@pytest.fixture(autouse=True)
def debug_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of the stack logs at DEBUG: the worst case for a leak."""
    monkeypatch.setenv("NHIGW_LOG_LEVEL", "DEBUG")


@pytest.fixture(autouse=True)
def monitor(redis_server: str) -> Monitor:  # type: ignore[misc]
    """Started before the ``stack`` fixture (autouse fixtures come first): enrolment is recorded too."""
    m = Monitor(redis_server)
    yield m
    if not m._stop.is_set():
        m.stop()


async def test_no_pin_id_or_signature_in_logs_redis_or_files(stack: Urls, http: aiohttp.ClientSession, monitor: Monitor, tmp_path: Path) -> None:  # noqa: F811
    a, g, v = stack.agent, stack.gateway, stack.vcard
    signatures: list[str] = []
    await sam_verified_and_online(http, stack)

    # HPC PIN: wrong, right; then blocked and unblocked with the PUK (PIN back to 12345678).
    assert (await call(http, "POST", a + "/api/hpc/v1/Verification/Hpc", json={"pin": "00000000"}))[1]["statusCode"] == 1410
    assert (await call(http, "POST", a + "/api/hpc/v1/Verification/Hpc", json={"pin": "12345678"}))[1]["statusCode"] == 0
    for _ in range(3):
        await call(http, "POST", a + "/api/hpc/v1/Verification/Hpc", json={"pin": "99999999"})
    st, body = await call(http, "PUT", a + "/api/hpc/v1/Pin", json={"puk": "87654321", "newPin": "12345678"})
    assert st == 200 and body["statusCode"] == 0, body
    assert (await call(http, "POST", a + "/api/hpc/v1/Verification/Hpc", json={"pin": "12345678"}))[1]["statusCode"] == 0

    # Registrations: one call through the gateway, and pass-through with the agent's signature.
    for _ in range(3):
        st, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
        assert st == 200 and body["idCardNum"] == "Z299999929", body
    st, sig = await call(http, "POST", a + "/api/hc/v1/Signature/Hc", json={"serviceType": "01"})
    assert st == 200
    signatures.append(sig["signature"])
    st, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json=sig)
    assert st == 200
    st, sig3 = await call(http, "POST", a + "/api/hc/v1/Signature/HpcHc", json={"serviceType": "01"})
    assert st == 200 and sig3["hpcIdNo"] == "C123456789"
    signatures.append(sig3["signature"])

    # The HC with a PIN (測試一, B123456780, PIN 1234) replaces the first HC; verify its PIN, register.
    assert ok(await call(http, "PUT", v + "/slots/1", json={"card": "hc:000073898383"}))

    async def new_hc() -> bool:
        st, b = await call(http, "GET", a + "/api/hc/v1/Basic")
        return st == 200 and b.get("cardId") == "000073898383"

    assert await eventually(new_hc, 5.0)
    st, body = await call(http, "POST", a + "/api/hc/v1/Pin", json={"pin": "1234"})
    assert st == 200 and body["statusCode"] == 0, body
    st, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-03"})
    assert st == 200 and body["idCardNum"] == "B123456780", body
    # The request browser finds each patient's records by the full ID typed in (their keyed hash): the ID is kept nowhere.
    for pid, least in (("Z299999929", 3), ("B123456780", 1)):
        st, res = await call(http, "POST", g + "/api/ops/requests/search", json={"patient": pid})
        assert st == 200 and len(res["records"]) >= least and {r["patient"] for r in res["records"]} == {pid[:3] + "*****" + pid[-2:]}, res

    # What the flow left behind.
    for p in stack.procs.values():
        p.stop()
    redis_traffic = monitor.stop()
    # The scan proves something only if the traffic is there: presence, sealed calls, the queue.
    assert '"PUBLISH"' in redis_traffic and '"XADD"' in redis_traffic, "MONITOR recorded no bus or queue traffic"
    found: dict[str, list[str]] = {}
    logs = {name: p.log() for name, p in stack.procs.items()}
    assert all(logs.values()), "a process wrote no log at all"
    for name, text in logs.items():
        if hits := find_secrets(text, signatures):
            found[f"log of {name}"] = hits
    if hits := find_secrets(redis_traffic, signatures):
        found["redis MONITOR"] = hits
    found.update(scan_files(tmp_path, signatures))
    assert any(tmp_path.joinpath("data").rglob("*")), "no data files written: nothing scanned"
    assert found == {}, f"secrets found: {found}"
