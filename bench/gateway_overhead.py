"""Benchmark 1: what the gateway adds to a business call.

    python bench/gateway_overhead.py [--duration 5] [--rates 200] [--rounds 5] [--loops uvloop,asyncio] [--name gateway_overhead]
    python bench/gateway_overhead.py --summarize bench/results/NAME.json   # recompute the figures, targets and chart of a result

Paths to the same simulator process, measured side by side in one run, with the
same pre-signed ``BasicData/Register`` pass-through bodies (a fresh clientRandom and
a valid RSA-2048 signature each; the simulator checks every one):

- ``direct``:  load generator -> ``nhigw sim``
- ``proxy``:   load generator -> bare aiohttp pass-through (``bench/proxy.py``) -> sim
- ``gateway``: load generator -> ``nhigw gateway`` (real Redis bus) -> sim

A proxy and a gateway run on each event loop of ``--loops`` (``nhigw.common.loop``:
uvloop, the standard asyncio loop), named ``proxy/uvloop``, ``gateway/uvloop``, ... ; each
gateway is compared with the proxy on the same loop. The simulator always runs on the
standard loop, so ``direct`` is the same floor for every pair (and for runs of older trees).

At fixed rates (open loop, latency from the due time) and at saturation (closed loop,
64 workers); each point is run ``--rounds`` times (5), interleaved with the other
paths in a rotating order, and the median of each figure is reported (other work on
a shared 2-core machine shows as outliers in single runs). Added latency = path p50/p99 minus direct p50/p99 at the same rate.
Where the gateway's time goes: its ``Server-Timing`` header (queue = admission round trip,
cloud = the call to the simulator, audit = the job's end on Redis, total = arrival to answer);
``breakdown`` splits the gateway's p50 at each rate into those phases, its own code between
them (total minus the phases) and the HIS <-> gateway hop (client p50 minus total), each a median.
CPU per request of each server process comes from its CPU time over the run (psutil),
which does not depend on how the 2 cores were shared. Before every run the simulator is
restarted (same port), so one set of signed bodies serves every run.

The targets (issue 24) are ratios and differences against the bare proxy on the same loop
in the same run: CPU per request at saturation, maximum throughput (the median over the
rounds of each round's gateway / proxy), and at 200 req/s the gateway's added p50 against the
proxy's added p50 plus its two Redis phases (queue, audit) plus 0.15 ms of its own code,
and its added p99 against the proxy's plus 3 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, rss_mib, write_result  # noqa: E402

CPU_RATIO_MAX = 1.6  # gateway CPU per request at saturation / the proxy's
THROUGHPUT_RATIO_MIN = 0.6  # gateway max req/s / the proxy's (median of the rounds)
OWN_CODE_MAX_MS = 0.15  # p50 added beyond the proxy's and the two Redis phases, at 200 req/s
P99_MARGIN_MS = 3.0  # p99 added beyond the proxy's, at 200 req/s
SIM_LOOP = "asyncio"


def pairs_of(paths: list[str]) -> list[tuple[str, str, str]]:
    """(loop, proxy path, gateway path) for each loop with both paths: ``proxy/uvloop`` or, in old results, ``proxy``."""
    out = []
    for p in paths:
        if p.startswith("proxy"):
            g = "gateway" + p.removeprefix("proxy")
            if g in paths:
                out.append((p.partition("/")[2] or "asyncio", p, g))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rates", default="200")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5, help="runs per point, interleaved; the median is reported")
    ap.add_argument("--loops", default=None, help="event loops to run a proxy and a gateway on (default: uvloop,asyncio where uvloop is installed)")
    ap.add_argument("--name", default="gateway_overhead", help="result file bench/results/NAME.json")
    ap.add_argument("--quick", action="store_true", help="2 s per point, 1 round (smoke run)")
    ap.add_argument("--summarize", type=Path, help="recompute the figures and targets of an earlier result file, in place")
    a = ap.parse_args()
    if a.summarize:
        d = json.loads(a.summarize.read_text())
        d.update(summarize(d["fixed"], d["saturation"]))
        a.summarize.write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n")
        print_summary(d)
        chart(d["fixed"], d["max_rps"], a.summarize.stem)
        return
    if a.quick:
        a.duration, a.warmup, a.rounds = 2.0, 0.5, 1
    rates = [float(r) for r in a.rates.split(",") if r]  # "": saturation only
    loops = a.loops.split(",") if a.loops else default_loops()
    paths = ["direct"] + [f"{kind}/{lp}" for lp in loops for kind in ("proxy", "gateway")]

    with Services() as svc:
        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        _redis, redis_url = svc.redis()
        sim_args = ["sim", "--port", str(sim_port)]
        sim_env = {"NHIGW_LOOP": SIM_LOOP}
        sim = svc.nhigw("sim", sim_args, env=sim_env)
        pids: dict[str, int] = {}
        urls = {"direct": f"{sim_url}/api/v1/BasicData/Register"}
        for lp in loops:
            proxy_port, gw_port = free_port(), free_port()
            proxy = svc.python(f"proxy-{lp}", ["bench/proxy.py", "--port", str(proxy_port), "--upstream", sim_url], port=proxy_port, env={"NHIGW_LOOP": lp})
            # one Redis prefix per gateway: each its own queue and consumer group
            gw = svc.nhigw(f"gateway-{lp}", gateway_args(gw_port, sim_url, redis_url, prefix=f"bench-{lp}"), env={"NHIGW_LOOP": lp})
            pids[f"proxy/{lp}"], pids[f"gateway/{lp}"] = proxy.pid, gw.proc.pid
            urls[f"proxy/{lp}"] = f"http://127.0.0.1:{proxy_port}/api/v1/BasicData/Register"
            urls[f"gateway/{lp}"] = f"http://127.0.0.1:{gw_port}/api/v1/BasicData/Register"
        maker = SigMaker()
        maker.register(sim_url)
        per_sat = int((a.duration + a.warmup) * 9000)  # more than any path answers on 2 cores
        total = max([per_sat, *(math.ceil((a.duration + a.warmup) * r) + 16 for r in rates)])
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
            sim = svc.nhigw(f"sim-{runs}", sim_args, env=sim_env)
            maker.register(sim_url)

        def measure(path: str, rate: float) -> dict:  # type: ignore[type-arg]
            fresh_sim()
            server_pids = {"sim": sim.proc.pid, **({path: pids[path]} if path != "direct" else {})}
            cpu0 = {k: cpu_s(p) for k, p in server_pids.items()}
            res = loadgen(urls[path], bodies, rate=rate, duration_s=a.duration, warmup_s=a.warmup, concurrency=a.concurrency)
            sent = res["bodies_used"]
            res["cpu_us_per_req"] = {k: round((cpu_s(p) - cpu0[k]) / max(sent, 1) * 1e6, 1) for k, p in server_pids.items()}
            lat = res["latency"]
            print(f"  {path:16s} rate={rate or 'max':>5} ok={res['ok']:>6} achieved={res['achieved_rps']:>7} p50={lat['p50_ms']:7.3f} p99={lat['p99_ms']:7.3f} ms  cpu/req={res['cpu_us_per_req']}", flush=True)
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
        rss = {f"{p}_mib": rss_mib(pid) for p, pid in pids.items()} | {"sim_mib": rss_mib(sim.proc.pid)}

    out = {
        "setup": "sim, a bare proxy and a gateway per event loop are separate processes; the load generator is its own process; each gateway on a real Redis (a prefix of its own), pass-through mode (pre-signed bodies, full signature check in the sim), with whatever the gateway does on every request at this commit (queue, audit: see the git log); its per-hospital rate limit lifted; every service logs at WARNING (at INFO the gateway writes one line per request); the simulator on the standard asyncio loop.",
        "params": {"duration_s": a.duration, "warmup_s": a.warmup, "rates": rates, "saturation_concurrency": a.concurrency, "rounds": a.rounds, "loops": loops},
        "fixed": fixed,
        "saturation": sat,
        "rss": rss,
        **summarize(fixed, sat),
    }
    print_summary(out)
    write_result(a.name, out)
    chart(fixed, out["max_rps"], a.name)


def default_loops() -> list[str]:
    from nhigw.common.loop import loop_name

    return ["uvloop", "asyncio"] if loop_name("auto") == "uvloop" else ["asyncio"]


def summarize(fixed: dict, sat: dict) -> dict:  # type: ignore[type-arg]
    """Added latency, the phase breakdown, maximum throughput and the targets of each loop's pair (issue 24)."""
    paths = list(sat)
    added = {}
    for rate, per in fixed.items():
        d = per["direct"]["latency"]
        added[rate] = {p: {"p50_added_ms": round(per[p]["latency"]["p50_ms"] - d["p50_ms"], 3), "p99_added_ms": round(per[p]["latency"]["p99_ms"] - d["p99_ms"], 3)} for p in paths if p != "direct"}
    max_rps = {p: sat[p]["ok_rps"] for p in paths}
    breakdown: dict[str, dict] = {}  # type: ignore[type-arg]
    targets: dict[str, dict] = {}  # type: ignore[type-arg]
    for loop, pp, gp in pairs_of(paths):
        breakdown[loop] = {rate: phase_breakdown(per, gp) for rate, per in fixed.items()}
        cpu_p, cpu_g = sat[pp]["cpu_us_per_req"][pp], sat[gp]["cpu_us_per_req"][gp]
        per_round = [g["ok_rps"] / p["ok_rps"] for p, g in zip(sat[pp]["runs"], sat[gp]["runs"], strict=True) if p["ok_rps"]]
        t: dict[str, dict] = {  # type: ignore[type-arg]
            "CPU per request at saturation, gateway / proxy": {"value": round(cpu_g / cpu_p, 3) if cpu_p else None, "target": CPU_RATIO_MAX, "op": "<=", "detail": f"{cpu_g:.0f} / {cpu_p:.0f} µs"},
            "max req/s, gateway / proxy (median of the rounds)": {"value": round(statistics.median(per_round), 3) if per_round else None, "target": THROUGHPUT_RATIO_MIN, "op": ">=",
                                                                  "detail": f"rounds {', '.join(f'{r:.2f}' for r in per_round)}; medians {max_rps[gp]:.0f} / {max_rps[pp]:.0f} req/s"},
        }
        a200, b200 = added.get("200"), breakdown[loop].get("200")
        if a200 and b200:
            own = a200[gp]["p50_added_ms"] - a200[pp]["p50_added_ms"] - b200["queue"] - b200["audit"]
            t["at 200 req/s: p50 added beyond the proxy's and the two Redis phases (ms)"] = {
                "value": round(own, 3), "target": OWN_CODE_MAX_MS, "op": "<=",
                "detail": f"gateway +{a200[gp]['p50_added_ms']:.3f}, proxy +{a200[pp]['p50_added_ms']:.3f}, queue {b200['queue']:.3f}, audit {b200['audit']:.3f}",
            }
            p99 = a200[gp]["p99_added_ms"] - a200[pp]["p99_added_ms"]
            t["at 200 req/s: p99 added beyond the proxy's (ms)"] = {"value": round(p99, 3), "target": P99_MARGIN_MS, "op": "<=", "detail": f"gateway +{a200[gp]['p99_added_ms']:.3f}, proxy +{a200[pp]['p99_added_ms']:.3f}"}
        for v in t.values():
            v["met"] = v["value"] is not None and (v["value"] >= v["target"] if v["op"] == ">=" else v["value"] <= v["target"])
        targets[loop] = t
    return {"added": added, "breakdown": breakdown, "max_rps": max_rps, "targets": targets}


def print_summary(d: dict) -> None:  # type: ignore[type-arg]
    print("\nadded latency vs direct:")
    for rate, per in d["added"].items():
        print(f"  {rate:>5} req/s  " + "   ".join(f"{p} p50 +{v['p50_added_ms']:.3f} p99 +{v['p99_added_ms']:.3f}" for p, v in per.items()))
    print("where the gateway's p50 goes (medians of its Server-Timing phases, ms):")
    for loop, per in d["breakdown"].items():
        for rate, b in per.items():
            print(f"  {loop:8s} {rate:>5} req/s  " + "  ".join(f"{k} {v}" for k, v in b.items()))
    print("max req/s: " + "  ".join(f"{p} {v}" for p, v in d["max_rps"].items()))
    for loop, t in d["targets"].items():
        for k, v in t.items():
            print(f"  [{loop}] {k}: {v['value']} ({v['detail']}; target {v['op']} {v['target']}) -> {'met' if v['met'] else 'NOT met'}")


def phase_breakdown(per: dict, gp: str = "gateway") -> dict[str, float]:  # type: ignore[type-arg]
    """The gateway's p50 at one rate, in parts (ms): the HIS <-> gateway hop, its phases and its own code."""
    t = per[gp].get("server_timing_p50_ms") or {}
    if not {"queue", "cloud", "audit", "total"} <= set(t):
        return {}
    p50, direct = per[gp]["latency"]["p50_ms"], per["direct"]["latency"]["p50_ms"]
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


def chart(fixed: dict, max_rps: dict, name: str = "gateway_overhead") -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    rates = list(fixed)
    paths = list(max_rps)
    w = 0.8 / len(paths)
    for ax, q in zip(axes[:2], ("p50_ms", "p99_ms"), strict=True):
        for i, p in enumerate(paths):
            ax.bar([x + (i - (len(paths) - 1) / 2) * w for x in range(len(rates))], [fixed[r][p]["latency"][q] for r in rates], w, label=p)
        ax.set_xticks(range(len(rates)), [f"{r} req/s" for r in rates])
        ax.set_ylabel("ms")
        ax.set_title(f"latency {q[:3]}")
        ax.legend()
    axes[2].bar(paths, [max_rps[p] for p in paths], color=[f"C{i}" for i in range(len(paths))])
    axes[2].tick_params(axis="x", labelrotation=30)
    axes[2].set_title("max req/s (saturation)")
    fig.tight_layout()
    out = RESULTS / f"{name}.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
