"""Fault drill: the workstation's agent killed in the middle of a one-call request.

On the production process stack (``test_e2e_processes.py``'s ``stack``: pcscd + vpcd,
``agent --pcsc`` enrolled, ``gateway`` and ``sim`` on Redis), the agent is frozen
(SIGSTOP) so that 20 one-call requests (registrations and writes) are certainly in flight
inside it — the gateway's signature calls delivered, no answer — and then SIGKILLed. Once the
gateway notices (its presence stopped: the 3 s window), every waiting call is answered at once
with 9400 "agent went offline during the call" — not 9401 after the full 10 s signature
timeout; nothing reached the cloud, no write was executed. The next call is 9400 at once.
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


async def test_agent_killed_with_20_signature_requests_in_flight_answers_all_9400_once_the_gateway_notices(stack: Urls, http: aiohttp.ClientSession) -> None:  # noqa: F811
    g, sim = stack.gateway, stack.sim
    await sam_verified_and_online(http, stack)
    one_call = {"headers": {"X-Workstation": "ws-03", "X-Deadline-Ms": "30000"}}
    status, body = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, **one_call)
    assert status == 200, body
    _, stats = await call(http, "GET", sim + "/test/v1/Stats")
    upstream_before = sum(stats["calls"].values())

    agent = stack.procs["agent"].proc
    os.kill(agent.pid, signal.SIGSTOP)
    answered: list[float] = []

    async def one(i: int) -> tuple[int, dict]:
        path, body = ("/api/v1/EmergentTel/Write", {"tel": f"02{i:08d}"}) if i % 2 else ("/api/v1/BasicData/Register", {})
        out = await call(http, "POST", g + path, json=body, headers={**one_call["headers"], "Idempotency-Key": f"in-flight-{i}"})
        answered.append(time.monotonic())
        return out

    async def gateway_noticed() -> bool:
        _, ws = await call(http, "GET", g + "/api/workstations")
        return not any(w["online"] for w in ws["workstations"] if w["workstation"] == "ws-03")

    try:
        requests = [asyncio.create_task(one(i)) for i in range(20)]
        await asyncio.sleep(1.0)  # the signature calls are on their way to (or sitting in) the frozen agent
        assert not any(r.done() for r in requests), "answered while the agent was frozen: the calls were not in flight"
        agent.kill()  # SIGKILL works on a stopped process
        agent.wait(5)
        assert await eventually(gateway_noticed, 10.0)  # its presence stopped: offline after the 3 s window
        noticed = time.monotonic()
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGCONT)
    answers = await asyncio.wait_for(asyncio.gather(*requests), 30)
    for status, body in answers:
        assert (status, body["statusCode"]) == (200, 9400) and "went offline during the call" in body["detail"], body
        assert body["message"] and body["messageEn"]
    # Answered when the gateway knew, not after the 10 s signature timeout (9401).
    assert max(answered) - noticed < 3.0, f"answered {max(answered) - noticed:.1f} s after the gateway noticed"
    _, stats = await call(http, "GET", sim + "/test/v1/Stats")
    assert sum(stats["calls"].values()) == upstream_before  # nothing reached the cloud without a signature
    assert stats["writesByContent"] == {}  # none executed

    async def offline_now() -> bool:
        st, b = await call(http, "POST", g + "/api/v1/BasicData/Register", json={}, **one_call)
        return (st, b["statusCode"]) == (200, 9400)

    assert await eventually(offline_now, 5.0)
