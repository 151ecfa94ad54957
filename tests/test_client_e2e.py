"""``nhigw.client`` against the real stack (agent, gateway, simulator) and against misbehaving servers.

The error tree is the point: an answer with a 6.0 statusCode is a ``StatusCodeError``
(with the code, messages and HTTP status), no answer is a ``TransportError``
(``ConnectError`` / ``RequestTimeout``), an answer that is not JSON is a ``DecodingError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from nhigw.client import (
    AgentClient,
    CloudClient,
    CloudError,
    ComponentError,
    ConnectError,
    DecodingError,
    GatewayError,
    RequestTimeout,
    StatusCodeError,
    TransportError,
)
from nhigw.contracts import cloud as c
from nhigw.contracts.codes import Code
from nhigw.contracts.models import RegisterResponse, SignatureResponse, StatusResponse
from tests.helpers import free_port, serving
from tests.stack import running_stack


async def test_component_and_business_calls_are_typed() -> None:
    async with running_stack() as s, AgentClient(s.agent_url) as agent, CloudClient(s.gateway_url) as cloud:
        assert await agent.initial() == 0
        assert await agent.initial() == 1001  # already initialised: success for HIS code
        with pytest.raises(StatusCodeError) as ei:
            await agent.initial(already_ok=False)
        assert ei.value.code == 1001 and ei.value.message and ei.value.message_en

        status = await agent.status()
        assert isinstance(status, StatusResponse) and status.status.sam.status == 1
        with pytest.raises(StatusCodeError) as ei:
            await agent.hc_signature("01")
        assert ei.value.code == 1301 and ei.value.http_status == 200  # SAM not verified: a 6.0 code, HTTP 200
        assert isinstance(ei.value, ComponentError) and ei.value.status is Code.SAM_MODE2

        await agent.sam_verify()
        sig = await agent.hc_signature("01")
        assert isinstance(sig, SignatureResponse) and sig.hcIdNo == "Z299999929"
        patient = await cloud.register(sig)  # pass-through via the gateway
        assert isinstance(patient, RegisterResponse) and patient.name == "測試十" and patient.cardValidity == "1201231"

        with pytest.raises(StatusCodeError) as ei:
            await cloud.register(sig)  # the same signature again
        assert ei.value.code == 3245 and ei.value.body["statusCode"] == 3245
        assert isinstance(ei.value, CloudError)

        nxt = await cloud.sequel_next(await agent.hc_signature("03"), "01")
        assert isinstance(nxt, c.SeqNextResponse) and nxt.sequenceNumber.startswith("W") and len(nxt.treatmentNumber) == 20
        back = await cloud.route("SequelNumber/Rollback", await agent.hc_signature("03"), {"treatmentDateTime": nxt.treatmentDateTime})
        assert isinstance(back, c.RollbackResponse)

        assert (await agent.hc_pin()).pinSet is False
        assert (await agent.server_datetime()).serverDateTime.isdigit()
        await agent.hpc_verify("12345678")
        assert (await agent.hpc_basic()).cName == "測試醫師"


async def test_one_call_through_the_gateway_needs_no_signature() -> None:
    async with running_stack() as s:
        await s.ready()
        async with CloudClient(s.gateway_url, workstation=s.workstation) as cloud:
            patient = await cloud.register()
            assert patient.idCardNum == "Z299999929"
        async with CloudClient(s.gateway_url, workstation="ws-nobody") as cloud:
            with pytest.raises(StatusCodeError) as ei:
                await cloud.register()
            assert ei.value.code == 9400 and isinstance(ei.value, GatewayError)  # workstation offline
        async with CloudClient(s.gateway_url) as cloud:
            with pytest.raises(ValueError):
                await cloud.register()  # neither a signature nor a workstation


@contextlib.asynccontextmanager
async def odd_server() -> AsyncIterator[str]:
    async def not_json(_r: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>", status=502, content_type="text/html")

    async def slow(_r: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.json_response({"statusCode": 0})

    async def bare_error(_r: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=500)

    app = web.Application()
    app.router.add_get("/api/common/v1/Status", not_json)
    app.router.add_get("/api/sam/v1/Basic", slow)
    app.router.add_get("/api/hc/v1/Basic", bare_error)
    async with serving(app) as url:
        yield url


async def test_transport_decoding_and_status_errors_are_apart() -> None:
    async with AgentClient(f"http://127.0.0.1:{free_port()}") as closed:
        with pytest.raises(ConnectError) as ei:
            await closed.status()
        assert isinstance(ei.value, TransportError)
    async with odd_server() as url, AgentClient(url, timeout_s=0.2) as agent:
        with pytest.raises(DecodingError) as de:
            await agent.status()
        assert de.value.http_status == 502
        with pytest.raises(RequestTimeout):
            await agent.sam_basic()
        with pytest.raises(StatusCodeError) as se:
            await agent.hc_basic()
        assert se.value.http_status == 500 and se.value.code == 9499  # an HTTP error without a 6.0 code


async def test_blocking_clients_for_non_async_his_code() -> None:
    from nhigw.client.sync import SyncAgentClient, SyncCloudClient

    async with running_stack() as s:
        await s.ready()

        def his_code() -> tuple[str, int, bool]:  # what a Qt/WinForms HIS would run on its own thread
            with SyncAgentClient(s.agent_url) as agent, SyncCloudClient(s.gateway_url) as cloud:
                sig = agent.hc_signature("01")
                name = cloud.register(sig).name
                try:
                    cloud.register(sig)
                except CloudError as exc:
                    code = exc.code
                return name, code, agent.status().status.initialized

        assert await asyncio.to_thread(his_code) == ("測試十", 3245, True)
        with SyncAgentClient(s.agent_url) as agent, pytest.raises(RuntimeError):
            agent.status()  # inside a running loop: refused, not deadlocked
