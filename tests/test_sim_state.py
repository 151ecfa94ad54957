"""``nhigw sim --state FILE``: the simulator's state survives restarts and crashes (real processes, a real SQLite file)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from nhigw.contracts.cloud import TreatmentWriteFeeRequest
from nhigw.contracts.codes import Code
from nhigw.sim.store import write_content_key
from tests.helpers import Proc, free_port, ok
from tests.simkit import Signer

FEE = "Treatment/WriteFee"


class SimProc:
    def __init__(self, tmp: Path, name: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(name, ["sim", "--admin", "--port", str(self.port), "--state", str(tmp / "sim.db"), *extra], tmp).wait_ready()

    async def post(self, http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        async with http.post(self.url + path, json=body) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
        async with http.get(self.url + path) as r:
            out: dict[str, Any] = await r.json()
            return out


async def test_state_survives_a_restart_visits_numbers_signatures_test_cards(tmp_path: Path) -> None:
    signer = Signer()
    sim = SimProc(tmp_path, "sim-1")
    try:
        async with aiohttp.ClientSession() as http:
            assert ok(await sim.post(http, "/test/v1/Sam/Register", {"samId": signer.samId, "hospitalId": signer.hospitalId, "publicKeyPem": signer.public_pem()}))
            _, a = await sim.post(http, "/api/v1/SequelNumber/Next", signer.for_route("SequelNumber/Next", treatmentItem="01"))
            used = signer.for_route("SequelNumber/Next", treatmentItem="01")
            _, b = await sim.post(http, "/api/v1/SequelNumber/Next", used)
            assert (a["sequenceNumber"], b["sequenceNumber"]) == ("W001", "W002")
            for i in range(10):
                assert ok(await sim.post(http, "/test/v1/ApplyVirtualHc/Apply", signer.sign("06", sex="MF"[i % 2], birthday="0900101", isForeigner=False)))
    finally:
        assert sim.proc.stop() == 0
    sim = SimProc(tmp_path, "sim-2")
    try:
        async with aiohttp.ClientSession() as http:
            # the visit registered before the restart is written, the other rolled back
            assert ok(await sim.post(http, "/api/v1/" + FEE, signer.for_route(FEE, treatmentDateTime=a["treatmentDateTime"], outpatientFee=100)))
            status, rb = await sim.post(http, "/api/v1/SequelNumber/Rollback", signer.for_route("SequelNumber/Rollback", treatmentDateTime=b["treatmentDateTime"]))
            assert ok((status, rb)) and rb["sequenceNumber"] == "W002"
            # sequence numbers continue (a rolled-back number is not reused)
            _, c = await sim.post(http, "/api/v1/SequelNumber/Next", signer.for_route("SequelNumber/Next", treatmentItem="01"))
            assert c["sequenceNumber"] == "W003"
            # a signature used before the restart is still refused
            assert (await sim.post(http, "/api/v1/SequelNumber/Next", used))[1]["statusCode"] == Code.SIGNATURE_REUSED
            # the eleventh test card is still refused
            assert (await sim.post(http, "/test/v1/ApplyVirtualHc/Apply", signer.sign("06", sex="F", birthday="0900101")))[1]["statusCode"] == Code.RESTRICTED
            stats = await sim.get(http, "/test/v1/Stats")  # the counts continue
            assert stats["calls"]["SequelNumber/Next"] == 4 and stats["writes"] == {"SequelNumber/Next": 3, FEE: 1, "SequelNumber/Rollback": 1}
            assert ok(await sim.post(http, "/test/v1/Clock", {"offset_s": 24 * 3600 + 60}))
    finally:
        assert sim.proc.stop() == 0
    sim = SimProc(tmp_path, "sim-3")
    try:
        async with aiohttp.ClientSession() as http:  # the movable clock is kept: visit c is now over 24 hours old
            assert (await sim.post(http, "/api/v1/SequelNumber/Rollback", signer.for_route("SequelNumber/Rollback", treatmentDateTime=c["treatmentDateTime"])))[1]["statusCode"] == 3218
    finally:
        assert sim.proc.stop() == 0
    # --reset starts from the seed
    sim = SimProc(tmp_path, "sim-4", "--reset")
    try:
        async with aiohttp.ClientSession() as http:
            assert (await sim.post(http, "/api/v1/SequelNumber/Next", signer.for_route("SequelNumber/Next")))[1]["statusCode"] == Code.SIGNATURE_INVALID  # the SAM is forgotten
            assert (await sim.get(http, "/test/v1/Stats"))["calls"] == {"SequelNumber/Next": 1}
    finally:
        sim.proc.stop()
    assert (tmp_path / "sim.db").stat().st_mode & 0o077 == 0
    for name in ("sim-1", "sim-2", "sim-3", "sim-4"):
        assert "Z299999929" not in (tmp_path / f"{name}.log").read_text()


async def test_sigkill_in_a_burst_of_writes_keeps_every_answered_write_and_no_half_one(tmp_path: Path) -> None:
    signer = Signer()
    sim = SimProc(tmp_path, "sim-burst")
    answered: set[str] = set()
    sent: set[str] = set()
    async with aiohttp.ClientSession() as http:
        assert ok(await sim.post(http, "/test/v1/Sam/Register", {"samId": signer.samId, "hospitalId": signer.hospitalId, "publicKeyPem": signer.public_pem()}))
        _, visit = await sim.post(http, "/api/v1/SequelNumber/Next", signer.for_route("SequelNumber/Next", treatmentItem="01"))
        killed = asyncio.Event()

        async def write(fee: int) -> None:
            body = signer.for_route(FEE, treatmentDateTime=visit["treatmentDateTime"], outpatientFee=fee)
            key = write_content_key(FEE, TreatmentWriteFeeRequest.model_validate(body).model_dump(mode="json", exclude_none=True))  # as the simulator counts it
            sent.add(key)
            try:
                if ok(await sim.post(http, "/api/v1/" + FEE, body)):
                    answered.add(key)
            except (TimeoutError, aiohttp.ClientError):
                assert killed.is_set()
            if len(answered) >= 40 and not killed.is_set():
                killed.set()
                sim.proc.proc.send_signal(signal.SIGKILL)

        sem = asyncio.Semaphore(16)

        async def limited(fee: int) -> None:
            async with sem:
                if not killed.is_set():
                    await write(fee)

        await asyncio.gather(*(limited(fee) for fee in range(1, 400)))
    assert killed.is_set() and sim.proc.stop() == -signal.SIGKILL
    with sqlite3.connect(tmp_path / "sim.db") as db:  # the file is SQLite, one snapshot row
        assert db.execute("SELECT count(*) FROM state").fetchone() == (1,)
    sim = SimProc(tmp_path, "sim-after")
    try:
        async with aiohttp.ClientSession() as http:
            stats = await sim.get(http, "/test/v1/Stats")
    finally:
        sim.proc.stop()
    kept = {k for k, n in stats["writesByContent"].items() if k in sent}
    assert answered <= kept, "an answered write was lost"
    assert all(stats["writesByContent"][k] == 1 for k in kept)
    # nothing half there: each kept write was counted whole (route count = content counts = calls)
    assert stats["writes"][FEE] == len(kept) == stats["calls"][FEE]
