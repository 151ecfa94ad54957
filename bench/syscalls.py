"""Socket system calls per request, gateway against the bare proxy, counted by strace.

    python bench/syscalls.py [--requests 200] [--concurrency 64] [--loop asyncio]

The same set-up as ``gateway_overhead.py`` (sim, a bare aiohttp proxy, a gateway on a real Redis,
signed pass-through bodies) on one event loop. For each server, ``strace -f -yy`` is attached while
``--requests`` requests are sent one at a time, then as many ``--concurrency`` at once; every read,
write (and its bytes) and ``epoll_wait`` is counted by the peer it went to (HIS, the simulator, Redis, other), minus
what the process does when idle over as long (its timers: presence, worker loop, keep-alive). On this
kind of VM a loopback send runs the receiver's TCP stack inside the sender's syscall, so the number
of socket writes per request is what the CPU per request follows (docs/benchmarks.md, profile).
strace slows the traced process: the counts are exact, its timings are not (none are reported).

Then, without strace, where each server's CPU goes at saturation (the load generator, closed loop,
``--concurrency`` workers, ``--rounds`` interleaved runs of ``--duration`` s): user and system CPU per
request (psutil). System time is what socket calls cost the process itself (the kernel's TCP work on
loopback included); user time is its Python (and C-extension) work.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from common import Services, SigMaker, free_port, gateway_args, loadgen, write_result  # noqa: E402

CALLS = "write,writev,sendto,sendmsg,read,readv,recvfrom,recvmsg,epoll_wait"
WRITES = {"write", "writev", "sendto", "sendmsg"}
READS = {"read", "readv", "recvfrom", "recvmsg"}
LINE = re.compile(r"^\d+\s+(\w+)\((\d+)(<\S*>)?")
RESULT = re.compile(r"= (\d+)$")
PEER = re.compile(r"TCP:\[[\d.]+:(\d+)->[\d.]+:(\d+)\]")


def classify(fdinfo: str, ports: dict[int, str], listen: int) -> str:
    m = PEER.search(fdinfo or "")
    if not m:
        return "other"
    local, remote = int(m.group(1)), int(m.group(2))
    if local == listen:
        return "HIS"
    return ports.get(remote, "other")


def count(path: Path, ports: dict[int, str], listen: int) -> collections.Counter[str]:
    """``{peer} {read|write}`` and ``epoll_wait`` counts of one strace output file."""
    c: collections.Counter[str] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        m = LINE.match(line)
        if not m or "resumed>" in line:
            continue
        call, fdinfo = m.group(1), m.group(3) or ""
        if call == "epoll_wait":
            c["epoll_wait"] += 1
        elif call in WRITES or call in READS:
            what = f"{classify(fdinfo, ports, listen)} {'write' if call in WRITES else 'read'}"
            c[what] += 1
            got = RESULT.search(line)
            if got:
                c[f"{what} bytes"] += int(got.group(1))
    return c


def traced(pid: int, out: Path, work: Callable[[], object]) -> float:
    """Run ``work()`` with strace attached to ``pid`` (and its threads) writing to ``out``; returns the seconds it took."""
    st = subprocess.Popen(["strace", "-f", "-yy", "-s", "0", "-qq", "-e", f"trace={CALLS}", "-e", "signal=none", "-o", str(out), "-p", str(pid)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not out.exists() or out.stat().st_size == 0:  # attached once the process wrote its first traced call (its timers do)
        if time.monotonic() > deadline or st.poll() is not None:
            break
        time.sleep(0.02)
    t0 = time.monotonic()
    work()
    took = time.monotonic() - t0
    st.send_signal(signal.SIGINT)
    st.wait(30)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--loop", default="asyncio", help="NHIGW_LOOP for the proxy and the gateway (asyncio, uvloop)")
    ap.add_argument("--rounds", type=int, default=3, help="saturation runs per server for the user / system CPU split")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per saturation run")
    ap.add_argument("--name", default="syscalls")
    a = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("strace is needed (apt-get install strace)")
    results: dict[str, dict[str, dict[str, float]]] = {}
    conns: list[http.client.HTTPConnection] = []
    with Services() as svc:
        _r, redis_url = svc.redis()
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        sim_port, gw_port, proxy_port = free_port(), free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        svc.nhigw("sim", ["sim", "--port", str(sim_port)], env={"NHIGW_LOOP": "asyncio"})
        proxy = svc.python("proxy", ["bench/proxy.py", "--port", str(proxy_port), "--upstream", sim_url], port=proxy_port, env={"NHIGW_LOOP": a.loop})
        gw = svc.nhigw("gateway", gateway_args(gw_port, sim_url, redis_url), env={"NHIGW_LOOP": a.loop})
        maker = SigMaker()
        maker.register(sim_url)
        ports = {sim_port: "cloud", redis_port: "Redis"}
        time.sleep(1.5)  # the gateway's start-up work settles
        for name, pid, port in (("proxy", proxy.pid, proxy_port), ("gateway", gw.proc.pid, gw_port)):
            local = threading.local()  # one keep-alive connection per client thread, as the load generator's pool

            def post(body: bytes, port: int = port, local: threading.local = local) -> None:
                if getattr(local, "conn", None) is None:
                    local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conns.append(local.conn)
                local.conn.request("POST", "/api/v1/BasicData/Register", body=body, headers={"Content-Type": "application/json"})
                resp = local.conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")

            for _ in range(5):  # warm: connections to the cloud and Redis open
                post(maker.body())
            results[name] = {}
            for label, conc in (("one at a time", 1), (f"{a.concurrency} at once", a.concurrency)):
                bodies = [maker.body() for _ in range(a.requests if conc == 1 else a.requests * 2)]
                out = svc.tmp / f"{name}-{conc}.strace"
                with ThreadPoolExecutor(conc) as pool:
                    took = traced(pid, out, lambda bodies=bodies, pool=pool: list(pool.map(post, bodies)))
                idle_out = svc.tmp / f"{name}-{conc}-idle.strace"
                traced(pid, idle_out, lambda took=took: time.sleep(took))
                busy, idle = count(out, ports, port), count(idle_out, ports, port)
                per = {k: round((busy[k] - idle.get(k, 0)) / len(bodies), 2) for k in sorted(busy)}
                per = {k: (round(v) if k.endswith(" bytes") else v) for k, v in per.items()}
                per["socket writes"] = round(sum(v for k, v in per.items() if k.endswith(" write")), 2)
                per["socket reads"] = round(sum(v for k, v in per.items() if k.endswith(" read")), 2)
                per["bytes written"] = sum(v for k, v in per.items() if k.endswith(" write bytes"))
                results[name][label] = per
                print(f"{name:8s} {label:14s} " + ", ".join(f"{k} {v}" for k, v in per.items()), flush=True)
        for c in conns:
            c.close()
        bodies_file = maker.write_bodies(svc.tmp / "bodies.jsonl", int(a.rounds * (a.duration + 0.5) * 4000))
        used = 0
        cpu: dict[str, list[dict[str, float]]] = {"proxy": [], "gateway": []}
        for i in range(a.rounds):
            for name, pid, port in ((("proxy", proxy.pid, proxy_port), ("gateway", gw.proc.pid, gw_port))[:: 1 if i % 2 == 0 else -1]):
                t0 = psutil.Process(pid).cpu_times()
                res = loadgen(f"http://127.0.0.1:{port}/api/v1/BasicData/Register", bodies_file, rate=0, duration_s=a.duration, warmup_s=0.5, concurrency=a.concurrency, skip=used)
                t1 = psutil.Process(pid).cpu_times()
                used += res["bodies_used"]
                n = max(res["bodies_used"], 1)
                cpu[name].append({"user_us": (t1.user - t0.user) / n * 1e6, "system_us": (t1.system - t0.system) / n * 1e6, "req_s": res["ok_rps"]})
                print(f"saturation {name:8s} user {cpu[name][-1]['user_us']:.0f} µs, system {cpu[name][-1]['system_us']:.0f} µs per request, {res['ok_rps']} req/s", flush=True)
    split = {name: {k: round(statistics.median(r[k] for r in runs), 1) for k in ("user_us", "system_us", "req_s")} for name, runs in cpu.items()}
    for name, v in split.items():
        print(f"median {name:8s} user {v['user_us']} µs, system {v['system_us']} µs per request")
    write_result(a.name, {
        "setup": f"strace -f -yy of the bare proxy and the gateway (event loop: {a.loop}) while {a.requests} signed pass-through BasicData/Register are sent one at a time, "
                 f"then {a.requests * 2} {a.concurrency} at once; counts per request, minus the process's own idle calls over as long.",
        "params": {"requests": a.requests, "concurrency": a.concurrency, "loop": a.loop},
        "per_request": results,
        "cpu_at_saturation": split,
        "cpu_runs": cpu,
    })


if __name__ == "__main__":
    main()
