"""Benchmark 3: 1,000 simulated agents heartbeating into one gateway over a real Redis.

    python bench/scale.py [--agents 1000] [--steady 10]

The agents are one separate process (``--role agents``): each simulated agent first
enrols as a real agent does (a one-time token, traded over the bus for its own key),
then is an asyncio task that publishes its ``Presence`` sealed with that key (what
``nhigw.agent.buslink`` sends) on the bus's presence channel, all at once first (a burst, as after a Redis
restart or a power cut), then every ``interval_s`` (1 s) with a random phase, as real
agents do. The gateway (``nhigw gateway``, its own process) learns them through its
registry. The bench polls ``GET /api/workstations`` every 50 ms: a workstation's
"seen" time is the poll's wall time minus its ``lastSeenAgo_s``; latency = seen -
burst time. Reported: time until all are online, p50/p99 of that latency, and during
the steady phase the fraction online at each poll, the gateway's CPU per presence
message and its RSS before/after.

Target: p99 <= 1 s after a burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, RESULTS, ROOT, Services, cpu_s, free_port, gateway_args, rss_mib, summary_ms, write_result  # noqa: E402


async def agents_role(redis_url: str, prefix: str, n: int, steady_s: float, interval_s: float, gateway_key_b64: str) -> None:
    import base64

    import redis.asyncio as aioredis

    from nhigw.bus.enrol import enrol
    from nhigw.bus.redis import RedisBus
    from nhigw.bus.seal import seal_envelope
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.contracts.models import CardStates, Presence
    from nhigw.gateway.agents import AgentKeys
    from nhigw.gateway.store import RedisKV

    keys = BusKeys(prefix)
    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=30))
    bus = RedisBus(redis_url)
    # Enrolment as in production: a one-time token per workstation (the operator's
    # `nhigw gateway enrol-token`), traded by the agent for its own key over the bus.
    issuer = AgentKeys(bus, RedisKV(client), keys, base64.b64decode(gateway_key_b64))
    t_enrol = time.time()
    sem = asyncio.Semaphore(50)

    async def enrol_one(i: int):  # type: ignore[no-untyped-def]
        async with sem:
            ws = f"ws-{i:04d}"
            return await enrol(bus, keys, ws, await issuer.issue_token(ws), timeout_s=60)

    idents = await asyncio.gather(*(enrol_one(i) for i in range(n)))
    enrol_s = time.time() - t_enrol
    states = CardStates.model_validate({"initialized": True, "sam": 2, "hpc": 0, "hc": 2})
    sent = 0

    def presence(i: int) -> bytes:
        ident = idents[i]
        p = Presence(workstation=ident.workstation, agentId=ident.agentId, version="bench", sentAt=time.time(), interval_s=interval_s, states=states)
        return seal_envelope(ident.key, keys.presence, ident.workstation, p.model_dump_json().encode())

    burst_at = time.time()
    await asyncio.gather(*(client.publish(keys.presence, presence(i)) for i in range(n)))
    sent += n
    print(json.dumps({"burst_at": burst_at, "burst_sent_s": time.time() - burst_at, "enrol_s": enrol_s}), flush=True)
    stop_at = time.monotonic() + steady_s

    async def one(i: int) -> None:
        nonlocal sent
        await asyncio.sleep(random.random() * interval_s)
        while time.monotonic() < stop_at:
            await client.publish(keys.presence, presence(i))
            sent += 1
            await asyncio.sleep(interval_s)

    await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps({"sent": sent}), flush=True)
    await bus.close()
    await client.aclose()


async def poll(url: str, n: int, burst_at: float, timeout_s: float) -> tuple[dict[str, float], float]:
    import aiohttp

    seen: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        deadline = time.time() + timeout_s
        while time.time() < deadline and len(seen) < n:
            async with http.get(url) as r:
                body = await r.json()
                now = time.time()
            for w in body["workstations"]:
                if w["workstation"].startswith("ws-") and w["online"] and w["workstation"] not in seen:
                    seen[w["workstation"]] = now - w["lastSeenAgo_s"] - burst_at
            await asyncio.sleep(0.05)
    return seen, time.time() - burst_at


async def online_count(url: str) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url) as r:
        body = await r.json()
    return sum(1 for w in body["workstations"] if w["online"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="bench")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--steady", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--redis")
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--gateway-key")
    a = ap.parse_args()
    if a.role == "agents":
        asyncio.run(agents_role(a.redis, a.prefix, a.agents, a.steady, a.interval, a.gateway_key))
        return

    with Services() as svc:
        _r, redis_url = svc.redis()
        gw_port = free_port()
        from nhigw.bus.seal import Sealer

        gateway_key = Sealer.new_key_b64()
        gw = svc.nhigw("gateway", gateway_args(gw_port, "http://127.0.0.1:9", redis_url, prefix=a.prefix, key=gateway_key))
        url = f"http://127.0.0.1:{gw_port}/api/workstations"
        time.sleep(0.5)
        rss0 = rss_mib(gw.proc.pid)
        agents = subprocess.Popen(
            [PY, str(Path(__file__)), "--role", "agents", "--redis", redis_url, "--prefix", a.prefix, "--agents", str(a.agents), "--steady", str(a.steady), "--interval", str(a.interval), "--gateway-key", gateway_key],
            stdout=subprocess.PIPE, cwd=ROOT, text=True,
        )
        assert agents.stdout is not None
        first = json.loads(agents.stdout.readline())
        rss_enrolled = rss_mib(gw.proc.pid)
        print(f"{a.agents} agents enrolled in {first['enrol_s']:.1f} s (one-time token each, over the bus)")
        cpu0 = cpu_s(gw.proc.pid)
        seen, waited = asyncio.run(poll(url, a.agents, first["burst_at"], timeout_s=30))
        lat_ms = [v * 1000 for v in seen.values()]
        all_seen_s = max(seen.values()) if len(seen) == a.agents else None
        print(f"burst of {a.agents} presences published in {first['burst_sent_s'] * 1000:.0f} ms; all seen after {all_seen_s and round(all_seen_s, 3)} s; seen {len(seen)}/{a.agents}")
        s = summary_ms(lat_ms)
        print(f"  latency publish -> registry: p50 {s['p50_ms']:.1f} ms  p99 {s['p99_ms']:.1f} ms  max {s['max_ms']:.1f} ms")
        # Steady phase: every agent heartbeats once a second.
        counts = []
        t_end = time.monotonic() + max(0.0, a.steady - waited - 0.5)
        while time.monotonic() < t_end:
            counts.append(asyncio.run(online_count(url)))
            time.sleep(0.5)
        tail = agents.stdout.read()
        agents.wait(30)
        sent = json.loads(tail.strip().splitlines()[-1])["sent"]
        cpu_used = cpu_s(gw.proc.pid) - cpu0
        rss1 = rss_mib(gw.proc.pid)
    per_msg_us = round(cpu_used / max(sent, 1) * 1e6, 1)
    print(f"  steady: online at each poll min {min(counts) if counts else None} / {a.agents}; gateway CPU {per_msg_us} µs per presence ({sent} messages); RSS {rss0} -> {rss1} MiB")
    p99_s = s["p99_ms"] / 1000
    targets = {"p99 seen after a burst (s)": {"value": round(p99_s, 3), "target": 1.0, "met": p99_s <= 1.0 and len(seen) == a.agents}}
    print(f"  target p99 <= 1 s: {round(p99_s, 3)} -> {'met' if targets['p99 seen after a burst (s)']['met'] else 'NOT met'}")
    write_result(
        "scale",
        {
            "setup": "one gateway process, one redis-server, one process of simulated agents (each enrolled with its own one-time token, publishing Presence sealed with its key; no card I/O); 50 ms polling of GET /api/workstations",
            "params": {"agents": a.agents, "steady_s": a.steady, "interval_s": a.interval},
            "burst": {"published_in_ms": round(first["burst_sent_s"] * 1000, 1), "seen": len(seen), "all_seen_s": all_seen_s and round(all_seen_s, 3), "latency": s},
            "steady": {"online_min": min(counts) if counts else None, "online_polls": counts, "presence_messages": sent, "gateway_cpu_us_per_presence": per_msg_us},
            "enrolment_s": round(first["enrol_s"], 2),
            "gateway_rss_mib": {"before": rss0, "after_enrolment": rss_enrolled, "after": rss1},
            "targets": targets,
        },
    )
    chart(sorted(lat_ms), counts, a.agents)


def chart(lat_ms: list[float], counts: list[int], n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot(lat_ms, [(i + 1) / len(lat_ms) for i in range(len(lat_ms))])
    a1.set_xlabel("ms after the burst")
    a1.set_ylabel("fraction of agents seen")
    a1.set_title(f"{n} agents: burst -> registry")
    a2.plot([i * 0.5 for i in range(len(counts))], counts, marker=".")
    a2.set_ylim(0, n * 1.05)
    a2.set_xlabel("s (steady heartbeats)")
    a2.set_ylabel("online")
    a2.set_title("online workstations, steady state")
    fig.tight_layout()
    out = RESULTS / "scale.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
