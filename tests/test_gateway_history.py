"""The dashboard's history (issue 21 item 5): the last hours per minute and per route, kept by the
gateway and shared by replicas through Redis, so a page opened now on any replica shows what every
replica served before it opened.

Two replicas on one Redis serve a read route (answered 0) and a write route (the cloud refuses it);
a third replica started afterwards answers ``GET /api/ops/history`` with every request counted once:
per minute (count, errors, mean, p99) and per route (count, error rate, p50, p99). The quantiles are
also checked on vectors (pure).
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from aiohttp import web

from nhigw.bus.redis import RedisBus
from nhigw.gateway.history import BOUNDS_MS, History, bucket_of, quantile, view
from nhigw.gateway.upstream import UpstreamSettings
from tests.helpers import eventually
from tests.test_gateway_service import PASS_BODY, call, gateway_on, upstream


def test_quantiles_of_a_latency_histogram() -> None:
    assert bucket_of(3) == 0 and bucket_of(5) == 0 and bucket_of(6) == 1 and bucket_of(10**6) == len(BOUNDS_MS) - 1
    buckets = [0] * len(BOUNDS_MS)
    assert quantile(0.5, buckets) is None
    buckets[bucket_of(20)] = 100  # all in (10, 25]
    assert quantile(0.5, buckets) == 17.5 and quantile(0.99, buckets) == pytest.approx(24.85)
    buckets[bucket_of(400)] = 100  # half in (250, 500]
    assert quantile(0.5, buckets) == 25.0 and quantile(0.99, buckets) == pytest.approx(495.0)
    buckets[-1] = 1000  # the open bucket answers its lower bound
    assert quantile(0.99, buckets) == 30000.0


def test_a_hospitals_key_sees_its_hospitals_requests_and_an_all_hospitals_key_every_one() -> None:
    h = History(None, None)  # type: ignore[arg-type]  # no Redis: the counts stay in memory (pure)
    for hospital, route, error in [("3501200000", "BasicData/Query", False), ("3501200000", "BasicData/Query", True), ("3501209999", "BasicData/Query", False), (None, "EmergentTel/Write", False)]:
        h.observe(route, error, 12.0, hospital=hospital)
    minutes = {m: dict(c) for m, c in h._local.items()}
    mine, other, every = view(minutes, 1, "3501200000"), view(minutes, 1, "3501209999"), view(minutes, 1)
    assert [(r.route, r.count, r.errors) for r in mine.routes] == [("BasicData/Query", 2, 1)] and sum(p.count for p in mine.points) == 2
    assert [(r.route, r.count) for r in other.routes] == [("BasicData/Query", 1)]
    assert {(r.route, r.count) for r in every.routes} == {("BasicData/Query", 3), ("EmergentTel/Write", 1)} and sum(p.count for p in every.points) == 4
    # Fields written before hospitals were kept ("<route>|n"): no hospital's, every request's.
    old = {0: {"BasicData/Query|n": 2, "BasicData/Query|err": 1, "BasicData/Query|us": 4000, f"BasicData/Query|b{bucket_of(2)}": 2}}
    assert view(old, 1, "3501200000").routes == [] and [(r.route, r.count, r.errors) for r in view(old, 1).routes] == [("BasicData/Query", 2, 1)]


@pytest.mark.redis
async def test_a_replica_started_later_shows_every_replicas_last_requests(redis_server: str, bus_prefix: str) -> None:
    async def cloud(req: web.Request) -> web.Response:
        if req.match_info["path"].endswith("Write"):
            return web.json_response({"statusCode": 5001, "message": "refused"})  # a business refusal: outcome 4
        await asyncio.sleep(0.02)
        return web.json_response({"statusCode": 0})

    key = os.urandom(32)
    settings = dict(prefix=bus_prefix, gateway_key=key, upstream=UpstreamSettings(rate_per_s=1e6, rate_burst=1e6))
    buses = [RedisBus(redis_server) for _ in range(3)]
    async with upstream(cloud) as cloud_url, gateway_on(cloud_url, bus=buses[0], **settings) as (g0, _), gateway_on(cloud_url, bus=buses[1], **settings) as (g1, _), aiohttp.ClientSession() as http:
        for i in range(12):
            url = (g0, g1)[i % 2]
            st, body, _ = await call(http, "POST", url + "/api/v1/BasicData/Query", json=PASS_BODY, headers={"Idempotency-Key": f"q-{i}"})
            assert body["statusCode"] == 0, body
        for i in range(4):
            st, body, _ = await call(http, "POST", (g0, g1)[i % 2] + "/api/v1/EmergentTel/Write", json=PASS_BODY, headers={"Idempotency-Key": f"w-{i}"})
            assert body["statusCode"] == 5001, body
        async with gateway_on(cloud_url, bus=buses[2], **settings) as (g2, _):

            async def counted() -> bool:
                hist = (await call(http, "GET", g2 + "/api/ops/history?hours=1"))[1]
                return sum(p["count"] for p in hist["points"]) == 16

            assert await eventually(counted, timeout_s=10)  # each replica adds its counts every 2 s
            hist = (await call(http, "GET", g2 + "/api/ops/history?hours=1"))[1]
            assert sum(p["errors"] for p in hist["points"]) == 4
            assert all(p["at"] % 60_000 == 0 and p["meanMs"] > 0 and p["p99Ms"] is not None for p in hist["points"])
            rows = {r["route"]: r for r in hist["routes"]}
            assert set(rows) == {"BasicData/Query", "EmergentTel/Write"}
            q, w = rows["BasicData/Query"], rows["EmergentTel/Write"]
            assert (q["count"], q["errors"], q["errorRate"]) == (12, 0, 0.0) and (w["count"], w["errorRate"]) == (4, 1.0)
            assert 10 <= q["p50Ms"] <= q["p99Ms"] <= 1000, q  # the cloud takes 20 ms
            st, bad, _ = await call(http, "GET", g2 + "/api/ops/history?hours=24")
            assert (st, bad["statusCode"]) == (200, 1706)
    for b in buses:
        await b.close()
