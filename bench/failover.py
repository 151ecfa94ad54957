"""The Sentinel failover drill of ``tests/test_failover_drill.py``, run several times in each mode.

    python bench/failover.py [--runs 3]

Each run: a primary, a replica and three ``redis-sentinel``, two gateway processes, an agent and
the simulator; signed writes at 20/s, each with its own ``Idempotency-Key``; the primary SIGKILLed
after 3 s; the old primary back as a replica of the promoted one. Per run: the writes, executions
per key at the simulator beside what the HIS was told (and what the key answers afterwards), the
time from the kill to the promotion and to the first request sent after the kill that was answered.
Runs alternate between replica waiting on (``--replica-wait 1``) and off, so both see the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import write_result  # noqa: E402

KEEP = ("writes", "table", "acknowledged_then_lost", "answer_changed", "ok_contradicted", "executed_twice", "twice_by_content", "no_final_answer",
        "told_9403_not_executed", "kill_to_promoted_s", "kill_to_first_answer_s", "promoted_to_failover_over_s", "restart_to_linked_s", "agent_online_again", "old_primary_client_writes", "audit_verify_http")


def main() -> None:
    from tests.test_failover_drill import run_drill

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="runs per mode")
    a = ap.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for i in range(a.runs):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            with tempfile.TemporaryDirectory(prefix=f"failover-{mode}-") as tmp:
                r = asyncio.run(run_drill(Path(tmp), mode == "on"))
            runs[mode].append({k: r[k] for k in KEEP})
    summary = {}
    for mode, rs in runs.items():
        first = [r["kill_to_first_answer_s"] for r in rs if r["kill_to_first_answer_s"] is not None]
        summary[mode] = {
            "runs": len(rs),
            "writes": [r["writes"] for r in rs],
            "acknowledged_then_lost": [r["acknowledged_then_lost"] for r in rs],
            "answer_changed": [r["answer_changed"] for r in rs],
            "executed_once_told_9403": [r["table"].get("executed 1, told 9403", 0) for r in rs],
            "executed_twice": [r["executed_twice"] for r in rs],
            "told_9403_not_executed": [r["told_9403_not_executed"] for r in rs],
            "kill_to_promoted_s": [r["kill_to_promoted_s"] for r in rs],
            "kill_to_first_answer_s": first,
            "kill_to_first_answer_median_s": round(statistics.median(first), 2) if first else None,
        }
        print(f"replica wait {mode}: {summary[mode]}")
    write_result("failover_drill", {
        "setup": "tests/test_failover_drill.py run_drill: primary + replica + 3 redis-sentinel (down-after 1000 ms), 2 gateway processes (--claim-idle-s 1), a virtual-card agent, the simulator; signed EmergentTel/Write at 20/s, one Idempotency-Key and one content each, the HIS asking again on a dropped connection, 9402 or 9408; primary SIGKILLed after 3 s; the old primary restarted as a replica of the promoted one once every sentinel names it with the failover over, the sentinels on down-after 5000 ms from then on.",
        "params": {"runs_per_mode": a.runs},
        "runs": runs,
        "summary": summary,
    })


if __name__ == "__main__":
    main()
