"""Profile of the hot path: the gateway (and the simulator) under pass-through load, sampled by py-spy.

    python bench/profile.py [--rate 300] [--duration 10]

The same set-up as ``gateway_overhead.py`` (sim, gateway on Redis, signed pass-through
bodies, the load generator in its own process) at a fixed rate, while ``py-spy record``
samples the gateway and the simulator (100 Hz, idle frames dropped). The collapsed stacks
are kept in ``bench/results/profile-*.txt``; the JSON has, per process, the functions
whose frames appear in the largest share of the busy samples (inclusive), and the
self-time leaders, which is where the CPU actually goes.
"""

from __future__ import annotations

import argparse
import collections
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, write_result  # noqa: E402

PYSPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def parse_collapsed(path: Path, top: int = 15) -> dict:  # type: ignore[type-arg]
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].split("/")[-1] + ")" if " (" in f else f for f in stack.split(";")]
        total += count
        for f in set(frames):
            incl[f] += count
        self_[frames[-1]] += count
    plumbing = ("(runners.py)", "(base_events.py)", "(events.py)", "(__main__.py)", "(cli.py)", "(<frozen runpy>)")
    rows = [{"function": f, "share": c / total} for f, c in incl.most_common(300) if not f.endswith(plumbing) and not f.startswith("<module>")][:top]
    selfrows = [{"function": f, "share": c / total} for f, c in self_.most_common(top)]
    return {"samples": total, "top": rows, "self": selfrows}


def redis_commands_per_request(redis_url: str, url: str, maker: SigMaker, n: int = 100) -> dict[str, float]:
    """Redis commands the gateway runs per business request: ``INFO commandstats`` over ``n`` sequential requests."""
    import urllib.request

    import redis

    r = redis.Redis.from_url(redis_url)
    time.sleep(1.5)  # the claim loop and keep-alive settle
    r.config_resetstat()
    for _ in range(n):
        req = urllib.request.Request(url, data=maker.body(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    st = r.info("commandstats")
    r.close()
    per = {k.removeprefix("cmdstat_"): round(v["calls"] / n, 2) for k, v in st.items() if not k.startswith("cmdstat_config")}
    per = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    return {"total": round(sum(per.values()), 1), **per}


def redis_batching_cost(redis_url: str, per_request: int = 20, n: int = 300) -> dict[str, float]:
    """Client CPU (this process, redis-py asyncio) of ``per_request`` commands one by one vs in one pipeline."""
    import asyncio

    import redis.asyncio as aioredis

    async def run() -> dict[str, float]:
        r = aioredis.Redis.from_url(redis_url)
        await r.ping()
        t0 = time.process_time()
        for i in range(n):
            for j in range(per_request):
                await r.set(f"bench:rt:{j}", i)
        one_by_one = (time.process_time() - t0) / n * 1e6
        t0 = time.process_time()
        for i in range(n):
            async with r.pipeline(transaction=False) as pipe:
                for j in range(per_request):
                    pipe.set(f"bench:rt:{j}", i)
                await pipe.execute()
        pipelined = (time.process_time() - t0) / n * 1e6
        await r.aclose()
        return {"commands": per_request, "one_by_one_us": round(one_by_one, 1), "pipelined_us": round(pipelined, 1)}

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--duration", type=float, default=10)
    a = ap.parse_args()
    profiles = {}
    with Services() as svc:
        _r, redis_url = svc.redis()
        sim_port, gw_port = free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = svc.nhigw("sim", ["sim", "--port", str(sim_port)])
        gw = svc.nhigw("gateway", gateway_args(gw_port, sim_url, redis_url))
        maker = SigMaker()
        maker.register(sim_url)
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", math.ceil((a.duration + 1.5) * a.rate) + 50)
        outs = {name: RESULTS / f"profile-{name}.txt" for name in ("gateway", "sim")}
        RESULTS.mkdir(parents=True, exist_ok=True)
        spies = [
            subprocess.Popen([PYSPY, "record", "--pid", str(p.proc.pid), "--rate", "100", "--format", "raw", "--output", str(outs[name]), "--duration", str(int(a.duration + 1)), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, p in (("gateway", gw), ("sim", sim))
        ]
        time.sleep(0.5)
        cpu0 = {"gateway": cpu_s(gw.proc.pid), "sim": cpu_s(sim.proc.pid)}
        res = loadgen(f"http://127.0.0.1:{gw_port}/api/v1/BasicData/Register", bodies, rate=a.rate, duration_s=a.duration, warmup_s=0.5)
        cpu_per_req = {k: round((cpu_s(p.proc.pid) - cpu0[k]) / max(res["bodies_used"], 1) * 1e6, 1) for k, p in (("gateway", gw), ("sim", sim))}
        for s in spies:
            s.wait(60)
        cmds = redis_commands_per_request(redis_url, f"http://127.0.0.1:{gw_port}/api/v1/BasicData/Register", maker)
        batching = redis_batching_cost(redis_url, per_request=int(round(cmds["total"])))
    print(f"client CPU of {batching['commands']} Redis commands: one by one {batching['one_by_one_us']} µs, in one pipeline {batching['pipelined_us']} µs")
    print("\nRedis commands per business request (100 sequential requests, INFO commandstats):")
    print("  " + ", ".join(f"{k} {v}" for k, v in cmds.items()))
    for name, out in outs.items():
        profiles[name] = parse_collapsed(out)
        profiles[name]["cpu_us_per_req"] = cpu_per_req[name]
        print(f"\n{name}: {profiles[name]['samples']} samples, {cpu_per_req[name]} µs CPU per request")
        for row in profiles[name]["top"]:
            print(f"  {row['share']:6.1%}  {row['function']}")
        print("  self time:")
        for row in profiles[name]["self"][:8]:
            print(f"  {row['share']:6.1%}  {row['function']}")
    print(f"\nload: {res['ok']} OK of {res['counted']}, p50 {res['latency']['p50_ms']} ms, p99 {res['latency']['p99_ms']} ms")
    write_result("profile", {
        "setup": f"py-spy record at 100 Hz (idle frames dropped) of the gateway and the simulator during {a.duration:g} s at {a.rate:g} req/s of signed pass-through BasicData/Register through the gateway (real Redis).",
        "params": {"rate": a.rate, "duration_s": a.duration},
        "load": {k: res[k] for k in ("ok", "counted", "latency")},
        "profiles": profiles,
        "redis_commands_per_request": cmds,
        "redis_batching": batching,
        "findings": [],
    })


if __name__ == "__main__":
    main()
