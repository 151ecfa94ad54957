"""Benchmark 5: soak — a steady rate through the gateway for a long time (on demand, not in CI).

    python bench/soak.py --duration 1800 --rate 100     # the full soak: 30 minutes
    python bench/soak.py --duration 60                  # the short version

Sim, gateway (real Redis, queue and audit as in production) and redis-server as
processes; the open-loop load generator sends signed pass-through ``BasicData/Register``
bodies at ``--rate`` for ``--duration``. Every 5 s the bench samples each process's RSS
and open file descriptors (psutil). Reported: growth of both from the first sample after
warm-up to the end, the errors, the latency. Bodies are signed before the run
(~0.2 ms each: 180,000 for the full soak, ~40 s).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, RESULTS, ROOT, Services, SigMaker, free_port, gateway_args, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--sample-s", type=float, default=5.0)
    a = ap.parse_args()
    import psutil

    with Services() as svc:
        redis_proc, redis_url = svc.redis()
        sim_port, gw_port = free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = svc.nhigw("sim", ["sim", "--port", str(sim_port)])
        gw = svc.nhigw("gateway", gateway_args(gw_port, sim_url, redis_url))
        maker = SigMaker()
        maker.register(sim_url)
        n = math.ceil((a.duration + 2) * a.rate) + 100
        print(f"signing {n} bodies ...", flush=True)
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", n)
        procs = {"gateway": psutil.Process(gw.proc.pid), "sim": psutil.Process(sim.proc.pid), "redis": psutil.Process(redis_proc.pid)}
        samples: list[dict] = []  # type: ignore[type-arg]
        done = threading.Event()

        def sampler() -> None:
            t0 = time.monotonic()
            while not done.is_set():
                row: dict[str, object] = {"t_s": round(time.monotonic() - t0, 1)}
                for name, p in procs.items():
                    row[name] = {"rss_mib": round(p.memory_info().rss / 1048576, 1), "fds": p.num_fds()}
                samples.append(row)
                done.wait(a.sample_s)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        args = [PY, str(ROOT / "bench" / "loadgen.py"), "--url", f"http://127.0.0.1:{gw_port}/api/v1/BasicData/Register", "--bodies", str(bodies),
                "--rate", str(a.rate), "--duration", str(a.duration), "--warmup", "1"]
        res = json.loads(subprocess.run(args, capture_output=True, check=True, cwd=ROOT, timeout=a.duration + 600).stdout)
        done.set()
        th.join(10)
        gw_log = gw.log()
    warm = next((s for s in samples if float(s["t_s"]) >= min(10.0, a.duration / 4)), samples[0])  # type: ignore[arg-type]
    end = samples[-1]
    per = {
        name: {"rss_start": warm[name]["rss_mib"], "rss_end": end[name]["rss_mib"], "fds_start": warm[name]["fds"], "fds_end": end[name]["fds"]}  # type: ignore[index]
        for name in procs
    }
    errors = {k: v for k, v in res["statuses"].items() if k != "200"}
    tracebacks = gw_log.count("Traceback")
    for name, p in per.items():
        print(f"  {name:8s} RSS {p['rss_start']} -> {p['rss_end']} MiB ({p['rss_end'] - p['rss_start']:+.1f}); open files {p['fds_start']} -> {p['fds_end']}")
    print(f"  requests {res['counted']}, OK {res['ok']}, errors {errors or 0}; p50 {res['latency']['p50_ms']} ms, p99 {res['latency']['p99_ms']} ms; tracebacks in the gateway log: {tracebacks}")
    write_result("soak", {
        "setup": "sim, gateway (real Redis, queue + audit) and redis-server as processes; open-loop signed pass-through BasicData/Register at a fixed rate; RSS and open fds sampled every 5 s (growth measured from the first sample after 10 s)",
        "params": {"duration_s": a.duration, "rate": a.rate},
        "processes": per,
        "requests": res["counted"], "ok": res["ok"], "errors": errors or 0, "latency": res["latency"],
        "gateway_log_tracebacks": tracebacks,
        "samples": samples,
    })
    chart(samples)


def chart(samples: list[dict]) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] for s in samples]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in ("gateway", "sim", "redis"):
        a1.plot(t, [s[name]["rss_mib"] for s in samples], label=name)
        a2.plot(t, [s[name]["fds"] for s in samples], label=name)
    a1.set_title("RSS (MiB)")
    a2.set_title("open file descriptors")
    for ax in (a1, a2):
        ax.set_xlabel("s")
        ax.legend()
    fig.tight_layout()
    out = RESULTS / "soak.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
