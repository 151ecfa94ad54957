"""Benchmark: the gateway with replica waiting (``WAIT 1``) beside the gateway without, both beside the bare proxy.

    python bench/replica_wait.py [--duration 5] [--rates 200] [--rounds 3] [--quick]

One Redis primary with one replica and three ``redis-sentinel`` (tests/sentinel.py), one simulator,
the bare proxy (``bench/proxy.py``) and four gateway processes (each its own Redis prefix), measured
side by side in one run with the same pre-signed ``BasicData/Register`` bodies as
``bench/gateway_overhead.py`` (rounds interleaved in a rotating order, the median reported):

- ``gateway``:        ``--redis redis://<primary>`` — the lean hot-path connection, no waiting (one Redis's default);
- ``gateway+wait``:   the same with ``--replica-wait 1``: ``WAIT 1`` after admission and the job's end;
- ``sentinel``:       ``--redis redis+sentinel://...`` with ``--replica-wait 0`` — redis-py's connection
  (the lean one is not used under Sentinel), no waiting;
- ``sentinel+wait``:  the Sentinel URL with its default, ``WAIT 1``.

The replica is linked in every run (so the primary streams to it whatever the path); the cost of
waiting is the replica's acknowledgement on loopback, the floor of what a LAN adds.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, write_result  # noqa: E402
from gateway_overhead import merge, phase_breakdown  # noqa: E402

GATEWAYS = {
    "gateway": ("primary", ["--replica-wait", "0"]),
    "gateway+wait": ("primary", ["--replica-wait", "1", "--replica-wait-ms", "1000"]),
    "sentinel": ("sentinel", ["--replica-wait", "0"]),
    "sentinel+wait": ("sentinel", []),  # the default under Sentinel: 1
}


def main() -> None:
    from tests.sentinel import SentinelSet

    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rates", default="200")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="runs per point, interleaved; the median is reported")
    ap.add_argument("--quick", action="store_true", help="2 s per point, 1 round (smoke run)")
    a = ap.parse_args()
    if a.quick:
        a.duration, a.warmup, a.rounds = 2.0, 0.5, 1
    rates = [float(r) for r in a.rates.split(",") if r]
    paths = ["direct", "proxy", *GATEWAYS]

    with Services() as svc:
        sentinels = SentinelSet(Path(tempfile.mkdtemp(prefix="sentinels-", dir=svc.tmp))).start()
        try:
            redis_urls = {"primary": f"redis://127.0.0.1:{sentinels.primary_port}/0", "sentinel": sentinels.url}
            sim_port = free_port()
            sim_url = f"http://127.0.0.1:{sim_port}"
            sim_args = ["sim", "--port", str(sim_port)]
            sim = svc.nhigw("sim", sim_args)
            proxy_port = free_port()
            proxy = svc.python("proxy", ["bench/proxy.py", "--port", str(proxy_port), "--upstream", sim_url], port=proxy_port)
            pids = {"proxy": proxy.pid}
            urls = {"direct": f"{sim_url}/api/v1/BasicData/Register", "proxy": f"http://127.0.0.1:{proxy_port}/api/v1/BasicData/Register"}
            for i, (name, (redis, extra)) in enumerate(GATEWAYS.items()):
                port = free_port()
                gw = svc.nhigw(name, [*gateway_args(port, sim_url, redis_urls[redis], prefix=f"bench-wait-{i}"), *extra])
                pids[name] = gw.proc.pid
                urls[name] = f"http://127.0.0.1:{port}/api/v1/BasicData/Register"
            maker = SigMaker()
            maker.register(sim_url)
            per_sat = int((a.duration + a.warmup) * 9000)
            total = max([per_sat, *(math.ceil((a.duration + a.warmup) * r) + 16 for r in rates)])
            print(f"signing {total} request bodies ...", flush=True)
            bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", total)
            n_sim = 0

            def fresh_sim() -> None:
                """A new simulator on the same port: the same signed bodies are fresh again (3245 otherwise)."""
                nonlocal sim, n_sim
                sim.stop()
                svc.procs.remove(sim)
                n_sim += 1
                sim = svc.nhigw(f"sim-{n_sim}", sim_args)
                maker.register(sim_url)

            def measure(path: str, rate: float) -> dict:  # type: ignore[type-arg]
                fresh_sim()
                server_pids = {"sim": sim.proc.pid, **({path: pids[path]} if path != "direct" else {})}
                cpu0 = {k: cpu_s(p) for k, p in server_pids.items()}
                res = loadgen(urls[path], bodies, rate=rate, duration_s=a.duration, warmup_s=a.warmup, concurrency=a.concurrency)
                res["cpu_us_per_req"] = {k: round((cpu_s(p) - cpu0[k]) / max(res["bodies_used"], 1) * 1e6, 1) for k, p in server_pids.items()}
                lat = res["latency"]
                print(f"  {path:14s} rate={rate or 'max':>5} ok={res['ok']:>6} achieved={res['achieved_rps']:>7} p50={lat['p50_ms']:7.3f} p99={lat['p99_ms']:7.3f} ms  cpu/req={res['cpu_us_per_req']}", flush=True)
                if res["ok"] != res["counted"]:
                    print(f"    non-200: {res['statuses']} codes {res['error_codes']}", flush=True)
                return res

            def rounds(rate: float) -> dict[str, dict]:  # type: ignore[type-arg]
                runs: dict[str, list[dict]] = {p: [] for p in paths}  # type: ignore[type-arg]
                for i in range(a.rounds):
                    for p in paths[i % len(paths) :] + paths[: i % len(paths)]:
                        runs[p].append(measure(p, rate))
                return {p: merge(rs) for p, rs in runs.items()}

            fixed: dict[str, dict[str, dict]] = {}  # type: ignore[type-arg]
            for rate in rates:
                print(f"fixed rate {rate:g} req/s", flush=True)
                fixed[f"{rate:g}"] = rounds(rate)
            print("saturation", flush=True)
            sat = rounds(0)
        finally:
            sentinels.stop()

    rows = {}
    for p in GATEWAYS:
        row: dict[str, object] = {
            "max req/s": sat[p]["ok_rps"],
            "max req/s / proxy": round(sat[p]["ok_rps"] / sat["proxy"]["ok_rps"], 3) if sat["proxy"]["ok_rps"] else None,
            "CPU µs/req at saturation": sat[p]["cpu_us_per_req"][p],
            "CPU / proxy": round(sat[p]["cpu_us_per_req"][p] / sat["proxy"]["cpu_us_per_req"]["proxy"], 3) if sat["proxy"]["cpu_us_per_req"]["proxy"] else None,
        }
        for rate, per in fixed.items():
            d, px = per["direct"]["latency"], per["proxy"]["latency"]
            row[f"{rate}/s p50 added (ms)"] = round(per[p]["latency"]["p50_ms"] - d["p50_ms"], 3)
            row[f"{rate}/s p99 added (ms)"] = round(per[p]["latency"]["p99_ms"] - d["p99_ms"], 3)
            row[f"{rate}/s proxy p50 / p99 added (ms)"] = (round(px["p50_ms"] - d["p50_ms"], 3), round(px["p99_ms"] - d["p99_ms"], 3))
            b = phase_breakdown(per, p)
            row[f"{rate}/s queue / audit p50 (ms)"] = (b.get("queue"), b.get("audit"))
        rows[p] = row
    print()
    for p, row in rows.items():
        print(f"{p:14s} " + "  ".join(f"{k}: {v}" for k, v in row.items()))
    write_result("replica_wait", {
        "setup": "one primary + one replica + three redis-sentinel (tests/sentinel.py); sim, bare proxy and four gateways as separate processes (each gateway its own Redis prefix), the load generator its own process; pass-through pre-signed bodies; every service at WARNING.",
        "params": {"duration_s": a.duration, "warmup_s": a.warmup, "rates": rates, "saturation_concurrency": a.concurrency, "rounds": a.rounds},
        "paths": {p: {"redis": r, "args": x} for p, (r, x) in GATEWAYS.items()},
        "fixed": fixed,
        "saturation": sat,
        "summary": rows,
    })


if __name__ == "__main__":
    main()
