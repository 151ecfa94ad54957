"""The request browser (issue 21 item 2) on a real Redis: recent business requests by workstation,
route, outcome, time, and by patient — the operator types the full national ID, the gateway finds the
records through the keyed hash stored with each, and no full ID is stored anywhere in Redis.

One-call registrations at ws-01 (the agent's HC: Z299999929, answered 0) and pass-through queries for
another patient that the cloud refuses (a made-up signature: failures); then every filter, a
hospital-scoped viewer of another hospital (nothing), the audit record of each search by patient, and
every value under the test's Redis prefix searched for the full IDs (0 found).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from nhigw.bus.redis import RedisBus
from nhigw.gateway.auth import Clients, Role
from tests.stack import running_stack
from tests.test_gateway_service import PASS_BODY
from tests.test_secrets_scan import find_secrets

pytestmark = pytest.mark.redis

HOSP = "3501200000"


async def redis_values(url: str, prefix: str) -> str:
    """Every key and value under ``prefix`` (strings, lists, hashes, sets, sorted sets, streams) as text."""
    r = aioredis.Redis.from_url(url)
    out: list[str] = []
    try:
        async for key in r.scan_iter(match=f"{prefix}:*"):
            t = (await r.type(key)).decode()
            out.append(key.decode("utf-8", "replace"))
            if t == "string":
                val = [await r.get(key)]
            elif t == "list":
                val = await r.lrange(key, 0, -1)
            elif t == "hash":
                val = [x for kv in (await r.hgetall(key)).items() for x in kv]
            elif t == "set":
                val = list(await r.smembers(key))
            elif t == "zset":
                val = await r.zrange(key, 0, -1)
            elif t == "stream":
                val = [x for _id, fields in await r.xrange(key) for kv in fields.items() for x in kv]
            else:
                val = []
            out += [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in val if v is not None]
    finally:
        await r.aclose()
    return "\n".join(out)


async def test_request_browser_finds_a_patient_by_the_full_id_and_stores_it_nowhere(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    f = tmp_path / "clients.json"
    his = {"Authorization": f"Bearer {Clients.add(f, 'his-a', HOSP, ['*'])}"}
    viewer = {"Authorization": f"Bearer {Clients.add(f, 'desk', HOSP, ['*'], role=Role.VIEWER)}"}
    elsewhere = {"Authorization": f"Bearer {Clients.add(f, 'other-desk', '3501209999', ['*'], role=Role.VIEWER)}"}
    bus = RedisBus(redis_server)
    async with running_stack(bus=bus, prefix=bus_prefix, gateway_key=os.urandom(32), clients=Clients.load(f)) as s:
        await s.ready()
        for i in range(2):
            st, body = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={**his, "X-Workstation": "ws-01", "Idempotency-Key": f"reg-{i}"})
            assert st == 200 and body["idCardNum"] == "Z299999929", body
        for i in range(3):
            st, body = await s.call("POST", s.gateway_url + "/api/v1/BasicData/Query", json={**PASS_BODY, "hcIdNo": "A234567890"}, headers={**his, "Idempotency-Key": f"q-{i}"})
            assert st == 200 and body["statusCode"] != 0, body  # the cloud refuses the made-up signature

        async def search(who: dict[str, str], **q: object) -> list[dict]:
            st, res = await s.call("POST", s.gateway_url + "/api/ops/requests/search", json=q, headers=who)
            assert st == 200 and res["statusCode"] == 0, res
            return res["records"]

        z = await search(viewer, patient="Z299999929")
        assert len(z) == 2 and {(r["patient"], r["workstation"], r["route"], r["outcome"]) for r in z} == {("Z29*****29", "ws-01", "BasicData/Register", 0)}
        assert [r["idempotencyKey"] for r in z] == ["reg-1", "reg-0"]  # newest first
        a = await search(viewer, patient=" a234567890 ")  # as typed: spaces, lower case
        assert len(a) == 3 and {r["patient"] for r in a} == {"A23*****90"} and all(r["outcome"] != 0 for r in a)
        assert await search(viewer, patient="C123456789") == []
        assert len(await search(viewer, workstation="ws-01")) == 2
        assert len(await search(viewer, outcome="fail")) == 3 and len(await search(viewer, outcome="ok")) == 2
        assert len(await search(viewer, route="BasicData/Query", patient="A234567890")) == 3
        assert len(await search(viewer, route="basicdata/", limit=4)) == 4
        assert await search(viewer, since="2999-01-01") == []
        assert len(await search(viewer, until="2999-01-01", patient="Z299999929")) == 2
        assert await search(elsewhere, patient="Z299999929") == []  # another hospital's viewer
        st, bad = await s.call("POST", s.gateway_url + "/api/ops/requests/search", json={"since": "yesterday"}, headers=viewer)
        assert (st, bad["statusCode"]) == (200, 1706), bad
        assert (await s.call("POST", s.gateway_url + "/api/ops/requests/search", json={}, headers=his))[0] == 403
        # Each search by patient is itself an audit record: who, the masked ID, no full ID.
        st, page = await s.call("GET", s.gateway_url + "/api/audit?limit=1000", headers=viewer)
        searches = [r for r in page["records"] if r["route"] == "ops/requests/search"]
        assert [(r["client"], r["patient"]) for r in searches][:2] == [("desk", "Z29*****29"), ("desk", "A23*****90")], searches
        stored = await redis_values(redis_server, bus_prefix)
        assert "Z29*****29" in stored and "ops/requests/search" in stored  # the scan reads the audit itself
        assert find_secrets(stored, []) == []
    await bus.close()
