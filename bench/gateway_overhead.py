"""Benchmark 1: what the gateway adds to a business call.

    python bench/gateway_overhead.py [--duration 5] [--rates 100,200,500] [--quick]

Three paths to the same simulator process, measured side by side in one run, with the
same pre-signed ``BasicData/Register`` pass-through bodies (a fresh clientRandom and
a valid RSA-2048 signature each; the simulator checks every one):

- ``direct``:  load generator -> ``nhigw sim``
- ``proxy``:   load generator -> bare aiohttp pass-through (``bench/proxy.py``) -> sim
- ``gateway``: load generator -> ``nhigw gateway`` (real Redis bus) -> sim

At fixed rates (open loop, latency from the due time) and at saturation (closed loop,
64 workers); each point is run ``--rounds`` times (3), interleaved with the other
paths in a rotating order, and the median of each figure is reported (other work on
a shared 2-core machine shows as outliers in single runs). Added latency = path p50/p99 minus direct p50/p99 at the same rate.
Where the gateway's time goes: its ``Server-Timing`` header (queue = admission round trip,
cloud = the call to the simulator, audit = the job's end on Redis, total = arrival to answer);
``breakdown`` splits the gateway's p50 at each rate into those phases, its own code between
them (total minus the phases) and the HIS <-> gateway hop (client p50 minus total), each a median.
CPU per request of each server process comes from its CPU time over the run (psutil),
which does not depend on how the 2 cores were shared. Before every run the simulator is
restarted (same port), so one set of signed bodies serves every run.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, rss_mib, write_result  # noqa: E402

TARGETS = {"at 200 req/s: p50 added (ms)": 1.0, "at 200 req/s: p99 added (ms)": 5.0, "gateway max req/s / proxy max req/s": 0.5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rates", default="100,200,500")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="runs per point, interleaved; the median is reported")
    ap.add_argument("--quick", action="store_true", help="2 s per point, 1 round (smoke run)")
    a = ap.parse_args()
    if a.quick:
        a.duration, a.warmup, a.rounds = 2.0, 0.5, 1
    rates = [float(r) for r in a.rates.split(",")]
    paths = ["direct", "proxy", "gateway"]

    with Services() as svc:
        sim_port, proxy_port, gw_port = free_port(), free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        _redis, redis_url = svc.redis()
        sim_args = ["sim", "--port", str(sim_port)]
        sim = svc.nhigw("sim", sim_args)
        proxy = svc.python("proxy", ["bench/proxy.py", "--port", str(proxy_port), "--upstream", sim_url], port=proxy_port)
        gw = svc.nhigw("gateway", gateway_args(gw_port, sim_url, redis_url))
        pids = {"proxy": proxy.pid, "gateway": gw.proc.pid}
        urls = {
            "direct": f"{sim_url}/api/v1/BasicData/Register",
            "proxy": f"http://127.0.0.1:{proxy_port}/api/v1/BasicData/Register",
            "gateway": f"http://127.0.0.1:{gw_port}/api/v1/BasicData/Register",
        }
        maker = SigMaker()
        maker.register(sim_url)
        per_sat = int((a.duration + a.warmup) * 9000)  # more than any path answers on 2 cores
        total = max(per_sat, *(math.ceil((a.duration + a.warmup) * r) + 16 for r in rates))
        print(f"signing {total} request bodies ...", flush=True)
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", total)
        runs = 0

        def fresh_sim() -> None:
            """A new simulator process on the same port, so the same signed bodies are fresh again
            (the simulator refuses a clientRandom it has seen: 3245)."""
            nonlocal sim, runs
            sim.stop()
            svc.procs.remove(sim)
            runs += 1
            sim = svc.nhigw(f"sim-{runs}", sim_args)
            maker.register(sim_url)

        def measure(path: str, rate: float) -> dict:  # type: ignore[type-arg]
            fresh_sim()
            server_pids = {"sim": sim.proc.pid, **({path: pids[path]} if path != "direct" else {})}
            cpu0 = {k: cpu_s(p) for k, p in server_pids.items()}
            res = loadgen(urls[path], bodies, rate=rate, duration_s=a.duration, warmup_s=a.warmup, concurrency=a.concurrency)
            sent = res["bodies_used"]
            res["cpu_us_per_req"] = {k: round((cpu_s(p) - cpu0[k]) / max(sent, 1) * 1e6, 1) for k, p in server_pids.items()}
            lat = res["latency"]
            print(f"  {path:8s} rate={rate or 'max':>5} ok={res['ok']:>6} achieved={res['achieved_rps']:>7} p50={lat['p50_ms']:7.3f} p99={lat['p99_ms']:7.3f} ms  cpu/req={res['cpu_us_per_req']}", flush=True)
            if res["statuses"].get("no-body"):
                print("    ran out of pre-made bodies: raise per_sat", flush=True)
            if res["ok"] != res["counted"]:
                print(f"    non-200: {res['statuses']} codes {res['error_codes']}", flush=True)
            return res

        def rounds(rate: float) -> dict[str, dict]:  # type: ignore[type-arg]
            runs: dict[str, list[dict]] = {p: [] for p in paths}  # type: ignore[type-arg]
            for i in range(a.rounds):
                order = paths[i % len(paths) :] + paths[: i % len(paths)]  # rotate, so no path always runs first
                for p in order:
                    runs[p].append(measure(p, rate))
            return {p: merge(rs) for p, rs in runs.items()}

        fixed: dict[str, dict[str, dict]] = {}  # type: ignore[type-arg]
        for rate in rates:
            print(f"fixed rate {rate:g} req/s", flush=True)
            fixed[f"{rate:g}"] = rounds(rate)
        print("saturation", flush=True)
        sat = rounds(0)
        rss = {"gateway_mib": rss_mib(gw.proc.pid), "proxy_mib": rss_mib(proxy.pid), "sim_mib": rss_mib(sim.proc.pid)}

    added = {}
    for rate, per in fixed.items():
        d = per["direct"]["latency"]
        added[rate] = {
            p: {"p50_added_ms": round(per[p]["latency"]["p50_ms"] - d["p50_ms"], 3), "p99_added_ms": round(per[p]["latency"]["p99_ms"] - d["p99_ms"], 3)} for p in ("proxy", "gateway")
        }
    breakdown = {rate: phase_breakdown(per) for rate, per in fixed.items()}
    max_rps = {p: sat[p]["ok_rps"] for p in paths}
    ratio = round(max_rps["gateway"] / max_rps["proxy"], 3) if max_rps["proxy"] else 0.0
    a200 = added.get("200", {}).get("gateway", {})
    checks = {
        "at 200 req/s: p50 added (ms)": a200.get("p50_added_ms"),
        "at 200 req/s: p99 added (ms)": a200.get("p99_added_ms"),
        "gateway max req/s / proxy max req/s": ratio,
    }
    verdict = {
        k: (v is not None and (v >= TARGETS[k] if k.startswith("gateway max") else v <= TARGETS[k])) for k, v in checks.items()
    }
    print("\nadded latency vs direct:")
    for rate, per in added.items():
        print(f"  {rate:>5} req/s  proxy p50 +{per['proxy']['p50_added_ms']:.3f} p99 +{per['proxy']['p99_added_ms']:.3f}   gateway p50 +{per['gateway']['p50_added_ms']:.3f} p99 +{per['gateway']['p99_added_ms']:.3f} ms")
    print("where the gateway's p50 goes (medians of its Server-Timing phases, ms):")
    for rate, b in breakdown.items():
        print(f"  {rate:>5} req/s  " + "  ".join(f"{k} {v}" for k, v in b.items()))
    print(f"max req/s: direct {max_rps['direct']}  proxy {max_rps['proxy']}  gateway {max_rps['gateway']}  (gateway/proxy = {ratio})")
    for k, v in checks.items():
        print(f"  target {k}: {v} (target {'>=' if k.startswith('gateway max') else '<='} {TARGETS[k]}) -> {'met' if verdict[k] else 'NOT met'}")
    write_result(
        "gateway_overhead",
        {
            "setup": "sim, bare proxy and gateway are separate processes; the load generator is its own process; the gateway on a real Redis, pass-through mode (pre-signed bodies, full signature check in the sim), with whatever the gateway does on every request at this commit (queue, audit: see the git log); its per-hospital rate limit lifted; every service logs at WARNING (at INFO the gateway writes one line per request).",
            "params": {"duration_s": a.duration, "warmup_s": a.warmup, "rates": rates, "saturation_concurrency": a.concurrency, "rounds": a.rounds},
            "fixed": fixed,
            "saturation": sat,
            "added": added,
            "breakdown": breakdown,
            "max_rps": max_rps,
            "gateway_over_proxy": ratio,
            "rss": rss,
            "targets": {k: {"value": checks[k], "target": TARGETS[k], "met": verdict[k]} for k in checks},
        },
    )
    chart(fixed, max_rps)


def phase_breakdown(per: dict) -> dict[str, float]:  # type: ignore[type-arg]
    """The gateway's p50 at one rate, in parts (ms): the HIS <-> gateway hop, its phases and its own code."""
    t = per["gateway"].get("server_timing_p50_ms") or {}
    if not {"queue", "cloud", "audit", "total"} <= set(t):
        return {}
    p50, direct = per["gateway"]["latency"]["p50_ms"], per["direct"]["latency"]["p50_ms"]
    return {
        "gateway_p50": p50,
        "his_hop": round(p50 - t["total"], 3),
        "queue": t["queue"],
        "cloud": t["cloud"],
        "audit": t["audit"],
        "own_code": round(t["total"] - t["queue"] - t["cloud"] - t["audit"], 3),
        "direct_p50": direct,
        "redis_share_of_added": round((t["queue"] + t["audit"]) / (p50 - direct), 3) if p50 > direct else 0.0,
    }


def merge(runs: list[dict]) -> dict:  # type: ignore[type-arg]
    """Several runs of one point -> the median of each figure, the sums of the counts, and the runs."""
    import statistics

    out = {
        "counted": sum(r["counted"] for r in runs),
        "ok": sum(r["ok"] for r in runs),
        "ok_rps": round(statistics.median(r["ok_rps"] for r in runs), 1),
        "achieved_rps": round(statistics.median(r["achieved_rps"] for r in runs), 1),
        "latency": {k: round(statistics.median(r["latency"][k] for r in runs), 3) for k in runs[0]["latency"]},
        "cpu_us_per_req": {k: round(statistics.median(r["cpu_us_per_req"][k] for r in runs), 1) for k in runs[0]["cpu_us_per_req"]},
        "server_timing_p50_ms": {k: round(statistics.median(r["server_timing_p50_ms"][k] for r in runs), 3) for k in runs[0].get("server_timing_p50_ms", {}) if all(k in r.get("server_timing_p50_ms", {}) for r in runs)},
        "statuses": {},
        "error_codes": {},
        "runs": runs,
    }
    for r in runs:
        for k, v in r["statuses"].items():
            out["statuses"][k] = out["statuses"].get(k, 0) + v
        for k, v in r["error_codes"].items():
            out["error_codes"][k] = out["error_codes"].get(k, 0) + v
    return out


def chart(fixed: dict, max_rps: dict) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    rates = list(fixed)
    paths = ["direct", "proxy", "gateway"]
    w = 0.27
    for ax, q in zip(axes[:2], ("p50_ms", "p99_ms"), strict=True):
        for i, p in enumerate(paths):
            ax.bar([x + (i - 1) * w for x in range(len(rates))], [fixed[r][p]["latency"][q] for r in rates], w, label=p)
        ax.set_xticks(range(len(rates)), [f"{r} req/s" for r in rates])
        ax.set_ylabel("ms")
        ax.set_title(f"latency {q[:3]}")
        ax.legend()
    axes[2].bar(paths, [max_rps[p] for p in paths], color=["C0", "C1", "C2"])
    axes[2].set_title("max req/s (saturation)")
    fig.tight_layout()
    out = RESULTS / "gateway_overhead.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
