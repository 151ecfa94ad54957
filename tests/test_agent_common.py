"""Common endpoints (Name, Version, Record, ServerDateTime, Settings / CORS) and card events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nhigw.agent.app import origin_allowed
from nhigw.contracts.models import CardEvent
from tests.agent_stack import HC, HPC, SAM, agent_stack
from tests.helpers import eventually


async def test_name_version_server_date_time_and_initial_by_com_port() -> None:
    async with agent_stack([SAM, HC, HPC]) as s:
        _, names = await s.a("GET", "/api/common/v1/Name")
        assert names["names"][:4] == s.bank.names and names["names"][4:] == ["COM1", "COM2", "COM3", "COM4"]
        _, v = await s.a("GET", "/api/common/v1/Version")
        assert v["fileVersion"] and v["shortVersion"] and v["longVersion"].startswith("nhigw") and v["location"].endswith("nhigw")
        assert await s.code("POST", "/api/common/v1/Initial", {"name": "COM2"}) == 0
        assert s.agent.device == "001000000103"  # the SAM was found, in whichever reader it sits
        _, names = await s.a("GET", "/api/common/v1/Name")
        assert names["names"][0] == "001000000103"
        _, t = await s.a("GET", "/api/common/v1/ServerDateTime")
        assert t["source"] == "reader" and len(t["serverDateTime"]) == 13 and t["serverDateTime"][:3].isdigit() and int(t["serverDateTime"][:3]) > 110


async def test_record_keeps_function_and_result_newest_first_bounded_and_clears() -> None:
    async with agent_stack([SAM, HC]) as s:
        s.agent.max_records = 5
        await s.a("GET", "/api/common/v1/Status")
        await s.a("POST", "/api/sam/v1/Verification", {})  # 1000: not initialised
        _, rec = await s.a("GET", "/api/common/v1/Record")
        assert [(r["function"], r["result"]) for r in rec["records"]] == [("POST /api/sam/v1/Verification", "1000"), ("GET /api/common/v1/Status", "0000")]
        assert rec["records"][0]["dateTime"].endswith("Z")
        for _ in range(10):
            await s.a("GET", "/api/common/v1/Status")
        _, rec = await s.a("GET", "/api/common/v1/Record")
        assert len(rec["records"]) == 5
        assert await s.code("DELETE", "/api/common/v1/Record") == 0
        _, rec = await s.a("GET", "/api/common/v1/Record")
        assert [r["function"] for r in rec["records"]] == ["DELETE /api/common/v1/Record"]


def test_origin_matching_is_by_host_pattern() -> None:
    hosts = ["*.nhi.gov.tw", "nhi.gov.tw"]
    assert origin_allowed("https://medvpndc.nhi.gov.tw", hosts)
    assert origin_allowed("https://NHI.gov.tw:443", hosts)
    assert not origin_allowed("https://nhi.gov.tw.evil.example", hosts)
    assert not origin_allowed("https://evilnhi.gov.tw", hosts)
    assert not origin_allowed(None, hosts) and not origin_allowed("null", hosts)


async def test_cors_grant_only_for_listed_hosts_and_settings_change_it_at_once(tmp_path: Path) -> None:
    async with agent_stack([SAM], data_dir=tmp_path) as s:
        async def probe(origin: str) -> tuple[int, str | None, str | None]:
            async with s.http.options(s.agent_url + "/api/common/v1/Status", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}) as pre:
                pass
            async with s.http.get(s.agent_url + "/api/common/v1/Status", headers={"Origin": origin}) as r:
                return pre.status, pre.headers.get("Access-Control-Allow-Origin"), r.headers.get("Access-Control-Allow-Origin")

        assert await probe("https://medvpndc.nhi.gov.tw") == (204, "https://medvpndc.nhi.gov.tw", "https://medvpndc.nhi.gov.tw")
        assert await probe("https://his.clinic.example") == (403, None, None)
        status, body = await s.a("PUT", "/api/common/v1/Settings/Cors", {"hosts": ["*.nhi.gov.tw", "his.clinic.example"]})
        assert status == 200 and body["corsHosts"] == ["*.nhi.gov.tw", "his.clinic.example"]
        assert await probe("https://his.clinic.example") == (204, "https://his.clinic.example", "https://his.clinic.example")
        assert await s.code("PUT", "/api/common/v1/Settings/Cors", {"hosts": ["bad host/"]}) == 1706
        assert (await s.a("GET", "/api/common/v1/Settings"))[1]["corsHosts"] == ["*.nhi.gov.tw", "his.clinic.example"]
        # Chrome's Private Network Access preflight: granted, with Max-Age, to a listed origin only.
        pna = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type", "Access-Control-Request-Private-Network": "true"}
        async with s.http.options(s.agent_url + "/api/common/v1/Initial", headers={"Origin": "https://his.clinic.example", **pna}) as pre:
            assert pre.status == 204 and pre.headers.get("Access-Control-Allow-Private-Network") == "true"
            assert pre.headers.get("Access-Control-Max-Age") == "600" and "POST" in pre.headers["Access-Control-Allow-Methods"]
        async with s.http.options(s.agent_url + "/api/common/v1/Initial", headers={"Origin": "https://evil.example", **pna}) as pre:
            assert pre.status == 403 and not any(h.lower().startswith("access-control-") for h in pre.headers)
        async with s.http.options(s.agent_url + "/api/common/v1/Status", headers={"Origin": "https://his.clinic.example", "Access-Control-Request-Method": "GET"}) as pre:
            assert "Access-Control-Allow-Private-Network" not in pre.headers  # only when asked
    # Persisted: a new agent on the same data directory grants it too.
    async with agent_stack([SAM], data_dir=tmp_path) as s:
        async with s.http.get(s.agent_url + "/api/common/v1/Status", headers={"Origin": "https://his.clinic.example"}) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == "https://his.clinic.example"


async def test_card_events_insert_remove_and_state_changes() -> None:
    async with agent_stack([SAM, HC]) as s:
        q = s.agent.subscribe()
        pings: list[int] = []
        s.agent.listeners.append(lambda: pings.append(1))
        await s.ready()
        hc_reader = s.bank.names[1]
        card = s.bank.cards[hc_reader]
        s.remove(1)

        async def next_event(pred) -> CardEvent:
            while True:
                ev = await asyncio.wait_for(q.get(), 2.0)
                if pred(ev):
                    return ev

        ev = await next_event(lambda e: e.type == "removed")
        assert (ev.kind, ev.reader, ev.states.hc) == ("hc", hc_reader, 0)
        # A call on the removed card gets the seed's code.
        assert await s.code("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"}) == 1501
        s.bank.insert(hc_reader, card)
        ev = await next_event(lambda e: e.type == "inserted")
        assert (ev.kind, ev.reader) == ("hc", hc_reader)
        ev = await next_event(lambda e: e.type == "state" and e.states.hc == 2)
        assert ev.states.sam == 2
        assert pings  # the no-argument listeners still run (console, bus link)
        s.agent.unsubscribe(q)
        assert s.agent.event_listeners == []


async def test_organ_donation_mark_written_to_a_physical_hc_only() -> None:
    async with agent_stack([SAM, HC, HPC]) as s:
        await s.ready()
        assert (await s.a("GET", "/api/hc/v1/OrganDonate"))[1] == {"organDonate": "0", "statusCode": 0}
        assert await s.code("PUT", "/api/hc/v1/OrganDonate", {"organDonate": "1"}) == 1402  # a medical professional writes it
        assert await s.code("POST", "/api/hpc/v1/Verification/Hpc", {"pin": "12345678"}) == 0
        assert await s.code("PUT", "/api/hc/v1/OrganDonate", {"organDonate": "1"}) == 0
        assert await s.code("PUT", "/api/hc/v1/OrganDonate", {"organDonate": "11"}) == 1706
        assert (await s.a("GET", "/api/hc/v1/OrganDonate"))[1]["organDonate"] == "1"
        assert s.bank.cards[s.bank.names[1]].organ_donate == b"1"  # type: ignore[attr-defined]  # on the card itself
        # A virtual HC: physical-only (1515).
        assert await s.code("POST", "/api/hc/v1/Verification/VirtualHc", {"token": await s.qr("000073898382")}) == 0
        assert await s.code("PUT", "/api/hc/v1/OrganDonate", {"organDonate": "2"}) == 1515
        assert await s.code("GET", "/api/hc/v1/OrganDonate") == 1515


async def test_a_failed_physical_sam_verification_is_never_retried_by_the_agent() -> None:
    async with agent_stack([SAM, HC]) as s:
        calls: list[str] = []
        real_verify = s.agent.dc.verify

        async def counting_verify(req):
            calls.append(req.samId)
            return await real_verify(req)

        s.agent.dc.verify = counting_verify  # type: ignore[method-assign]
        s.store.institutions["3501200000"].contract = "suspended"
        assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
        assert calls == []  # a physical SAM is not verified at Initial
        assert await s.code("POST", "/api/sam/v1/Verification") == 1303
        s.remove(1)  # a card event and rescans happen; still no retry
        assert await eventually(lambda: "hc" not in s.agent.slots), "the removal is not seen"
        await s.agent.rescan()
        assert calls == ["001000000103"] and s.agent.sam_state == 1
        s.store.institutions["3501200000"].contract = "active"
        assert await s.code("POST", "/api/sam/v1/Verification") == 0
        assert len(calls) == 2
