"""Benchmark 4: business requests per second end to end through the Redis Streams queue,
with 1 and 2 gateway replicas.

    python bench/queue_bench.py [--duration 5] [--rounds 2]

Every business request through the gateway is a queue entry (XADD, delivered in the same
admission script to the replica that took it when that one has a free worker slot, else
XREADGROUP by any replica's worker; the upstream call; the audit record, the answer stored,
XACK in one script). The load
generator (its own process, closed loop, 64 workers) sends signed pass-through
``BasicData/Register`` bodies round-robin to the replicas; the simulator is restarted
before each run (so the same signed bodies are fresh) and its ``/test/v1/Stats`` says how
many calls reached it. On 2 cores a second replica shares the same CPU with the first,
the simulator, Redis and the load generator: the figure shows what a second replica
costs or gains on such a machine, not on a larger one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    from nhigw.bus.seal import Sealer

    runs = []
    with Services() as svc:
        _r, redis_url = svc.redis()
        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = svc.nhigw("sim", ["sim", "--port", str(sim_port)])
        maker = SigMaker()
        key = Sealer.new_key_b64()
        ports = [free_port(), free_port()]
        gws = [svc.nhigw(f"gw{i}", gateway_args(ports[i], sim_url, redis_url, prefix="benchq", key=key)) for i in range(2)]
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", int((a.duration + a.warmup) * 6000))
        n = 0
        for rnd in range(a.rounds):
            for replicas in (1, 2):
                sim.stop()
                svc.procs.remove(sim)
                n += 1
                sim = svc.nhigw(f"sim-{n}", ["sim", "--port", str(sim_port)])
                maker.register(sim_url)
                urls = ",".join(f"http://127.0.0.1:{p}/api/v1/BasicData/Register" for p in ports[:replicas])
                cpu0 = [cpu_s(g.proc.pid) for g in gws]
                res = loadgen(urls, bodies, rate=0, duration_s=a.duration, warmup_s=a.warmup, concurrency=a.concurrency)
                with urllib.request.urlopen(sim_url + "/test/v1/Stats", timeout=10) as r:
                    stats = json.loads(r.read())
                res["replicas"] = replicas
                res["round"] = rnd
                res["upstream_calls"] = stats["calls"].get("BasicData/Register", 0)
                res["gateway_cpu_us_per_req"] = round(sum(cpu_s(g.proc.pid) - c for g, c in zip(gws, cpu0, strict=True)) / max(res["bodies_used"], 1) * 1e6, 1)
                runs.append(res)
                print(f"  replicas={replicas} round={rnd}: {res['ok_rps']} req/s OK, p50 {res['latency']['p50_ms']} ms, p99 {res['latency']['p99_ms']} ms; "
                      f"non-200 {res['counted'] - res['ok']}; upstream calls {res['upstream_calls']} for {res['bodies_used']} requests; gateway CPU {res['gateway_cpu_us_per_req']} µs/req", flush=True)
    summary = []
    for replicas in (1, 2):
        rs = [r for r in runs if r["replicas"] == replicas]
        summary.append({
            "replicas": replicas,
            "counted": sum(r["counted"] for r in rs),
            "ok": sum(r["ok"] for r in rs),
            "ok_rps": round(statistics.median(r["ok_rps"] for r in rs), 1),
            "latency": {k: round(statistics.median(r["latency"][k] for r in rs), 3) for k in ("p50_ms", "p99_ms")},
            "upstream_calls": sum(r["upstream_calls"] for r in rs),
            "requests_sent": sum(r["bodies_used"] for r in rs),
            "gateway_cpu_us_per_req": round(statistics.median(r["gateway_cpu_us_per_req"] for r in rs), 1),
        })
    ratio = round(summary[1]["ok_rps"] / summary[0]["ok_rps"], 3) if summary[0]["ok_rps"] else None
    print(f"2 replicas / 1 replica: {ratio}")
    write_result("queue", {
        "setup": "closed loop, 64 workers, signed pass-through BasicData/Register round-robin over the replicas; every request is a Redis Streams entry; sim restarted per run; medians of the rounds",
        "params": {"duration_s": a.duration, "rounds": a.rounds, "concurrency": a.concurrency},
        "runs": summary, "raw": runs, "two_over_one": ratio,
    })
    chart(summary)


def chart(summary: list[dict]) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    labels = [f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}" for s in summary]
    a1.bar(labels, [s["ok_rps"] for s in summary], color=["C0", "C2"])
    a1.set_title("req/s through the queue (200 OK)")
    a2.bar([x + " p50" for x in labels] + [x + " p99" for x in labels], [s["latency"]["p50_ms"] for s in summary] + [s["latency"]["p99_ms"] for s in summary], color=["C0", "C2", "C0", "C2"])
    a2.set_title("latency at saturation (ms)")
    a2.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    out = RESULTS / "queue.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
