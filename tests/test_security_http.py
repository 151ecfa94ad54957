"""Issue 16, the HTTP side: what a web page, a rebound host name, a LAN host or an HIS client with a
plain key could do to the agent, compat, the gateway and the simulator, and now cannot.

Most tests run against one real ``nhigw up`` process (sim, agent, gateway, compat, as
``scripts/run.sh`` starts them), where the findings were made; the others against real
servers on loopback (``tests.stack``) or the ``nhigw`` command itself.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from nhigw.compat.endpoints import COMPAT
from nhigw.contracts.api import AGENT, GATEWAY, SIM
from nhigw.gateway.auth import Client, Clients, Role, key_hash
from nhigw.gateway.upstream import UpstreamSettings
from tests.helpers import ROOT, Proc, free_port, insecure_ssl
from tests.stack import running_stack


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("up")
    data = tmp / "data"  # not there yet: `nhigw up` makes it
    ports = {k: free_port() for k in ("sim", "agent", "gateway", "compat")}
    p = Proc("up", ["up", "--data-dir", str(data), *[a for k, v in ports.items() for a in (f"--{k}-port", str(v))]], tmp)
    try:
        p.wait_ready(60)
        yield {
            "data": data,
            "ports": ports,
            "sim": f"http://127.0.0.1:{ports['sim']}",
            "agent": f"https://127.0.0.1:{ports['agent']}",
            "gateway": f"http://127.0.0.1:{ports['gateway']}",
            "compat": f"https://127.0.0.1:{ports['compat']}",
        }
    finally:
        p.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure_ssl())) as s:
        yield s


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as r:
        raw = await r.read()
        assert r.content_type == "application/json" or not raw, (r.status, raw[:200])
        return r.status, json.loads(raw) if raw else None


def refused(answer: tuple[int, Any]) -> bool:
    status, body = answer
    return status == 403 and body["statusCode"] == 9411


# ------------------------------------------------------------------ CSRF (issue 16 item 3)


async def test_a_web_page_cannot_change_state_on_the_agent_or_compat(up: dict[str, Any], http: aiohttp.ClientSession) -> None:
    agent, compat = up["agent"], up["compat"]
    plain = {"Content-Type": "text/plain"}  # what a cross-site form or no-cors fetch can send without a preflight
    # A wrong HPC PIN from a page: refused before it reaches the card (it is not even in the agent's call record).
    assert refused(await call(http, "POST", agent + "/api/hpc/v1/Verification/Hpc", data='{"pin":"00000000"}', headers=plain))
    assert refused(await call(http, "POST", agent + "/api/common/v1/Finalize", data="{}", headers={**plain, "Origin": "https://evil.example"}))
    evil_json = {"Origin": "https://evil.example", "Content-Type": "application/json"}
    assert refused(await call(http, "POST", agent + "/api/hpc/v1/Verification/Hpc", json={"pin": "00000000"}, headers={"Origin": "https://evil.example"}))
    assert refused(await call(http, "POST", agent + "/api/common/v1/Finalize", data="", headers=evil_json))
    _, rec = await call(http, "GET", agent + "/api/common/v1/Record")
    assert not [r for r in rec["records"] if r["function"] in ("POST /api/hpc/v1/Verification/Hpc", "POST /api/common/v1/Finalize")]
    _, st = await call(http, "GET", agent + "/api/common/v1/Status")
    assert st["status"]["initialized"] is True  # Finalize did not run
    # The console (same origin) keeps working, and so does an HIS program (no Origin, JSON).
    status, body = await call(http, "POST", agent + "/api/common/v1/Initial", json={}, headers={"Origin": agent})
    assert status != 403 and body["statusCode"] in (0, 1001)  # 1001: `nhigw up` initialised it already
    assert (await call(http, "GET", agent + "/api/common/v1/Status", headers={"Origin": agent}))[0] == 200
    status, body = await call(http, "DELETE", agent + "/api/hc/v1/Logout")  # HIS code sends it bare
    assert status == 200 and body["statusCode"] == 0
    # compat: the sequence-number write from a page is refused, as is a cross-site GET of an SDK route.
    assert refused(await call(http, "POST", compat + "/cshis/hisGetSeqNumber256", data='{"cTreatItem":"01","cTreatAfterCheck":"1"}', headers=plain))
    assert refused(await call(http, "POST", compat + "/cshis/hisGetSeqNumber256", json={"cTreatItem": "01"}, headers={"Origin": "https://evil.example"}))
    assert refused(await call(http, "GET", compat + "/VHC/VHCcsOpenCom", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}))
    status, body = await call(http, "POST", compat + "/cshis/csGetDateTime", json={}, headers={"Origin": compat})  # Swagger UI, same origin
    assert status == 200 and "ERRORCODE" in body
    # A cross-site link to the console still opens it.
    async with http.get(agent + "/console/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}) as r:
        assert r.status == 200 and b"<html" in (await r.read()).lower()


async def test_the_agents_cors_list_checks_the_scheme(up: dict[str, Any], http: aiohttp.ClientSession) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    async with http.options(up["agent"] + "/api/hc/v1/Basic", headers={**preflight, "Origin": "https://medvpndc.nhi.gov.tw"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://medvpndc.nhi.gov.tw"
    async with http.options(up["agent"] + "/api/hc/v1/Basic", headers={**preflight, "Origin": "http://medvpndc.nhi.gov.tw"}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers  # plain http: anyone on the path could be it
    status, body = await call(http, "GET", up["agent"] + "/api/hc/v1/Basic", headers={"Origin": "http://medvpndc.nhi.gov.tw"})
    assert "Access-Control-Allow-Origin" not in (body or {})


# ------------------------------------------------------------------ Host and Origin without keys (item 4)


async def test_without_keys_only_loopback_host_names_and_own_origins_are_served(up: dict[str, Any], http: aiohttp.ClientSession) -> None:
    gw = up["gateway"]
    rebound = {"Host": f"evil.example:{up['ports']['gateway']}"}
    # DNS rebinding: the page's own name now points at 127.0.0.1
    assert refused(await call(http, "GET", gw + "/api/workstations", headers=rebound))
    assert refused(await call(http, "GET", gw + "/api/audit", headers=rebound))
    assert refused(await call(http, "POST", gw + "/api/v1/BasicData/Register", json={}, headers={**rebound, "X-Workstation": "ws-01"}))
    for svc in ("agent", "compat"):
        assert refused(await call(http, "GET", up[svc] + "/healthz", headers={"Host": f"evil.example:{up['ports'][svc]}"}))
    # A cross-site text/plain POST to the open gateway (a PIN verification at ws-01): refused.
    assert refused(await call(http, "POST", gw + "/api/workstations/ws-01/hpc/v1/Verification/Hpc", data='{"pin":"00000000"}', headers={"Origin": "https://evil.example", "Content-Type": "text/plain"}))
    assert refused(await call(http, "GET", gw + "/api/workstations", headers={"Origin": "null"}))
    # loopback names and the dashboard (same origin) are served
    for host in (f"localhost:{up['ports']['gateway']}", f"127.0.0.1:{up['ports']['gateway']}", f"[::1]:{up['ports']['gateway']}"):
        status, body = await call(http, "GET", gw + "/api/workstations", headers={"Host": host})
        assert status == 200 and body["statusCode"] == 0
    assert (await call(http, "GET", gw + "/api/workstations", headers={"Origin": gw}))[0] == 200


@pytest.mark.parametrize("service", ["agent", "compat"])
def test_agent_and_compat_refuse_a_non_loopback_bind_unless_told(service: str, tmp_path: Path) -> None:
    args = [service, "--host", "0.0.0.0", "--port", str(free_port()), "--no-tls", "--data-dir", str(tmp_path)] + (["--virtual"] if service == "agent" else [])
    p = subprocess.run([sys.executable, "-m", "nhigw", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--allow-non-loopback" in p.stderr


# ------------------------------------------------------------------ bodies and rate limits (item 9)


async def test_business_bodies_are_capped_with_a_json_413(up: dict[str, Any], http: aiohttp.ClientSession) -> None:
    big = json.dumps({"hospitalId": "3501200000", "pad": "x" * (5 * 1024 * 1024)})
    status, body = await call(http, "POST", up["gateway"] + "/api/v1/BasicData/Query", data=io.BytesIO(big.encode()), headers={"Content-Type": "application/json"})
    assert status == 413 and body["statusCode"] == 9413
    status, body = await call(http, "POST", up["gateway"] + "/api/v1/BasicData/Query", data=big[: 900 * 1024] + '"}', headers={"Content-Type": "application/json"})
    assert status != 413  # under the documented cap (4 MiB): read and answered


# ------------------------------------------------------------------ no 500 for odd input (item 11)


def _fill(path: str) -> str:
    return (
        path.replace("{path}", "BasicData/Register").replace("{samId}", "000000000000").replace("{function}", "hisGetBasicData")
        .replace("{id}", "1-1").replace("{ws}", "ws-01").replace("{component}", "hpc/v1/Verification/Hpc")
    )  # fmt: skip


def _json_endpoints() -> list[tuple[str, str, str]]:
    rows = [("agent", e) for e in AGENT] + [("gateway", e) for e in GATEWAY] + [("sim", e) for e in SIM] + [("compat", e) for e in COMPAT]
    rows += [("gateway", e) for e in SIM if e.path.startswith("/api/v1/")]  # every business route, through the gateway
    return sorted({(svc, e.method, _fill(e.path)) for svc, e in rows if e.method in ("POST", "PUT")})


async def test_deep_nesting_and_huge_numbers_are_a_json_400_on_every_json_endpoint(tmp_path: Path) -> None:
    from nhigw.compat.app import build
    from tests.helpers import site_url, start_site

    bodies = {"deep": "[" * 5000 + "]" * 5000, "deep-object": '{"a":' * 5000 + "1" + "}" * 5000, "huge-int": '{"pin": ' + "9" * 5000 + ', "serviceType": 1' + "0" * 5000 + "}"}
    async with running_stack(upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)) as s:
        compat = await start_site(build(s.agent_url, s.gateway_url))
        urls = {"agent": s.agent_url, "gateway": s.gateway_url, "sim": s.sim_url, "compat": site_url(compat)}
        failures = []
        try:
            for svc, method, path in _json_endpoints():
                for name, body in bodies.items():
                    async with s.http.request(method, urls[svc] + path, data=body, headers={"Content-Type": "application/json"}) as r:
                        raw = await r.read()
                        if r.status >= 500 or r.content_type != "application/json":
                            failures.append((svc, method, path, name, r.status, raw[:120]))
            # a UTF-16 body on business routes (pass-through and one call)
            utf16 = json.dumps({"hospitalId": "3501200000"}).encode("utf-16")
            for headers in ({}, {"X-Workstation": "ws-01"}):
                async with s.http.post(s.gateway_url + "/api/v1/BasicData/Register", data=utf16, headers={"Content-Type": "application/json", **headers}) as r:
                    body = await r.json(content_type=None)
                    if r.status != 400 or body["statusCode"] != 9414:
                        failures.append(("gateway", "POST", "utf-16", headers, r.status, body))
        finally:
            await compat.cleanup()
        assert not failures, failures[:10]
        assert len(_json_endpoints()) > 150  # every row of the four services' tables was tried


async def test_odd_and_unknown_methods_are_answered_in_json(up: dict[str, Any], http: aiohttp.ClientSession) -> None:
    ws = up["gateway"] + "/api/workstations/ws-01/common/v1/Status"
    for method in ("PATCH", "TRACE", "PROPFIND"):
        status, body = await call(http, method, ws)
        assert status == 405 and body["statusCode"] == 9412, (method, status, body)
    async with http.head(ws) as r:
        assert r.status == 405
    for svc in ("sim", "gateway", "agent", "compat"):
        port = up["ports"][svc]
        ctx = insecure_ssl() if svc in ("agent", "compat") else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        writer.write(b"FOO /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert b" 400 " in head.split(b"\r\n")[0] and b"application/json" in head, (svc, raw[:300])
        assert json.loads(payload)["statusCode"] == 9414


# ------------------------------------------------------------------ item 12


async def test_slow_request_heads_are_cut_off_on_every_service(up: dict[str, Any], http: aiohttp.ClientSession) -> None:
    """slowloris: connections that never finish their request head are closed by the service (10 s)."""

    async def slow(svc: str, mode: str) -> bool:
        ctx = insecure_ssl() if svc in ("agent", "compat") else None
        reader, writer = await asyncio.open_connection("127.0.0.1", up["ports"][svc], ssl=ctx)
        if mode == "partial":
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            await writer.drain()
        try:
            await reader.read()  # b"" once the service closes the connection
            return True
        except (ConnectionError, ssl.SSLError):
            return True
        finally:
            writer.close()

    conns = [slow("gateway", "partial" if i % 2 else "silent") for i in range(200)] + [slow(svc, "partial") for svc in ("agent", "compat", "sim") for _ in range(30)]
    closed = await asyncio.wait_for(asyncio.gather(*conns), 28)
    assert all(closed) and len(closed) == 290
    assert (await call(http, "GET", up["gateway"] + "/healthz"))[0] == 200


def test_data_directories_are_private_and_the_tls_key_is_sealed(up: dict[str, Any]) -> None:
    data: Path = up["data"]
    for d in (data, data / "agent", data / "compat"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for svc in ("agent", "compat"):
        pem = (data / svc / "tls.key").read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(pem, password=None)


@pytest.mark.parametrize("content", ['{"clients": []}', "{}"])
def test_a_clients_file_without_clients_does_not_start_an_open_gateway(content: str, tmp_path: Path) -> None:
    f = tmp_path / "clients.json"
    f.write_text(content)
    p = subprocess.run([sys.executable, "-m", "nhigw", "gateway", "--port", str(free_port()), "--clients", str(f)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "lists no client" in p.stderr


def test_secrets_come_from_files_or_the_environment(redis_server: str, bus_key: str, bus_prefix: str, tmp_path: Path) -> None:
    key_file = tmp_path / "bus_key"
    key_file.write_text(bus_key + "\n")
    base = [sys.executable, "-m", "nhigw", "gateway", "enrol-token", "--redis", redis_server, "--bus-prefix", bus_prefix, "--workstation", "ws-09"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NHIGW_")}
    for extra, extra_env in ((["--bus-key-file", str(key_file)], {}), ([], {"NHIGW_BUS_KEY_FILE": str(key_file)}), ([], {"NHIGW_BUS_KEY": bus_key})):
        p = subprocess.run([*base, *extra], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**env, **extra_env})
        assert p.returncode == 0 and p.stdout.strip(), p.stderr
    p = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode != 0 and "gateway key is required" in p.stderr


async def test_a_client_without_a_hospital_cannot_put_invented_hospital_ids_into_the_audit() -> None:
    async with running_stack(upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)) as s:
        for fake in ("9999999999", "1234567890"):
            _, body = await s.gw("/api/v1/BasicData/Query", {"hospitalId": fake, "samId": "x", "signature": "x", "clientRandom": "x"})
            assert body["statusCode"] != 0  # the simulator refuses the forged signature
        await s.ready()
        _, body = await s.gw("/api/v1/BasicData/Register", {"hospitalId": "9999999999"}, workstation="ws-01")
        assert body["statusCode"] == 0, body
        recs = await s.gateway.audit.records()
        assert {r.hospitalId for r in recs if r.route == "BasicData/Query"} == {None}
        assert [r.hospitalId for r in recs if r.route == "BasicData/Register"] == ["3501200000"]  # the SAM's, from its signature


# ------------------------------------------------------------------ the agent's settings through the gateway (item 2)


async def test_an_his_client_cannot_change_agent_settings_through_the_gateway() -> None:
    clients = Clients([Client("his-a", "3501200000", ("ws-*",), None, key_hash("his-key")), Client("ops", None, ("*",), Role.OPERATOR, key_hash("ops-key"), allHospitals=True)])
    async with running_stack(clients=clients) as s:
        his, ops = {"Authorization": "Bearer his-key"}, {"Authorization": "Bearer ops-key"}
        ws = f"{s.gateway_url}/api/workstations/{s.workstation}"
        before = list(s.agent.settings.settings.corsHosts)
        for method, path, body in (
            ("PUT", "common/v1/Settings/Cors", {"hosts": ["*"]}),
            ("PUT", "common/v1/Settings/Reader", {"reader": "x"}),
            ("POST", "common/v1/Settings/CloudSam", {"samId": "000000000000"}),
            ("GET", "common/v1/Settings", None),
            ("DELETE", "common/v1/Settings/CloudSam/000000000000", None),
            ("DELETE", "common/v1/Record", None),
        ):
            st, b = await s.call(method, f"{ws}/{path}", json=body, headers=his)
            assert st == 403 and b["statusCode"] == 9411, (method, path, st, b)
        assert s.agent.settings.settings.corsHosts == before
        # the HIS calls stay open to it
        st, b = await s.call("GET", f"{ws}/common/v1/Status", headers=his)
        assert st == 200 and "status" in b
        st, b = await s.call("POST", f"{ws}/common/v1/Initial", json={}, headers=his)
        assert b["statusCode"] in (0, 1001)
        # an operator may
        st, b = await s.call("PUT", f"{ws}/common/v1/Settings/Cors", json={"hosts": ["*.nhi.gov.tw", "his.clinic.example"]}, headers=ops)
        assert st == 200 and b["corsHosts"] == ["*.nhi.gov.tw", "his.clinic.example"]
