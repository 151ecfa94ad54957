"""The gateway's hot-path script call on three Redis clients, side by side in one run.

    python bench/redis_client.py [--calls 3000] [--spaced 400] [--rounds 5] [--loops uvloop,asyncio]

The gateway sends two scripts per business request (admission, the job's end), one batch at a
time (``nhigw.bus.batch.GroupCommit``). They go over ``nhigw.bus.resp.LeanConnection``, a
hand-written RESP connection kept because redis-py's pool probed every connection before each
command. This measures whether the installed redis-py is now close enough to retire it:

- ``lean``: ``LeanScript`` on a ``LeanConnection`` (what the gateway uses);
- ``redis-py single``: ``Redis(single_connection_client=True)`` and ``register_script``: one
  connection, taken once, no pool checkout per command;
- ``redis-py pool``: the default client (a pool, no health checks: ``health_check_interval=0``).

Each client runs EVALSHA of one script with the size of a real admission (a ~2 KB sealed job
and its keys) against a real ``redis-server``: ``--calls`` back to back (client CPU per call from
``time.process_time``, which other work on the machine does not inflate, and the wall p50), then
``--spaced`` calls 4 ms apart (as at 200 req/s: the process sleeps between calls, so each call's
wake-ups are on the request's critical path) for their p50 and p99. Rounds rotate the order of
the clients; each figure is the median of the rounds. Every event loop of ``--loops`` in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Services, pct, write_result  # noqa: E402

# The shape of the admission script: a marker set NX with a TTL, an entry added to a stream.
SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'job', ARGV[3])
  return 1
end
return 0
"""
JOB = os.urandom(1500).hex()[:2200]  # ~ a sealed QueuedJob of a pass-through Register


def clients(redis_url: str) -> dict[str, Callable[[], Any]]:
    """name -> a factory of (script callable, close coroutine function)."""
    import redis.asyncio as aioredis

    from nhigw.bus.resp import lean_script

    def lean() -> tuple[Any, Callable[[], Awaitable[None]]]:
        base = aioredis.Redis.from_url(redis_url)
        s = lean_script(base, SCRIPT)

        async def close() -> None:
            await s.aclose()
            await base.aclose()

        return s, close

    def single() -> tuple[Any, Callable[[], Awaitable[None]]]:
        r = aioredis.Redis.from_url(redis_url, single_connection_client=True)
        return r.register_script(SCRIPT), r.aclose

    def pool() -> tuple[Any, Callable[[], Awaitable[None]]]:
        r = aioredis.Redis.from_url(redis_url, health_check_interval=0)
        return r.register_script(SCRIPT), r.aclose

    return {"lean": lean, "redis-py single": single, "redis-py pool": pool}


async def measure(factory: Callable[[], Any], calls: int, spaced: int, prefix: str) -> dict[str, float]:
    script, close = factory()
    n = 0

    async def one() -> None:
        nonlocal n
        n += 1
        r = await script(keys=[f"{prefix}:m:{n}", f"{prefix}:s"], args=[b"fingerprint" * 4, 60_000, JOB])
        assert r == 1, r

    try:
        for _ in range(50):  # connect, load the script, warm up
            await one()
        c0, w0 = time.process_time(), time.perf_counter()
        lat = []
        for _ in range(calls):
            t = time.perf_counter()
            await one()
            lat.append((time.perf_counter() - t) * 1e6)
        cpu_us = (time.process_time() - c0) / calls * 1e6
        wall_us = (time.perf_counter() - w0) / calls * 1e6
        spaced_lat = []
        for _ in range(spaced):
            await asyncio.sleep(0.004)
            t = time.perf_counter()
            await one()
            spaced_lat.append((time.perf_counter() - t) * 1e6)
    finally:
        await close()
    return {
        "cpu_us_per_call": round(cpu_us, 1), "wall_us_per_call": round(wall_us, 1), "back_to_back_p50_us": round(pct(lat, 50), 1),
        "spaced_p50_us": round(pct(spaced_lat, 50), 1), "spaced_p99_us": round(pct(spaced_lat, 99), 1),
    }


def run_loop(loop: str, redis_url: str, a: argparse.Namespace) -> dict[str, Any]:
    from nhigw.common.loop import loop_factory

    factories = clients(redis_url)
    names = list(factories)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        for i in range(a.rounds):
            for name in names[i % len(names):] + names[: i % len(names)]:
                r = runner.run(measure(factories[name], a.calls, a.spaced, f"bench:{loop}:{i}:{name}"))
                runs[name].append(r)
                print(f"  {loop:8s} round {i + 1} {name:16s} {r}", flush=True)
    med = {n: {k: round(statistics.median(r[k] for r in rs), 1) for k in rs[0]} for n, rs in runs.items()}
    lean = med["lean"]
    return {
        "median": med,
        "relative_to_lean": {n: {k: round(v / lean[k], 3) for k, v in m.items() if lean[k]} for n, m in med.items() if n != "lean"},
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--spaced", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loops", default="uvloop,asyncio")
    a = ap.parse_args()
    import redis

    out: dict[str, Any] = {}
    with Services() as svc:
        _proc, redis_url = svc.redis()
        for loop in a.loops.split(","):
            out[loop] = run_loop(loop, redis_url, a)
    for loop, r in out.items():
        for name, m in r["median"].items():
            rel = r["relative_to_lean"].get(name, {})
            print(f"{loop:8s} {name:16s} " + "  ".join(f"{k} {v}" + (f" (x{rel[k]})" if k in rel else "") for k, v in m.items()))
    write_result("redis_client", {
        "setup": f"one process, a real redis-server on loopback; EVALSHA of a script shaped like the admission (SET NX PX + XADD of a ~2 KB job); redis-py {redis.__version__} "
                 f"with hiredis; {a.calls} calls back to back, then {a.spaced} calls 4 ms apart, per client, {a.rounds} rounds in rotating order, medians.",
        "params": {"calls": a.calls, "spaced": a.spaced, "rounds": a.rounds, "loops": a.loops.split(","), "redis_py": redis.__version__},
        "loops": out,
    })


if __name__ == "__main__":
    main()
