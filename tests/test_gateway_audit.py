"""The audit trail is tamper-evident: an HMAC chain under a key Redis does not hold, and signed
checkpoints outside Redis. ``verify`` passes on an honest log and catches an edited, a removed,
a reordered and a truncated record, an edit re-chained without the key, a tail dropped with the
head moved back, and a deleted log — in memory, in the file store, in Redis with two replicas
appending at once, and through ``nhigw audit verify``. Reads are paged through an index: a
query's cost is its answer, and an unreadable record is counted, never a 500 or a crash."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from nhigw.bus import MemoryBus
from nhigw.bus.redis import RedisBus
from nhigw.contracts.buskeys import BusKeys
from nhigw.gateway.app import create_app
from nhigw.gateway.audit import AuditLog, AuditRecord, FileAudit, MemoryAudit, RedisAudit, audit_key, read_checkpoints, to_ms, verify_records
from nhigw.gateway.service import Gateway, GatewaySettings
from tests.helpers import eventually, serving

GW_KEY = os.urandom(32)
B64 = base64.b64encode(GW_KEY).decode()  # the gateway key as ``--bus-key`` takes it
KEY = audit_key(GW_KEY)


async def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, argv, **kw)  # type: ignore[arg-type]


def rec(n: int, client: str = "his-a", hospital: str = "3501200000", recorded: str | None = None, rid: str = "req") -> AuditRecord:
    extra = {"recorded": recorded} if recorded else {}
    return AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client=client, hospitalId=hospital,
                       workstation="ws-01", patient="Z29*****29", instance="gw-1", site="t", requestId=f"{rid}-{n}", idempotencyKey=f"k-{n}", **extra)


def rechain_without_key(lines: list[bytes]) -> list[str]:
    """What someone with Redis write access but no audit key can do: recompute every hash (SHA-256, the old chain)."""
    out, prev = [], "0" * 64
    for line in lines:
        r = json.loads(line)
        r["prevHash"] = prev
        body = {k: v for k, v in r.items() if k != "hash" and (k != "deviceSession" or v is not None)}
        r["hash"] = prev = hashlib.sha256((prev + json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))).encode()).hexdigest()
        out.append(json.dumps(r))
    return out


async def test_file_chain_verifies_and_catches_edit_removal_reorder_truncation_and_rechaining(tmp_path: Path) -> None:
    log = FileAudit(tmp_path / "audit.jsonl")
    assert (tmp_path / "audit.key").stat().st_mode & 0o777 == 0o600  # the key beside the file, readable by the gateway's user only
    for n in range(5):
        await log.append(rec(n))
    res = await log.verify()
    assert res.ok and res.count == 5 and res.head.startswith("5 ")
    lines = await log.lines()
    head = await log.head()

    edited = [json.loads(x) for x in lines]
    edited[2]["client"] = "someone-else"
    r = verify_records([json.dumps(x) for x in edited], head, log.key)
    assert not r.ok and any("seq 3" in p and "edited" in p for p in r.problems)

    r = verify_records(lines[:2] + lines[3:], head, log.key)
    assert not r.ok and any("removed or reordered" in p for p in r.problems)

    r = verify_records([lines[0], lines[2], lines[1], *lines[3:]], head, log.key)
    assert not r.ok and any("prevHash" in p for p in r.problems)

    r = verify_records(lines[:4], head, log.key)
    assert not r.ok and any("removed at the end" in p for p in r.problems)

    # Edited and re-chained, head included: every hash is wrong under the audit key.
    forged = rechain_without_key([json.dumps(x).encode() for x in edited])
    r = verify_records(forged, f"5 {json.loads(forged[-1])['hash']}", log.key)
    assert not r.ok and sum("hash mismatch" in p for p in r.problems) == 5


async def test_file_checkpoints_catch_a_dropped_tail_and_a_deleted_log_through_the_cli(tmp_path: Path) -> None:
    """``nhigw up``'s audit file: the gateway's checkpoints (file and log line) anchor the chain."""
    data = tmp_path / "data"
    path = data / "gateway" / "audit.jsonl"
    log = FileAudit(path)
    log.keep_checkpoints(data / "gateway" / "audit-checkpoints.jsonl", "gw-1", every_s=3600)
    for n in range(6):
        await log.append(rec(n))
    await log.close()  # a clean stop checkpoints the head
    (cp,), _ = read_checkpoints([data / "gateway" / "audit-checkpoints.jsonl"])
    assert cp.seq == 6 and cp.valid(log.key) and cp.log == "audit.jsonl"
    cli = [sys.executable, "-m", "nhigw", "audit", "--data-dir", str(data)]
    env = {k: v for k, v in os.environ.items() if k not in ("NHIGW_REDIS_URL", "NHIGW_BUS_KEY")}

    ok = await run([*cli, "verify"], capture_output=True, text=True, check=False, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["checkpoints"] == 1

    # The last two records dropped and the head moved back: consistent on its own, not with the checkpoint.
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]))
    path.with_suffix(".head").write_text(f"4 {json.loads(lines[3])['hash']}")
    bad = await run([*cli, "verify"], capture_output=True, text=True, check=False, env=env)
    assert bad.returncode == 1 and "seq 6, the chain ends at 4" in bad.stdout

    # The whole log and its head deleted.
    path.unlink()
    path.with_suffix(".head").unlink()
    bad = await run([*cli, "verify"], capture_output=True, text=True, check=False, env=env)
    assert bad.returncode == 1 and "the log deleted" in bad.stdout


@pytest.mark.redis
async def test_two_replicas_append_one_chain_in_redis_and_the_cli_catches_tampering(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    k = BusKeys(bus_prefix)
    c1, c2 = aioredis.Redis.from_url(redis_server), aioredis.Redis.from_url(redis_server)
    a1, a2 = RedisAudit(c1, k, KEY), RedisAudit(c2, k, KEY)
    await asyncio.gather(*[(a1 if n % 2 else a2).append(rec(n, f"his-{n % 2}")) for n in range(60)])
    res = await a1.verify()
    assert res.ok and res.count == 60 and [r.seq for r in await a1.records()] == list(range(1, 61))

    cli = [sys.executable, "-m", "nhigw", "audit", "--redis", redis_server, "--bus-key", B64, "--bus-prefix", bus_prefix, "--data-dir", str(tmp_path)]
    ok = await run([*cli, "verify"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    exported = (await run([*cli, "export", "--since", "2000-01-01"], capture_output=True, text=True, check=True)).stdout.splitlines()
    assert len(exported) == 60 and sorted(json.loads(x)["seq"] for x in exported) == list(range(1, 61))
    assert (await run([*cli, "export", "--until", "2000-01-01"], capture_output=True, text=True, check=True)).stdout == ""
    # Without the gateway key the chain cannot be checked at all.
    nokey = await run([c for c in cli if c not in ("--bus-key", B64)] + ["verify"], capture_output=True, text=True, check=False,
                      env={k: v for k, v in os.environ.items() if k != "NHIGW_BUS_KEY"})
    assert nokey.returncode != 0 and "gateway key" in nokey.stderr

    # An edit in place (LSET): caught.
    line = json.loads(await c1.lindex(k.audit_log, 10))
    line["outcome"] = 0 if line["outcome"] else 8
    await c1.lset(k.audit_log, 10, json.dumps(line))
    bad = await run([*cli, "verify"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "edited" in bad.stdout
    # The same edit, the whole chain and the head re-chained (as the old SHA-256 chain allowed): caught.
    forged = rechain_without_key(await c1.lrange(k.audit_log, 0, -1))
    await c1.delete(k.audit_log)
    await c1.rpush(k.audit_log, *forged)
    await c1.set(k.audit_head, f"60 {json.loads(forged[-1])['hash']}")
    bad = await run([*cli, "verify"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "hash mismatch" in bad.stdout
    # A removal (LREM of another record), on a fresh copy of the chain: caught.
    k2 = BusKeys(bus_prefix + "b")
    b = RedisAudit(c1, k2, KEY)
    for n in range(5):
        await b.append(rec(n))
    await c1.lrem(k2.audit_log, 1, await c1.lindex(k2.audit_log, 2))
    bad = await run([*(bus_prefix + "b" if c == bus_prefix else c for c in cli), "verify"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "removed" in bad.stdout
    await c1.aclose()
    await c2.aclose()


@pytest.mark.redis
async def test_redis_checkpoints_catch_a_dropped_tail_a_head_moved_back_and_a_deleted_log(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    """Someone with Redis write access drops records (LTRIM + SET head) or deletes the log: the
    replicas' checkpoint files (outside Redis) make ``nhigw audit verify`` fail."""
    c = aioredis.Redis.from_url(redis_server)
    cps = tmp_path / "gateway" / "audit-checkpoints.jsonl"

    def cli(prefix: str, data_dir: Path = tmp_path) -> list[str]:
        return [sys.executable, "-m", "nhigw", "audit", "--redis", redis_server, "--bus-key", B64, "--bus-prefix", prefix, "--data-dir", str(data_dir), "verify"]

    async def checkpointed(log_name: str) -> int:
        return max((cp.seq for cp in read_checkpoints([cps])[0] if cp.log == log_name), default=0)

    # Periodic checkpoints.
    k = BusKeys(bus_prefix)
    a = RedisAudit(c, k, KEY)
    a.keep_checkpoints(cps, "gw-1", every_s=0.05)
    await a.start()
    for n in range(8):
        await a.append(rec(n))

    async def checkpoint_of_8() -> bool:  # the periodic checkpoint of seq 8
        return await checkpointed(k.audit_log) == 8

    assert await eventually(checkpoint_of_8, 10)
    await a.close()
    assert (await run(cli(bus_prefix), capture_output=True, text=True, check=False)).returncode == 0
    # The last three records dropped and the head moved back: the chain is consistent, the checkpoint says otherwise.
    await c.ltrim(k.audit_log, 0, 4)
    await c.set(k.audit_head, f"5 {json.loads(await c.lindex(k.audit_log, 4))['hash']}")
    bad = await run(cli(bus_prefix), capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "seq 8, the chain ends at 5" in bad.stdout
    # The whole log, its head and its indexes deleted.
    await c.delete(k.audit_log, k.audit_head, k.audit_index(), k.audit_index("3501200000"))
    bad = await run(cli(bus_prefix), capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "the log deleted" in bad.stdout
    # Without the replica's checkpoint file the same check cannot see it, and says so.
    blind = await run(cli(bus_prefix, tmp_path / "elsewhere"), capture_output=True, text=True, check=False)
    assert blind.returncode == 0 and "no checkpoints" in blind.stdout

    # Between checkpoints: a running replica that finds the head behind the one it wrote checkpoints at once.
    k2 = BusKeys(bus_prefix + "x")
    b = RedisAudit(c, k2, KEY)
    b.keep_checkpoints(cps, "gw-1", every_s=3600)
    await b.start()
    for n in range(4):
        await b.append(rec(n))
    assert await checkpointed(k2.audit_log) == 0  # no periodic checkpoint yet
    await c.ltrim(k2.audit_log, 0, 1)
    await c.set(k2.audit_head, f"2 {json.loads(await c.lindex(k2.audit_log, 1))['hash']}")
    await b.append(rec(4))  # chained onto seq 2 (the store's head) — and seq 4 it had written is checkpointed
    assert await checkpointed(k2.audit_log) == 4
    res = json.loads((await run(cli(bus_prefix + "x"), capture_output=True, text=True, check=False)).stdout)
    assert not res["ok"] and any("seq 4, the chain ends at 3" in p for p in res["problems"]), res
    await b.close()
    await c.aclose()


@contextlib.asynccontextmanager
async def gateway(bus, **settings: object) -> AsyncIterator[tuple[str, Gateway]]:
    gw = Gateway(bus, GatewaySettings(cloud_url="http://cloud.invalid", gateway_key=GW_KEY, **settings))  # type: ignore[arg-type]
    await gw.start(workers=False)
    try:
        async with serving(create_app(gw)) as url:
            yield url, gw
    finally:
        await gw.close()


async def _unreadable_records_are_counted(url: str, audit: AuditLog, corrupt, unreadable: int) -> None:
    for n in range(4):
        await audit.append(rec(n))
    await corrupt()
    async with aiohttp.ClientSession() as http, http.get(url + "/api/audit") as r:
        body = await r.json()
    assert r.status == 200 and body["statusCode"] == 0, body
    assert body["unreadable"] == unreadable and sorted(x["requestId"] for x in body["records"]) == ["req-0", "req-3"]


async def test_an_unreadable_record_in_the_file_is_counted_by_the_api_and_the_export(tmp_path: Path) -> None:
    path = tmp_path / "gateway" / "audit.jsonl"

    async def corrupt() -> None:
        lines = path.read_bytes().splitlines(keepends=True)
        # Line 2 edited (its MAC fails), line 3 not JSON at all; the file is reopened as after a restart
        # (which indexes what it can read: line 3 is left out there, and ``verify`` names it).
        lines[1] = lines[1].replace(b'"outcome":0', b'"outcome":8')
        lines[2] = b"[" * 5000 + b"\n"
        path.write_bytes(b"".join(lines))
        await gw.audit.close()
        gw.backend.audit = FileAudit(path, gw.audit.key)

    async with gateway(MemoryBus(), audit_path=path) as (url, gw):
        await _unreadable_records_are_counted(url, gw.audit, corrupt, 1)
        assert any("line 3: not an audit record" in p for p in (await gw.audit.verify()).problems)
    out = await run([sys.executable, "-m", "nhigw", "audit", "--data-dir", str(tmp_path), "export"], capture_output=True, text=True, check=False,
                    env={k: v for k, v in os.environ.items() if k not in ("NHIGW_REDIS_URL", "NHIGW_BUS_KEY")} | {"NHIGW_BUS_KEY": B64})
    assert out.returncode == 0 and [json.loads(x)["requestId"] for x in out.stdout.splitlines()] == ["req-0", "req-3"]
    assert "1 audit record(s) could not be read" in out.stderr


@pytest.mark.redis
async def test_an_unreadable_record_in_redis_is_counted_by_the_api_and_the_export(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    bus = RedisBus(redis_server)
    k = BusKeys(bus_prefix)
    c = aioredis.Redis.from_url(redis_server)

    async def corrupt() -> None:
        await c.lset(k.audit_log, 1, b"\xff\xfe not json")
        line = json.loads(await c.lindex(k.audit_log, 2))
        line["client"] = "someone-else"
        await c.lset(k.audit_log, 2, json.dumps(line))

    try:
        async with gateway(bus, prefix=bus_prefix) as (url, gw):
            await _unreadable_records_are_counted(url, gw.audit, corrupt, 2)
        out = await run([sys.executable, "-m", "nhigw", "audit", "--redis", redis_server, "--bus-key", B64, "--bus-prefix", bus_prefix, "--data-dir", str(tmp_path), "export"],
                        capture_output=True, text=True, check=False)
        assert out.returncode == 0 and sorted(json.loads(x)["requestId"] for x in out.stdout.splitlines()) == ["req-0", "req-3"]
        assert "2 audit record(s) could not be read" in out.stderr
    finally:
        await c.aclose()
        await bus.close()


def test_pages_cover_a_range_once_in_either_order_with_ties() -> None:
    """The cursor (score and how many of that score were returned) survives many records of one millisecond."""

    async def go() -> None:
        a = MemoryAudit()
        times = ["2026-12-01T00:00:00.000+00:00"] * 7 + ["2026-12-01T00:00:00.001+00:00"] * 3 + ["2026-12-01T00:00:01.000+00:00"] * 6
        for n, t in enumerate(times):
            await a.append(rec(n, hospital="A" if n % 2 else "B", recorded=t))
        await a.append(rec(99, hospital="A", recorded="2026-11-30T00:00:00.000+00:00"))
        for newest_first in (False, True):
            for limit in (1, 2, 3, 5, 100):
                got = [r.requestId async for p in a.pages(hospital="A", since=to_ms("2026-12-01"), limit=limit, newest_first=newest_first) for r in p.records]
                want = [f"req-{n}" for n in range(len(times)) if n % 2]
                assert got == (want[::-1] if newest_first else want), (limit, newest_first)
        until = [r.requestId async for p in a.pages(until=to_ms("2026-12-01T00:00:00.001+00:00"), limit=2) for r in p.records]
        assert until == ["req-99", *(f"req-{n}" for n in range(7))]

    asyncio.run(go())


async def _twenty_thousand_others_and_five_asked(audit: AuditLog) -> None:
    for n in range(5):
        await audit.append(rec(n, hospital="3501200000", recorded=f"2026-12-01T08:0{n}:00.000+00:00", rid="a"))
        await audit.append(rec(n, hospital="3501200000", recorded=f"2026-11-0{n + 1}T08:00:00.000+00:00", rid="old"))  # before the range
    for start in range(0, 20_000, 1000):  # concurrent appends: on Redis they ride the same compare-and-append in turn
        await asyncio.gather(*[audit.append(rec(n, hospital="9999999999", recorded="2026-12-01T09:00:00.000+00:00")) for n in range(start, start + 1000)])


async def _reads_of_a_query_are_its_answer(audit: AuditLog) -> None:
    since = to_ms("2026-12-01")
    before = audit.reads
    page = await audit.query(hospital="3501200000", since=since)
    assert [r.requestId for r in page.records] == [f"a-{n}" for n in range(5)] and page.unreadable == 0 and page.next is None
    assert audit.reads - before == 5  # the five records asked for, none of the 20,000 others
    before = audit.reads
    page = await audit.query(hospital="9999999999", since=since, limit=50)
    assert len(page.records) == 50 and page.next is not None and audit.reads - before == 50


async def _commandstats(c: aioredis.Redis) -> dict[str, int]:
    info = await c.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


@pytest.mark.redis
async def test_a_query_in_redis_reads_its_answer_not_the_log(redis_server: str, bus_prefix: str) -> None:
    """20,000 records of another hospital: a query for one hospital and a time range reads the five
    records it answers, counted by the audit and by Redis itself (no LRANGE; one LINDEX each)."""
    c = aioredis.Redis.from_url(redis_server)
    a = RedisAudit(c, BusKeys(bus_prefix), KEY)
    try:
        await _twenty_thousand_others_and_five_asked(a)
        assert await c.llen(BusKeys(bus_prefix).audit_log) == 20_010
        before = await _commandstats(c)
        await _reads_of_a_query_are_its_answer(a)
        after = await _commandstats(c)
        assert after.get("lrange", 0) == before.get("lrange", 0) and after["lindex"] - before.get("lindex", 0) == 55
    finally:
        await c.aclose()


async def test_a_query_in_the_file_reads_its_answer_not_the_log(tmp_path: Path) -> None:
    """The same for ``nhigw up``'s file: its index is built once, when the file is opened; then a query
    reads the records it answers. (The chain is made in memory and written at once: 20,000 fsyncs are slow.)"""
    m = MemoryAudit(KEY)
    await _twenty_thousand_others_and_five_asked(m)
    (tmp_path / "audit.jsonl").write_bytes(b"".join(line + b"\n" for line in await m.lines()))
    (tmp_path / "audit.head").write_text(str(await m.head()))
    a = FileAudit(tmp_path / "audit.jsonl", KEY)
    await _reads_of_a_query_are_its_answer(a)
    assert (await a.verify()).ok
    await a.append(rec(5, hospital="3501200000", recorded="2026-12-01T08:05:00.000+00:00", rid="a"))  # indexed as it is written
    assert [r.requestId for r in (await a.query(hospital="3501200000", since=to_ms("2026-12-01T08:04"))).records] == ["a-4", "a-5"]


async def test_the_api_pages_with_a_cursor_and_answers_bad_parameters_with_a_code(tmp_path: Path) -> None:
    async with gateway(MemoryBus(), audit_path=tmp_path / "audit.jsonl") as (url, gw), aiohttp.ClientSession() as http:
        for n in range(5):
            await gw.audit.append(rec(n, recorded=f"2026-12-01T08:0{n}:00.000+00:00"))

        async def get(qs: str) -> tuple[int, dict]:
            async with http.get(f"{url}/api/audit?{qs}") as r:
                return r.status, await r.json()

        seen, cursor = [], ""
        while True:
            status, body = await get(f"since=2026-12-01&limit=2{cursor}")
            assert status == 200 and len(body["records"]) <= 2
            seen += [x["requestId"] for x in body["records"]]
            if body["next"] is None:
                break
            cursor = f"&cursor={body['next']}"
        assert seen == [f"req-{n}" for n in range(5)]
        status, body = await get("order=desc&limit=2&until=2026-12-01T08:04:00Z")
        assert [x["requestId"] for x in body["records"]] == ["req-3", "req-2"]
        for bad in ("since=yesterday", "until=" + "9" * 60, "limit=0", "limit=5000", "order=sideways", "cursor=abc", "cursor=1:99999999"):
            status, body = await get(bad)
            assert status < 500 and body["statusCode"] == 1706 and body["message"] and body["messageEn"], (bad, body)


@pytest.mark.redis
async def test_an_index_entry_moved_to_another_hospital_shows_nothing_there(redis_server: str, bus_prefix: str) -> None:
    """The index is in Redis too: an entry of hospital B's record put into A's set is not shown to A."""
    c = aioredis.Redis.from_url(redis_server)
    k = BusKeys(bus_prefix)
    a = RedisAudit(c, k, KEY)
    try:
        await a.append(rec(0, hospital="A"))
        await a.append(rec(1, hospital="B"))
        (member, score), = await c.zrange(k.audit_index("B"), 0, -1, withscores=True)
        await c.zadd(k.audit_index("A"), {member: score})
        page = await a.query(hospital="A")
        assert [r.requestId for r in page.records] == ["req-0"] and page.unreadable == 1
    finally:
        await c.aclose()


async def test_a_gateway_log_is_a_checkpoint_file(tmp_path: Path) -> None:
    """A process that keeps no checkpoint file (a container's data dir is gone with it) still logs each
    checkpoint as a JSON line; ``nhigw audit verify --checkpoints <that log>`` catches a dropped tail."""
    data = tmp_path / "data"
    script = f"""
import asyncio
from pathlib import Path
from nhigw.common.logging import configure
from nhigw.gateway.audit import AuditRecord, FileAudit
configure("INFO")  # as every nhigw process: JSON lines on stderr

async def main():
    log = FileAudit(Path({str(data / "gateway" / "audit.jsonl")!r}))
    log.keep_checkpoints(None, "gw-1")
    for n in range(3):
        await log.append(AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a",
                                     instance="gw-1", site="t", requestId=f"req-{{n}}", idempotencyKey=f"k-{{n}}"))
    await log.close()

asyncio.run(main())
"""
    proc = await run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    (tmp_path / "gateway.log").write_text(proc.stderr)
    assert '"event": "audit_checkpoint"' in proc.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("NHIGW_REDIS_URL", "NHIGW_BUS_KEY")}
    cli = [sys.executable, "-m", "nhigw", "audit", "--data-dir", str(data), "verify", "--checkpoints", str(tmp_path / "gateway.log")]
    ok = await run(cli, capture_output=True, text=True, check=False, env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["checkpoints"] == 1, ok.stdout + ok.stderr
    path = data / "gateway" / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0])
    path.with_suffix(".head").write_text(f"1 {json.loads(lines[0])['hash']}")
    bad = await run(cli, capture_output=True, text=True, check=False, env=env)
    assert bad.returncode == 1 and "seq 3, the chain ends at 1" in bad.stdout
