"""Profile of the hot path: the gateway (and the simulator) under pass-through load, sampled by py-spy.

    python bench/profile.py [--rate 300] [--duration 10]

The same set-up as ``gateway_overhead.py`` (sim, gateway on Redis, signed pass-through
bodies, the load generator in its own process) at a fixed rate, while ``py-spy record``
samples the gateway and the simulator (100 Hz, idle frames dropped); ``--rate 0`` profiles at
saturation instead (closed loop, 64 workers: where the CPU per request of issue 24's target is measured). The collapsed stacks
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


def round_trips_per_request(redis_url: str, url: str, maker: SigMaker, *, n: int = 640, concurrency: int = 64) -> dict[str, float]:
    """Redis scripts (the gateway's round trips on the hot path) per business request, one at a time and
    ``concurrency`` at once (group commit: requests in flight share a round trip)."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    import redis

    r = redis.Redis.from_url(redis_url)

    def post(body: bytes) -> None:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def scripts() -> int:
        st = r.info("commandstats")
        return sum(st.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("eval", "evalsha"))

    out = {}
    for label, conc, count in (("one at a time", 1, 100), (f"{concurrency} at once", concurrency, n)):
        bodies = [maker.body() for _ in range(count)]
        s0 = scripts()
        with ThreadPoolExecutor(conc) as pool:
            list(pool.map(post, bodies))
        out[label] = round((scripts() - s0) / count, 3)
    r.close()
    return out


def redis_rtt(redis_url: str, n: int = 600) -> dict[str, float]:
    """p50 of a Redis PING from asyncio (redis-py), back to back and 4 ms apart (as at 200 req/s: both processes idle in between)."""
    import asyncio
    import statistics

    import redis.asyncio as aioredis

    async def run() -> dict[str, float]:
        r = aioredis.Redis.from_url(redis_url)
        await r.ping()
        out = {}
        for label, gap in (("back_to_back_us", 0.0), ("4ms_apart_us", 0.004)):
            lat = []
            for _ in range(n):
                t = time.perf_counter()
                await r.ping()
                lat.append((time.perf_counter() - t) * 1e6)
                if gap:
                    await asyncio.sleep(gap)
            out[label] = round(statistics.median(lat), 1)
        await r.aclose()
        return out

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300, help="requests per second; 0: saturation (closed loop, 64 workers)")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--name", default="profile", help="results: bench/results/NAME.json and NAME-gateway.txt, NAME-sim.txt")
    ap.add_argument("--loop", default=None, help="the gateway's event loop (NHIGW_LOOP: uvloop, asyncio; default: nhigw's choice)")
    a = ap.parse_args()
    profiles = {}
    with Services() as svc:
        _r, redis_url = svc.redis()
        sim_port, gw_port = free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = svc.nhigw("sim", ["sim", "--port", str(sim_port)])
        gw = svc.nhigw("gateway", gateway_args(gw_port, sim_url, redis_url), env={"NHIGW_LOOP": a.loop} if a.loop else None)
        maker = SigMaker()
        maker.register(sim_url)
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", math.ceil((a.duration + 1.5) * (a.rate or 3000)) + 50)
        outs = {name: RESULTS / f"{a.name}-{name}.txt" for name in ("gateway", "sim")}
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
        trips = round_trips_per_request(redis_url, f"http://127.0.0.1:{gw_port}/api/v1/BasicData/Register", maker)
        rtt = redis_rtt(redis_url)
    print(f"Redis round trips (scripts) per request: {trips}; Redis PING p50: {rtt}")
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
    load_desc = f"{a.rate:g} req/s" if a.rate else "saturation (64 workers, closed loop)"
    write_result(a.name, {
        "setup": f"py-spy record at 100 Hz (idle frames dropped) of the gateway (event loop: {a.loop or 'nhigw default'}) and the simulator during {a.duration:g} s at {load_desc} of signed pass-through BasicData/Register through the gateway (real Redis).",
        "params": {"rate": a.rate, "duration_s": a.duration, "loop": a.loop},
        "load": {k: res[k] for k in ("ok", "counted", "latency")},
        "profiles": profiles,
        "redis_commands_per_request": cmds,
        "redis_round_trips_per_request": trips,
        "redis_rtt": rtt,
        "findings": [],
    })


if __name__ == "__main__":
    main()
