"""Benchmark: what streaming the audit to a syslog receiver costs a gateway replica.

    python bench/audit_syslog.py [--duration 5] [--rounds 3]

Two ``nhigw gateway`` processes on one Redis (their own prefixes) and one simulator, side by side
in the same run: one with ``--audit-syslog tcp://...`` to a real rsyslogd (its own process and
configuration, writing each message to a file), one without. Rounds alternate between them; each
round is a closed loop (64 workers) of signed pass-through ``BasicData/Register`` bodies (the
simulator restarted before each, so the bodies are fresh). Reported: req/s, p50/p99, gateway CPU
per request, and how many audit messages rsyslog wrote for the streaming replica's requests.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Services, SigMaker, cpu_s, free_port, gateway_args, loadgen, wait_port, write_result  # noqa: E402


def rsyslogd(svc: Services) -> tuple[subprocess.Popen[bytes], int, Path]:
    exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    d = svc.tmp / "rsyslog"
    d.mkdir()
    port, out = free_port(), d / "atna.log"
    conf = d / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{d}" maxMessageSize="64k")\nmodule(load="imtcp")\n'
        'template(name="raw" type="string" string="%rawmsg%\\n")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="atna")\n'
        f'ruleset(name="atna") {{ action(type="omfile" file="{out}" template="raw") }}\n'
    )
    log = open(d / "rsyslogd.log", "wb")
    proc = subprocess.Popen([exe, "-n", "-f", str(conf), "-i", str(d / "rsyslogd.pid")], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    svc.raw.append(proc)
    wait_port(port, proc=proc)
    return proc, port, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    from nhigw.bus.seal import Sealer

    runs = []
    with Services() as svc:
        _r, redis_url = svc.redis()
        _rs, rs_port, rs_out = rsyslogd(svc)
        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = svc.nhigw("sim", ["sim", "--port", str(sim_port)])
        maker = SigMaker()
        key = Sealer.new_key_b64()
        ports = {"plain": free_port(), "syslog": free_port()}
        gws = {
            "plain": svc.nhigw("gw-plain", gateway_args(ports["plain"], sim_url, redis_url, prefix="bench-plain", key=key)),
            "syslog": svc.nhigw("gw-syslog", [*gateway_args(ports["syslog"], sim_url, redis_url, prefix="bench-syslog", key=key), "--audit-syslog", f"tcp://127.0.0.1:{rs_port}"]),
        }
        bodies = maker.write_bodies(svc.tmp / "bodies.jsonl", int((a.duration + a.warmup) * 6000))
        n = 0
        for rnd in range(a.rounds):
            for kind in ("plain", "syslog") if rnd % 2 == 0 else ("syslog", "plain"):
                sim.stop()
                svc.procs.remove(sim)
                n += 1
                sim = svc.nhigw(f"sim-{n}", ["sim", "--port", str(sim_port)])
                maker.register(sim_url)
                g = gws[kind]
                cpu0 = cpu_s(g.proc.pid)
                res = loadgen(f"http://127.0.0.1:{ports[kind]}/api/v1/BasicData/Register", bodies, rate=0, duration_s=a.duration, warmup_s=a.warmup, concurrency=a.concurrency)
                res.update(kind=kind, round=rnd, gateway_cpu_us_per_req=round((cpu_s(g.proc.pid) - cpu0) / max(res["bodies_used"], 1) * 1e6, 1))
                runs.append(res)
                print(f"  {kind:6} round={rnd}: {res['ok_rps']} req/s OK, p50 {res['latency']['p50_ms']} ms, p99 {res['latency']['p99_ms']} ms; "
                      f"gateway CPU {res['gateway_cpu_us_per_req']} µs/req", flush=True)
        sent = sum(r["bodies_used"] for r in runs if r["kind"] == "syslog")
        messages = sum(1 for ln in rs_out.read_bytes().split(b"\n")[:-1] if ln) if rs_out.exists() else 0
    summary = {}
    for kind in ("plain", "syslog"):
        rs = [r for r in runs if r["kind"] == kind]
        summary[kind] = {
            "ok_rps": round(statistics.median(r["ok_rps"] for r in rs), 1),
            "latency": {k: round(statistics.median(r["latency"][k] for r in rs), 3) for k in ("p50_ms", "p99_ms")},
            "gateway_cpu_us_per_req": round(statistics.median(r["gateway_cpu_us_per_req"] for r in rs), 1),
        }
    ratio = round(summary["syslog"]["ok_rps"] / summary["plain"]["ok_rps"], 3) if summary["plain"]["ok_rps"] else None
    cpu_ratio = round(summary["syslog"]["gateway_cpu_us_per_req"] / summary["plain"]["gateway_cpu_us_per_req"], 3) if summary["plain"]["gateway_cpu_us_per_req"] else None
    print(f"with / without --audit-syslog: req/s {ratio}, gateway CPU per request {cpu_ratio}; rsyslog wrote {messages} messages for {sent} requests sent")
    write_result("audit_syslog", {
        "setup": "closed loop, 64 workers, signed pass-through BasicData/Register; one replica streaming its audit to a real rsyslogd (TCP), one not, same Redis and sim, rounds alternating; medians",
        "params": {"duration_s": a.duration, "rounds": a.rounds, "concurrency": a.concurrency},
        "runs": summary, "raw": runs, "syslog_over_plain_rps": ratio, "syslog_over_plain_cpu": cpu_ratio,
        "rsyslog_messages": messages, "syslog_requests_sent": sent,
    })


if __name__ == "__main__":
    main()
