"""The audit trail is hash-chained: verify passes on an honest log and catches an edited, a
removed, a reordered and a truncated record — in memory, in the file store, in Redis with
two replicas appending at once, and through ``nhigw audit verify``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from nhigw.contracts.buskeys import BusKeys
from nhigw.gateway.audit import AuditRecord, FileAudit, RedisAudit, verify_records


async def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, argv, **kw)  # type: ignore[arg-type]


def rec(n: int, client: str = "his-a") -> AuditRecord:
    return AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client=client, hospitalId="3501200000",
                       workstation="ws-01", patient="Z29*****29", instance="gw-1", site="t", requestId=f"req-{n}", idempotencyKey=f"k-{n}")


async def test_file_chain_verifies_and_catches_edit_removal_reorder_and_truncation(tmp_path: Path) -> None:
    log = FileAudit(tmp_path / "audit.jsonl")
    for n in range(5):
        await log.append(rec(n))
    res = await log.verify()
    assert res.ok and res.count == 5 and res.head.startswith("5 ")
    lines = await log.lines()
    head = await log.head()

    edited = [json.loads(x) for x in lines]
    edited[2]["client"] = "someone-else"
    r = verify_records([json.dumps(x) for x in edited], head)
    assert not r.ok and any("seq 3" in p and "edited" in p for p in r.problems)

    r = verify_records(lines[:2] + lines[3:], head)
    assert not r.ok and any("removed or reordered" in p for p in r.problems)

    r = verify_records([lines[0], lines[2], lines[1], *lines[3:]], head)
    assert not r.ok and any("prevHash" in p for p in r.problems)

    r = verify_records(lines[:4], head)
    assert not r.ok and any("removed at the end" in p for p in r.problems)


@pytest.mark.redis
async def test_two_replicas_append_one_chain_in_redis_and_the_cli_catches_tampering(redis_server: str, bus_prefix: str) -> None:
    k = BusKeys(bus_prefix)
    c1, c2 = aioredis.Redis.from_url(redis_server), aioredis.Redis.from_url(redis_server)
    a1, a2 = RedisAudit(c1, k.audit_log, k.audit_head), RedisAudit(c2, k.audit_log, k.audit_head)
    await asyncio.gather(*[(a1 if n % 2 else a2).append(rec(n, f"his-{n % 2}")) for n in range(60)])
    res = await a1.verify()
    assert res.ok and res.count == 60 and [r.seq for r in await a1.records()] == list(range(1, 61))

    cli = [sys.executable, "-m", "nhigw", "audit", "--redis", redis_server, "--bus-prefix", bus_prefix]
    ok = await run([*cli, "verify"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    exported = (await run([*cli, "export", "--since", "2000-01-01"], capture_output=True, text=True, check=True)).stdout.splitlines()
    assert len(exported) == 60 and json.loads(exported[0])["seq"] == 1
    assert (await run([*cli, "export", "--until", "2000-01-01"], capture_output=True, text=True, check=True)).stdout == ""

    # An edit in place (LSET): caught.
    line = json.loads(await c1.lindex(k.audit_log, 10))
    line["outcome"] = 0 if line["outcome"] else 8
    await c1.lset(k.audit_log, 10, json.dumps(line))
    bad = await run([*cli, "verify"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "edited" in bad.stdout
    # A removal (LREM of another record), on a fresh copy of the chain: caught.
    k2 = BusKeys(bus_prefix + "b")
    b = RedisAudit(c1, k2.audit_log, k2.audit_head)
    for n in range(5):
        await b.append(rec(n))
    await c1.lrem(k2.audit_log, 1, await c1.lindex(k2.audit_log, 2))
    bad = await run([*cli[:-1], bus_prefix + "b", "verify"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "removed" in bad.stdout
    await c1.aclose()
    await c2.aclose()
