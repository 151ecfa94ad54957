"""Open-loop HTTP load generator (its own process): POSTs pre-made bodies at a fixed rate.

    python bench/loadgen.py --url URL --bodies FILE --rate 200 --duration 5 [--warmup 1]
    python bench/loadgen.py --url URL --bodies FILE --rate 0 --concurrency 64 --duration 5   # saturation
    --url URL1,URL2: round-robin over several targets (gateway replicas)

Fixed rate (open loop): request i is due at ``t0 + i / rate`` whatever happened to the
ones before, and its latency is counted from that due time, so a stall shows as
latency rather than as fewer requests (no coordinated omission). ``--rate 0`` runs
closed loop with ``--concurrency`` workers, as fast as the target answers: the
maximum req/s. The first ``--warmup`` seconds are sent but not counted. Prints one
JSON object: counts by status, the latency summary and the achieved rate, and where the
target sends a ``Server-Timing`` header (the gateway does), the p50 of each of its phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp


def _code(payload: bytes) -> int | None:
    """The answer's statusCode (0 when it has none), None when it is not a JSON object."""
    try:
        d = json.loads(payload)
    except ValueError:
        return None
    return d.get("statusCode", 0) if isinstance(d, dict) else None


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


async def run(url: str, bodies: list[bytes], rate: float, duration_s: float, warmup_s: float, concurrency: int) -> dict[str, object]:
    lat_ms: list[float] = []
    phases: dict[str, list[float]] = {}
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    it = iter(bodies)
    urls = url.split(",")  # several targets (replicas): round-robin
    rr = 0
    conn = aiohttp.TCPConnector(limit=max(concurrency, 256), force_close=False)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as http:
        t0 = time.perf_counter()
        t_measure = t0 + warmup_s
        t_end = t_measure + duration_s
        counted_done = 0
        used = 0

        async def one(due: float) -> bool:
            nonlocal counted_done, used, rr
            body = next(it, None)
            if body is None:
                statuses["no-body"] += 1
                return False
            used += 1
            target = urls[rr % len(urls)]
            rr += 1
            try:
                async with http.post(target, data=body, headers=headers) as r:
                    payload = await r.read()
                    st = str(r.status)
                    timing = r.headers.get("Server-Timing", "")
            except (aiohttp.ClientError, TimeoutError) as exc:
                st, payload, timing = type(exc).__name__, b"", ""
            end = time.perf_counter()
            if st == "200" and _code(payload) not in (0, None):
                st = "200 refused"  # a 6.0 refusal is HTTP 200 too (its code is counted below)
            if due >= t_measure:
                counted_done += 1
                lat_ms.append((end - due) * 1000)
                statuses[st] += 1
                if st == "200" and timing:
                    for part in timing.split(","):
                        name, _, dur = part.strip().partition(";dur=")
                        phases.setdefault(name, []).append(float(dur))
                if st != "200" and payload:
                    code = _code(payload)
                    codes["?" if code is None else str(code)] += 1
            return True

        if rate > 0:
            tasks = []
            i = 0
            while True:
                due = t0 + i / rate
                if due >= t_end:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(due)))
                i += 1
            await asyncio.gather(*tasks)
        else:

            async def worker() -> None:
                while True:
                    now = time.perf_counter()
                    if now >= t_end:
                        return
                    if not await one(now):
                        return  # out of pre-made bodies: never reuse one (the target would refuse it)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t_measure
    return {
        "url": url,
        "rate": rate,
        "concurrency": concurrency if rate <= 0 else None,
        "duration_s": duration_s,
        "counted": counted_done,
        "bodies_used": used,
        "ok": statuses.get("200", 0),
        "statuses": dict(statuses),
        "error_codes": dict(codes),
        "achieved_rps": round(counted_done / wall, 1) if wall > 0 else 0.0,
        "ok_rps": round(statuses.get("200", 0) / wall, 1) if wall > 0 else 0.0,
        "latency": {
            "p50_ms": round(pct(lat_ms, 50), 3),
            "p90_ms": round(pct(lat_ms, 90), 3),
            "p99_ms": round(pct(lat_ms, 99), 3),
            "max_ms": round(max(lat_ms), 3) if lat_ms else 0.0,
        },
        "server_timing_p50_ms": {k: round(pct(v, 50), 3) for k, v in phases.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--bodies", required=True)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--skip", type=int, default=0, help="start at this line of --bodies")
    a = ap.parse_args()
    lines = Path(a.bodies).read_bytes().splitlines()[a.skip :]
    out = asyncio.run(run(a.url, lines, a.rate, a.duration, a.warmup, a.concurrency))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
