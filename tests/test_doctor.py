"""``nhigw doctor`` against a real stack: a redis-server, an HTTPS cloud under a private CA, an agent
on the bus; all green when healthy, and each injected fault reported with its fix (exit 1)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path

import pytest

from nhigw.bus.enrol import enrol
from nhigw.bus.redis import RedisBus
from nhigw.common.tls import LocalCA
from nhigw.contracts.buskeys import BusKeys
from tests.cloudkit import https_cloud
from tests.conftest import start_redis
from tests.helpers import ROOT, eventually, free_port, reserved_socket
from tests.stack import running_stack

pytestmark = pytest.mark.redis


async def doctor(*args: str, key: str | None = None, table: bool = False) -> tuple[int, list[dict], str]:
    """``nhigw doctor`` as a process (the test's event loop keeps the agent's heartbeat going meanwhile)."""
    env = {**os.environ, "NHIGW_BUS_KEY": key or ""}
    env.pop("HTTPS_PROXY", None)
    p = await asyncio.create_subprocess_exec(sys.executable, "-m", "nhigw", "doctor", *args, *([] if table else ["--json"]),
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT)
    out, err = await asyncio.wait_for(p.communicate(), 60)
    text = out.decode()
    return int(p.returncode or 0), ([] if table else json.loads(text)), text + err.decode()


def failing(rows: list[dict]) -> dict[str, dict]:
    return {f"{r['hop']} / {r['check']}": r for r in rows if r["status"] == "FAIL"}


async def test_doctor_all_green_then_each_fault_with_its_fix(tmp_path: Path, redis_server: str, bus_prefix: str) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    data = tmp_path / "data"
    (data / "gateway").mkdir(parents=True, mode=0o700)
    data.chmod(0o700)
    (data / "gateway" / "audit.key").write_bytes(os.urandom(32))
    (data / "gateway" / "audit.key").chmod(0o600)
    ca = LocalCA(tmp_path / "ca", "private-cloud-ca")
    ca.ensure()
    (tmp_path / "aof").mkdir()
    proc, persist_port = start_redis(tmp_path / "aof", appendonly=True)  # the healthy one: append-only file on
    url = f"redis://127.0.0.1:{persist_port}/0"
    sock = reserved_socket()
    cloud = f"https://127.0.0.1:{sock.getsockname()[1]}"
    base = ["--redis", url, "--bus-prefix", bus_prefix, "--data-dir", str(data), "--cloud", cloud]
    bus = RedisBus(url)
    try:
        async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=base64.b64decode(key), cloud_url=cloud) as s, https_cloud(s.store, tmp_path / "ca", sock):
            await s.ready()
            rc, rows, _ = await doctor(*base, "--cloud-ca", str(ca.ca_path), key=key)
            assert rc == 0 and not failing(rows), failing(rows)
            checks = {(r["hop"], r["check"]): r for r in rows}
            for want in [("Redis", "持久化 persistence"), ("Redis", "記憶體 memory"), ("雲端 NHI cloud", "TLS 憑證鏈 chain"), ("雲端 NHI cloud", "TLS 憑證效期 expiry"),
                         ("雲端 NHI cloud", "時鐘 clock"), ("工作站 ws-01", "SAM"), ("工作站 ws-01", "代理程式 agent"), ("檔案 files (gateway)", "權限 permissions")]:
                assert checks[want]["status"] == "OK", checks[want]
            assert "verified (state 2)" in checks[("工作站 ws-01", "SAM")]["result"]

            # The simulator down: the cloud's TCP hop fails, with its fix; nothing else.
            rc, rows, _ = await doctor(*base[:-1], f"https://127.0.0.1:{free_port()}", key=key)
            assert rc == 1 and list(failing(rows)) == ["雲端 NHI cloud / TCP"] and "模擬器" in failing(rows)["雲端 NHI cloud / TCP"]["fix_zh"]

            # An untrusted certificate (no --cloud-ca): the chain fails, pointing at --cloud-ca.
            rc, rows, _ = await doctor(*base, key=key)
            bad = failing(rows)
            assert rc == 1 and list(bad) == ["雲端 NHI cloud / TLS 憑證鏈 chain"], bad
            assert "--cloud-ca" in bad["雲端 NHI cloud / TLS 憑證鏈 chain"]["fix_en"] and "憑證不受信任" in bad["雲端 NHI cloud / TLS 憑證鏈 chain"]["fix_zh"]

            # The SAM taken out and put back: present, not verified.
            reader = s.bank.names[0]
            card = s.bank.cards[reader]
            s.bank.remove(reader)

            async def sam_is(state: int) -> bool:
                e = s.gateway.registry.entries.get("ws-01")
                return e is not None and e.presence.states.sam == state

            assert await eventually(lambda: sam_is(0))
            s.bank.insert(reader, card)
            assert await eventually(lambda: sam_is(1))
            rc, rows, text = await doctor(*base, "--cloud-ca", str(ca.ca_path), key=key, table=True)
            assert rc == 1 and "state 1" in text and "POST /api/sam/v1/Verification" in text and "→ 修正：" in text and "→ fix:" in text
            assert (await s.agent_call("POST", "/api/sam/v1/Verification", json={}))[1]["statusCode"] == 0
            assert await eventually(lambda: sam_is(2))

            # One more workstation enrolled whose agent never starts: offline, with its fix.
            await enrol(s.gateway.bus, BusKeys(bus_prefix), "ws-02", await s.gateway.agents.issue_token("ws-02"), timeout_s=10)
            (data / "gateway" / "audit.key").chmod(0o644)  # and a key file others can read
            rc, rows, _ = await doctor(*base, "--cloud-ca", str(ca.ca_path), key=key)
            bad = failing(rows)
            assert rc == 1 and set(bad) == {"工作站 ws-02 / 代理程式 agent", "檔案 files (gateway) / 權限 permissions"}, bad
            assert "nhigw agent" in bad["工作站 ws-02 / 代理程式 agent"]["fix_en"] and "audit.key" in bad["檔案 files (gateway) / 權限 permissions"]["result"]
            (data / "gateway" / "audit.key").chmod(0o600)

            # The single-agent form, on the workstation.
            rc, rows, _ = await doctor("--agent", s.agent_url, "--data-dir", str(data), "--cloud", cloud, "--cloud-ca", str(ca.ca_path))
            assert rc == 0 and any(r["check"] == "SAM" and "verified" in r["result"] for r in rows), rows
    finally:
        await bus.close()
        proc.terminate()
        proc.wait(5)

    # Redis without persistence (`--save '' --appendonly no`): reported with its fix.
    rc, rows, _ = await doctor("--redis", redis_server, "--bus-prefix", bus_prefix, "--data-dir", str(data), key=key)
    bad = failing(rows)
    assert rc == 1 and "Redis / 持久化 persistence" in bad and "appendonly yes" in bad["Redis / 持久化 persistence"]["fix_en"]
