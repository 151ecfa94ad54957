"""The gateways of two (or more) source trees side by side, beside one bare proxy, in one run.

    python bench/gateway_ab.py --tree base=/tmp/base --tree after=.   # e.g. /tmp/base from `git archive 7b1b544`

``gateway_overhead.py`` compares one gateway with the bare proxy; two of its runs made at different
times are not comparable on a machine whose speed varies 2-3x with other work on its host (its speed
check says by how much). Here every tree's gateway and the proxy run in the same rounds, interleaved
in rotating order, at saturation (closed loop, 64 workers), each on a fresh simulator: the CPU per
request and the maximum req/s of each gateway against the proxy of the same round, per event loop.
Setup as in ``gateway_overhead.py``: real processes, a real Redis (a prefix per gateway), signed
pass-through bodies, every service logging at WARNING.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from common import Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, loop_ns, write_result


def shim(src: str) -> str:
    """A PYTHONPATH entry whose ``nhigw`` is ``src``'s services/nhigw (the tree's own services, this harness's tests)."""
    d = Path(tempfile.mkdtemp(prefix="nhigw-ab-"))
    (d / "nhigw").symlink_to(Path(src).resolve() / "services" / "nhigw")
    return str(d)


def commit_of(src: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=src)
    return out.stdout.strip() if out.returncode == 0 else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", action="append", required=True, help="NAME=PATH of a source tree (NAME=PATH@COMMIT to name the commit of a tree that is not a git checkout)")
    ap.add_argument("--loops", default="uvloop,asyncio")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--name", default="gateway_ab")
    a = ap.parse_args()
    trees: dict[str, tuple[str, str]] = {}
    for t in a.tree:
        name, _, rest = t.partition("=")
        path, _, commit = rest.partition("@")
        trees[name] = (path, commit or commit_of(path))
    loops = a.loops.split(",")
    speed0 = loop_ns()
    out: dict[str, Any] = {"trees": {n: c for n, (_, c) in trees.items()}, "loops": {}}
    with Services() as svc:
        _r, redis_url = svc.redis()
        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = [svc.nhigw("sim", ["sim", "--port", str(sim_port)])]
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for lp in loops:
            pp = free_port()
            proxy = svc.python(f"proxy-{lp}", ["bench/proxy.py", "--port", str(pp), "--upstream", sim_url], port=pp, env={"NHIGW_LOOP": lp})
            urls[f"proxy/{lp}"], pids[f"proxy/{lp}"] = f"http://127.0.0.1:{pp}/api/v1/BasicData/Register", proxy.pid
            for name, (path, _) in trees.items():
                gp = free_port()
                gw = svc.nhigw(f"gw-{name}-{lp}", gateway_args(gp, sim_url, redis_url, prefix=f"ab-{name}-{lp}"), env={"NHIGW_LOOP": lp, "PYTHONPATH": shim(path)})
                urls[f"{name}/{lp}"], pids[f"{name}/{lp}"] = f"http://127.0.0.1:{gp}/api/v1/BasicData/Register", gw.proc.pid
        maker = SigMaker()
        maker.register(sim_url)
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", int((a.duration + 1) * 6000))
        runs = 0
        for lp in loops:
            paths = [f"proxy/{lp}", *(f"{n}/{lp}" for n in trees)]
            res: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
            for r in range(a.rounds):
                for p in paths[r % len(paths):] + paths[: r % len(paths)]:
                    sim[0].stop()
                    svc.procs.remove(sim[0])
                    runs += 1
                    sim[0] = svc.nhigw(f"sim-{runs}", ["sim", "--port", str(sim_port)])  # fresh: the same signed bodies are new to it
                    maker.register(sim_url)
                    c0 = cpu_s(pids[p])
                    got = loadgen(urls[p], bodies, rate=0, duration_s=a.duration, warmup_s=0.5)
                    cpu = (cpu_s(pids[p]) - c0) / max(got["bodies_used"], 1) * 1e6
                    res[p].append((cpu, got["achieved_rps"]))
                    print(f"  {p:18s} cpu/req={cpu:7.1f} µs  req/s={got['achieved_rps']:7.1f}  non-200={got['counted'] - got['ok']}", flush=True)
            proxy_cpu = statistics.median(c for c, _ in res[f"proxy/{lp}"])
            per: dict[str, Any] = {"proxy": {"cpu_us_per_req": round(proxy_cpu, 1), "max_rps": round(statistics.median(x for _, x in res[f"proxy/{lp}"]), 1)}}
            for n in trees:
                rs = res[f"{n}/{lp}"]
                ratios = [g[1] / p[1] for g, p in zip(rs, res[f"proxy/{lp}"], strict=True)]  # against the proxy of the same round
                cpu = statistics.median(c for c, _ in rs)
                per[n] = {"cpu_us_per_req": round(cpu, 1), "cpu_ratio": round(cpu / proxy_cpu, 3), "max_rps": round(statistics.median(x for _, x in rs), 1),
                          "rps_ratio": round(statistics.median(ratios), 3), "rps_ratio_rounds": [round(x, 2) for x in ratios]}
                print(f"[{lp}] {n}: CPU per request {cpu:.0f} µs = x{cpu / proxy_cpu:.3f} the proxy's; max req/s x{statistics.median(ratios):.3f} the proxy's (rounds {per[n]['rps_ratio_rounds']})")
            out["loops"][lp] = per
    out["python_loop_ns"] = [speed0, loop_ns()]
    out["params"] = {"rounds": a.rounds, "duration_s": a.duration, "concurrency": 64}
    out["setup"] = ("one bare proxy and the gateway of each tree per event loop, separate processes beside one simulator (restarted before each measurement) and one "
                    "real Redis; saturation, closed loop, 64 workers; the trees' gateways and the proxy interleaved in rotating order within each round; medians of the rounds.")
    write_result(a.name, out)


if __name__ == "__main__":
    main()
