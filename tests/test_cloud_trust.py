"""The NHI cloud over HTTPS under a private CA: refused without ``--cloud-ca`` (9402, the message,
a log line), trusted with it; HTTPS proxies from the environment; test and production not mixed (1003)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from nhigw.common.cloudtls import UNTRUSTED_EN, UNTRUSTED_ZH, CloudTls
from nhigw.common.tls import LocalCA
from nhigw.gateway.upstream import UpstreamSettings
from nhigw.sim.store import SimStore
from tests.cloudkit import https_cloud
from tests.helpers import Proc, eventually, free_port, ok, reserved_socket
from tests.stack import running_stack


def untrusted_answer(body: dict) -> bool:
    return body["statusCode"] == 9402 and UNTRUSTED_ZH in body["message"] and UNTRUSTED_EN in body["messageEn"] and "127.0.0.1" in body["detail"]


async def test_one_call_refused_without_the_cloud_ca_and_served_with_it(tmp_path: Path) -> None:
    sock = reserved_socket()
    url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    LocalCA(tmp_path / "ca", "private-cloud-ca").ensure()  # the CA file exists before the gateway that trusts it starts
    async with running_stack(cloud_url=url) as plain, running_stack(cloud_url=url, upstream=UpstreamSettings(tls=CloudTls(tmp_path / "ca" / "ca.crt"))) as trusted:
        async with https_cloud(plain.store, tmp_path / "ca", sock):
            await plain.ready()
            with capture_logs() as logs:
                status, body = await plain.gw("/api/v1/BasicData/Register", workstation="ws-01")
            assert status == 200 and untrusted_answer(body), [e for e in logs if e.get("exc_info")][:1]
            assert any(e["event"] == "cloud_certificate_untrusted" and e["url"] == url for e in logs)
            assert plain.store.calls.get("BasicData/Register", 0) == 0  # nothing reached the cloud
            # Not retried (it would not verify the next time either): one attempt.
            assert plain.gateway.cloud.calls == 1 and plain.gateway.cloud.retries == 0
            # The breaker opened by such failures still says why.
            for _ in range(6):
                status, body = await plain.gw("/api/v1/BasicData/Register", workstation="ws-01")
            assert untrusted_answer(body) and plain.gateway.cloud.breaker.state == plain.gateway.cloud.breaker.OPEN
            # The same cloud, the gateway given its CA: the request is answered by the cloud.
            await trusted.ready()  # the same virtual SAM (one key store per session), known to the HTTPS cloud's store
            assert ok(await trusted.gw("/api/v1/BasicData/Register", workstation="ws-01"))
            assert plain.store.calls["BasicData/Register"] == 1


@contextlib.asynccontextmanager
async def connect_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A plain HTTP CONNECT proxy on loopback; yields its URL and the targets it was asked for."""
    targets: list[str] = []

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, target, _ = head.split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        targets.append(target)
        host, _, port = target.rpartition(":")
        ur, uw = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", targets
    finally:
        server.close()


async def test_gateway_process_cloud_ca_flag_and_proxy_from_the_environment(tmp_path: Path) -> None:
    store = SimStore.seeded()
    body = {"samId": "001000000103", "hospitalId": "3501200000", "clientRandom": "00" * 16, "signature": "AA==", "serviceType": "01"}

    async def register(gw: str) -> dict:
        async with aiohttp.ClientSession() as http, http.post(gw + "/api/v1/BasicData/Register", json=body) as r:
            assert r.status == 200
            return await r.json(content_type=None)

    async with https_cloud(store, tmp_path / "ca") as (cloud, ca_file), connect_proxy() as (proxy, targets):
        runs = [
            ("no-ca", [], {}),
            ("ca-proxy", ["--cloud-ca", str(ca_file)], {"HTTPS_PROXY": proxy, "NO_PROXY": ""}),
            ("ca-no-proxy", ["--cloud-ca", str(ca_file)], {"HTTPS_PROXY": proxy, "NO_PROXY": "127.0.0.1"}),
        ]
        answers: dict[str, dict] = {}
        for name, flags, env in runs:
            port = free_port()
            p = Proc(f"gateway-{name}", ["gateway", "--port", str(port), "--cloud", cloud, *flags], tmp_path, env=env)
            try:
                p.wait_ready()
                answers[name] = await register(f"http://127.0.0.1:{port}")
            finally:
                p.stop()
            if name == "no-ca":
                assert "cloud_certificate_untrusted" in p.log()
        assert untrusted_answer(answers["no-ca"])
        # With the CA, the cloud itself answered (its own check of this made-up signature), through the proxy or not.
        for name in ("ca-proxy", "ca-no-proxy"):
            assert answers[name]["statusCode"] not in (9402, 0) and answers[name]["statusCode"] < 9400, answers[name]
        assert store.calls.get("BasicData/Register", 0) == 2
        assert targets == [cloud.removeprefix("https://")]  # the proxy carried the second run only (NO_PROXY the third)


async def test_test_sam_with_the_production_cloud_is_1003(tmp_path: Path) -> None:
    async with running_stack(cloud_env="production") as s:
        s.link.cloud_env = "test"  # its SAM verified against medvpndct (the agent's --cloud)
        await s.ready()

        async def announced(env: str) -> bool:
            return s.gateway.registry.entries["ws-01"].presence.cloudEnv == env

        assert await eventually(lambda: announced("test"))
        status, body = await s.gw("/api/v1/BasicData/Register", workstation="ws-01")
        assert status == 200 and body["statusCode"] == 1003 and body["message"] == "正式卡與測試卡混用" and "medvpndct" in body["detail"]
        assert s.store.calls.get("BasicData/Register", 0) == 0
        s.link.cloud_env = "production"
        assert await eventually(lambda: announced("production"))
        assert ok(await s.gw("/api/v1/BasicData/Register", workstation="ws-01"))
