"""Fault injection, idempotency keys and the write counters of the simulator (``/test/v1``)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.helpers import ok
from tests.simkit import running_sim


async def test_admin_api_is_off_unless_enabled() -> None:
    async with running_sim(admin=False) as s:
        for method, path in (("POST", "/test/v1/Faults"), ("GET", "/test/v1/Faults"), ("DELETE", "/test/v1/Faults"), ("POST", "/test/v1/Clock")):
            async with s.http.request(method, s.url + path, json={"status": 503}) as r:
                assert r.status == 403 and (await r.json())["statusCode"] == 9411
        assert ok(await s.get("/test/v1/Stats"))  # counters stay readable


async def test_the_next_n_calls_fail_then_the_rule_is_spent() -> None:
    async with running_sim() as s:
        status, body = await s.post("/test/v1/Faults", {"route": "SequelNumber/Next", "status": 503, "times": 2})
        assert status == 200 and body["faults"][0]["times"] == 2
        assert ok(await s.call("BasicData/Query"))  # other routes are untouched
        for _ in range(2):
            status, body = await s.call("SequelNumber/Next")
            assert status == 503 and body["statusCode"] == 9402 and "injected" in body["detail"]
        status, body = await s.call("SequelNumber/Next")
        assert status == 200 and body["sequenceNumber"] == "W001"  # the failed calls took no number
        assert (await s.get("/test/v1/Faults"))[1]["faults"] == []
        assert (await s.post("/test/v1/Faults", {"route": "No/Such", "status": 503}))[1]["statusCode"] == 1706
        assert (await s.get("/test/v1/Stats"))[1]["calls"]["SequelNumber/Next"] == 1  # faulted calls never reached the route


async def test_error_rate_with_a_seed_is_repeatable_and_delete_clears() -> None:
    async with running_sim() as s:
        outcomes = []
        for _ in range(2):
            await s.post("/test/v1/Faults", {"status": 500, "statusCode": 9499, "error_rate": 0.5, "seed": 7})
            outcomes.append([(await s.call("BasicData/Query"))[0] for _ in range(12)])
            assert (await s.http.delete(s.url + "/test/v1/Faults")).status == 200
        assert outcomes[0] == outcomes[1] and {200, 500} == set(outcomes[0])
        assert ok(await s.call("BasicData/Query"))


async def test_latency_is_seen_as_a_client_timeout() -> None:
    async with running_sim() as s:
        await s.post("/test/v1/Faults", {"route": "BasicData/Query", "latency_ms": 1500, "times": 1})
        with pytest.raises(TimeoutError):
            async with s.http.post(s.url + "/api/v1/BasicData/Query", json=s.signer.for_route("BasicData/Query"), timeout=aiohttp.ClientTimeout(total=0.2)):
                pass
        await s.post("/test/v1/Faults", {"route": "BasicData/Query", "latency_ms": 50, "times": 1})
        assert ok(await s.call("BasicData/Query"))  # latency alone: the call then succeeds


async def test_connection_reset_is_seen_by_the_client() -> None:
    async with running_sim() as s:
        await s.post("/test/v1/Faults", {"route": "SequelNumber/Next", "reset_connection": True, "times": 1})
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.call("SequelNumber/Next")
        assert "SequelNumber/Next" not in (await s.get("/test/v1/Stats"))[1]["writes"]
        assert (await s.call("SequelNumber/Next"))[1]["sequenceNumber"] == "W001"


async def test_a_fault_after_the_call_loses_the_answer_of_a_done_write() -> None:
    async with running_sim(dedupe_writes=True) as s:
        await s.post("/test/v1/Faults", {"route": "SequelNumber/Next", "reset_connection": True, "phase": "after", "times": 1})
        body = s.signer.for_route("SequelNumber/Next")
        h = {"Idempotency-Key": "lost-1"}
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.post("/api/v1/SequelNumber/Next", body, headers=h)
        _, stats = await s.get("/test/v1/Stats")
        assert stats["writes"]["SequelNumber/Next"] == 1 and stats["writesByKey"] == {"lost-1": 1}  # it was written
        status, again = await s.post("/api/v1/SequelNumber/Next", body, headers=h)  # reconcile with the key
        assert status == 200 and again["sequenceNumber"] == "W001"
        assert (await s.get("/test/v1/Stats"))[1]["writesByKey"] == {"lost-1": 1}
        await s.post("/test/v1/Faults", {"route": "SequelNumber/Next", "status": 504, "phase": "after", "times": 1})
        status, err = await s.call("SequelNumber/Next")
        assert status == 504 and err["statusCode"] == 9402
        assert (await s.call("SequelNumber/Next"))[1]["sequenceNumber"] == "W003"  # W002 was taken by the lost call


async def test_idempotency_key_same_body_replays_without_a_second_write() -> None:
    async with running_sim(dedupe_writes=True) as s:
        body = s.signer.for_route("SequelNumber/Next", treatmentItem="01")
        h = {"Idempotency-Key": "k-1"}
        async with s.http.post(s.url + "/api/v1/SequelNumber/Next", json=body, headers=h) as r:
            first = (r.status, await r.json())
            assert "Idempotent-Replayed" not in r.headers
        async with s.http.post(s.url + "/api/v1/SequelNumber/Next", json=body, headers=h) as r:
            second = (r.status, await r.json())
            assert r.headers["Idempotent-Replayed"] == "true"
        assert first == second and first[1]["sequenceNumber"] == "W001"
        _, stats = await s.get("/test/v1/Stats")
        assert stats["writes"]["SequelNumber/Next"] == 1 and stats["writesByKey"] == {"k-1": 1} and stats["replays"] == {"k-1": 1}
        # the same key with another body is refused, and writes nothing
        status, err = await s.call("SequelNumber/Next", headers=h, treatmentItem="02")
        assert status == 200 and err["statusCode"] == 1706
        # a failed write's answer is kept too (the same signature again is the same answer, not 3245)
        bad = s.signer.for_route("SequelNumber/Rollback", treatmentDateTime="1120101000000")
        h2 = {"Idempotency-Key": "k-2"}
        assert (await s.post("/api/v1/SequelNumber/Rollback", bad, headers=h2))[1]["statusCode"] == 3208
        assert (await s.post("/api/v1/SequelNumber/Rollback", bad, headers=h2))[1]["statusCode"] == 3208
        _, stats = await s.get("/test/v1/Stats")
        assert stats["writesByKey"] == {"k-1": 1, "k-2": 1} and stats["writes"]["SequelNumber/Next"] == 1
        # without a key, a repeated body is a replayed signature
        assert (await s.post("/api/v1/SequelNumber/Rollback", bad))[1]["statusCode"] == 3245


async def test_concurrent_calls_with_one_key_write_once() -> None:
    async with running_sim(dedupe_writes=True) as s:
        body = s.signer.for_route("SequelNumber/Next")
        results = await asyncio.gather(*(s.post("/api/v1/SequelNumber/Next", body, headers={"Idempotency-Key": "k-c"}) for _ in range(10)))
        assert {r[1]["sequenceNumber"] for r in results} == {"W001"} and all(ok(r) for r in results)
        _, stats = await s.get("/test/v1/Stats")
        assert stats["writesByKey"] == {"k-c": 1} and stats["replays"] == {"k-c": 9}


async def test_reads_ignore_the_idempotency_key() -> None:
    async with running_sim() as s:
        h = {"Idempotency-Key": "r-1"}
        assert ok(await s.call("BasicData/Query", headers=h))
        assert ok(await s.call("BasicData/Query", headers=h))
        assert (await s.get("/test/v1/Stats"))[1]["writesByKey"] == {}


async def test_by_default_a_write_sent_again_with_a_fresh_signature_is_executed_again_and_counted_by_content() -> None:
    """As the real NHI cloud: the Idempotency-Key is ignored; a second valid signature is a second execution."""
    async with running_sim() as s:
        h = {"Idempotency-Key": "same-key"}
        first = await s.post("/api/v1/SequelNumber/Next", s.signer.for_route("SequelNumber/Next"), headers=h)
        second = await s.post("/api/v1/SequelNumber/Next", s.signer.for_route("SequelNumber/Next"), headers=h)
        assert (first[1]["sequenceNumber"], second[1]["sequenceNumber"]) == ("W001", "W002")
        other = await s.post("/api/v1/SequelNumber/Next", s.signer.for_route("SequelNumber/Next", treatmentItem="02"), headers={"Idempotency-Key": "k-3"})
        assert other[0] == 200
        _, stats = await s.get("/test/v1/Stats")
        assert stats["writesByKey"] == {"same-key": 2, "k-3": 1} and stats["replays"] == {}
        assert sorted(stats["writesByContent"].values()) == [1, 2] and len(stats["writesTwice"]) == 1
        assert stats["writesByContent"][stats["writesTwice"][0]] == 2
        # the same signed body again is a replayed signature (3245), not an execution
        body = s.signer.for_route("SequelNumber/Next", treatmentItem="03")
        assert (await s.post("/api/v1/SequelNumber/Next", body, headers=h))[0] == 200
        assert (await s.post("/api/v1/SequelNumber/Next", body, headers=h))[1]["statusCode"] == 3245
        assert len((await s.get("/test/v1/Stats"))[1]["writesTwice"]) == 1
