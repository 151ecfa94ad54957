"""Fault drill: the workstation's agent killed in the middle of a one-call request.

On the production process stack (``test_e2e_processes.py``'s ``stack``: pcscd + vpcd,
``agent --pcsc`` enrolled, ``gateway`` and ``sim`` on Redis), the agent is frozen
(SIGSTOP) so that a one-call registration is certainly in flight inside it — the
gateway's signature call delivered, no answer — and then SIGKILLed. The HIS gets a
defined answer, 9401 "workstation did not answer" (or 9400 if the gateway already saw it
go), within the gateway's signature timeout: no hang, no 5xx other than those, nothing
sent upstream. The next call is 9400 at once or within the 3 s presence window.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from tests.test_e2e_processes import Urls, call, eventually, http, sam_verified_and_online, stack  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.pcsc, pytest.mark.redis]


@pytest.fixture(autouse=True)
def sim_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NHIGW_SIM_ADMIN", "1")  # /test/v1/Stats counts what reached the cloud


async def test_agent_killed_mid_request_gives_9401_or_9400_without_hanging(stack: Urls, http: aiohttp.ClientSession) -> None:  # noqa: F811
    g, sim = stack.gateway, stack.sim
    await sam_verified_and_online(http, stack)
    one_call = {"json": {}, "headers": {"X-Workstation": "ws-03", "X-Deadline-Ms": "30000"}}
    status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", **one_call)
    assert status == 200, body
    _, stats = await call(http, "GET", sim + "/test/v1/Stats")
    upstream_before = sum(stats["calls"].values())

    agent = stack.procs["agent"].proc
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        request = asyncio.create_task(call(http, "POST", g + "/api/v1/BasicData/Register", **one_call))
        await asyncio.sleep(1.0)  # the gateway's signature call is on its way to (or sitting in) the frozen agent
        assert not request.done(), "answered while the agent was frozen: the call was not in flight"
        agent.kill()  # SIGKILL works on a stopped process
        agent.wait(5)
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGCONT)
    status, body = await asyncio.wait_for(request, 30)
    elapsed = time.monotonic() - t0
    assert (status, body["statusCode"]) in ((200, 9401), (200, 9400)), body
    assert body["message"] and body["messageEn"]
    assert elapsed < 15, f"answered after {elapsed:.1f} s (signature timeout is 10 s)"

    async def offline_now() -> bool:
        st, b = await call(http, "POST", g + "/api/v1/BasicData/Register", **one_call)
        return (st, b["statusCode"]) == (200, 9400)

    assert await eventually(offline_now, 5.0)
    _, stats = await call(http, "GET", sim + "/test/v1/Stats")
    assert sum(stats["calls"].values()) == upstream_before  # nothing reached the cloud without a signature
