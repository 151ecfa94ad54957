"""``nhigw sim`` and ``nhigw proto`` as real processes: the admin switch, and the drift check's exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.helpers import ROOT, Proc, free_port


async def test_nhigw_sim_admin_flag_switches_fault_injection_on(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    procs = [Proc("sim-plain", ["sim", "--port", str(ports[0])], tmp_path, env={"NHIGW_SIM_ADMIN": ""}).wait_ready(),
             Proc("sim-admin", ["sim", "--admin", "--port", str(ports[1])], tmp_path, env={"NHIGW_SIM_ADMIN": ""}).wait_ready()]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{ports[0]}/test/v1/Faults", json={"status": 503}) as r:
                assert r.status == 403
            async with http.post(f"http://127.0.0.1:{ports[1]}/test/v1/Faults", json={"status": 503, "times": 1}) as r:
                assert r.status == 200
            async with http.post(f"http://127.0.0.1:{ports[1]}/api/v1/BasicData/Query", json={}) as r:
                assert r.status == 503 and (await r.json())["statusCode"] == 9402
            async with http.post(f"http://127.0.0.1:{ports[1]}/api/v1/BasicData/Query", json={}) as r:
                assert r.status == 200 and (await r.json())["statusCode"] == 1705  # the rule is spent: a normal answer
    finally:
        for p in procs:
            p.stop()
    for p in procs:  # personal data of the seed never reaches the log
        assert "Z299999929" not in p.log()


def test_nhigw_proto_check_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "nhigw", "proto", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    drift = subprocess.run([sys.executable, "-m", "nhigw", "proto", "--check", "--root", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert drift.returncode == 1 and "missing: proto/openapi/sim.json" in drift.stdout
