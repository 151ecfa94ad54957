"""Benchmark 2: the card path over a real pcscd + vpcd — APDUs and time per operation.

    python bench/card_path.py [--reps 50]

Starts the tests' own pcscd (``tests/pcsc.py``: two vpcd readers, 4 slots, a socket of its own,
the same machine-wide lock), puts a
virtual SAM, HC and HPC into slots 0-2 (``VpcdLink``), and drives the agent's state
machine (``nhigw.agent.core.Agent`` on ``PcscBackend``, i.e. pyscard) in this process.
The simulator's DC runs in-process on loopback HTTP for SAM verification.

APDUs per operation are counted twice and must agree: on the agent's side (the
``apdu_count`` of every open ``PcscConnection``) and on the cards' side (each
``VirtualCard.apdu_count``). Times are wall-clock per call, p50 / p99 over ``--reps``.
The floor is one bare APDU (GET CHALLENGE) through pcscd.

Targets: HC basic data <= 2 APDUs on first read, 0 when cached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, summary_ms, write_result  # noqa: E402


@contextlib.contextmanager
def pcscd(tmp: Path) -> Iterator[list[int]]:
    """The tests' own pcscd (``tests/pcsc.py``): 4 vpcd slots, its own socket, the machine-wide lock."""
    from tests.pcsc import PcscdError, running_pcscd

    try:
        with running_pcscd(tmp) as daemon:
            yield daemon.ports
    except PcscdError as exc:
        sys.exit(str(exc))


async def run(reps: int) -> dict:  # type: ignore[type-arg]
    from aiohttp import web

    from nhigw.agent.cardio import PcscBackend
    from nhigw.agent.core import Agent
    from nhigw.agent.dc import DcClient
    from nhigw.contracts.models import SignatureKind
    from nhigw.sim.app import create_app as sim_app
    from nhigw.sim.store import SimStore
    from nhigw.vcard.bank import CardFactory
    from nhigw.vcard.cards import SamCard
    from nhigw.vcard.identities import Identities, KeyStore
    from nhigw.vcard.vpcd import VpcdLink

    factory = CardFactory(Identities.load(), KeyStore(None))
    cards = [factory.make(s) for s in factory.default_specs()]  # SAM, HC, HPC
    sam = cards[0]
    assert isinstance(sam, SamCard)
    store = SimStore.seeded()
    store.register_sam(sam.ident.samId, sam.ident.hospitalId, factory.keys.public_pem(sam.ident.samId))
    runner = web.AppRunner(sim_app(store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]  # the kernel's choice, read back
    links = [VpcdLink(c, port=35963 + i) for i, c in enumerate(cards)]
    for link in links:
        await link.insert()
    agent = Agent(backend=PcscBackend(), dc=DcClient(f"http://127.0.0.1:{port}"), workstation="bench")
    results: dict[str, dict] = {}  # type: ignore[type-arg]

    def agent_apdus() -> int:
        return sum(s.conn.apdu_count for s in agent.slots.values())

    def card_apdus() -> int:
        return sum(c.apdu_count for c in cards)

    async def op(name: str, fn: Callable[[], Awaitable[object]], n: int, before: Callable[[], Awaitable[object]] | None = None) -> None:
        times: list[float] = []
        apdus_agent: list[int] = []
        apdus_card: list[int] = []
        for _ in range(n):
            if before:
                await before()
            a0, c0 = agent_apdus(), card_apdus()
            t = time.perf_counter()
            await fn()
            times.append((time.perf_counter() - t) * 1000)
            apdus_agent.append(agent_apdus() - a0)
            apdus_card.append(card_apdus() - c0)
        per = {"apdus": max(apdus_agent), "apdus_card_side": max(apdus_card), "apdus_min": min(apdus_agent), **summary_ms(times)}
        results[name] = per
        print(f"  {name:34s} APDUs {per['apdus']} (card side {per['apdus_card_side']})  p50 {per['p50_ms']:8.3f} ms  p99 {per['p99_ms']:8.3f} ms", flush=True)

    try:
        # Wait for pcscd to see the three cards.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pres = await agent.backend.presence()
            if sum(1 for v in pres.values() if v) >= 3:
                break
            await asyncio.sleep(0.1)
        c0 = card_apdus()
        t = time.perf_counter()
        await agent.initial(None)
        results["Initial (connect + identify 3 cards)"] = {"apdus": agent_apdus(), "apdus_card_side": card_apdus() - c0, **summary_ms([(time.perf_counter() - t) * 1000])}
        print(f"  {'Initial (connect + identify 3)':34s} APDUs {agent_apdus()} (card side {card_apdus() - c0})", flush=True)
        hc_conn = agent.slots["hc"].conn
        await op("bare APDU (GET CHALLENGE, floor)", lambda: hc_conn.transmit(bytes.fromhex("0084000008")), reps)
        async def sam_logout_if_verified() -> None:
            if agent.sam_verified:
                await agent.sam_logout()

        await op("SAM verification (DC round trip)", agent.sam_verify, max(5, reps // 5), before=sam_logout_if_verified)
        async def forget_hc() -> None:
            agent.hc_cache = None  # as after the HC is put in: its data not read yet

        await op("HC basic data, first read", agent.hc_basic, reps, before=forget_hc)
        await op("HC basic data, cached", agent.hc_basic, reps)
        await op("HPC PIN verify", lambda: agent.hpc_verify_pin("12345678"), reps)
        await op("signature SAM", lambda: agent.sign(SignatureKind.SAM, "01"), reps)
        await op("signature HC (HC cached)", lambda: agent.sign(SignatureKind.HC, "01"), reps)
        await op("signature HC (HC data not read yet)", lambda: agent.sign(SignatureKind.HC, "01"), reps, before=forget_hc)
        await op("signature HPC", lambda: agent.sign(SignatureKind.HPC, "01"), reps)
        await op("signature HPC+HC", lambda: agent.sign(SignatureKind.HPCHC, "01"), reps)
    finally:
        await agent.stop()
        for link in links:
            await link.remove()
        await runner.cleanup()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    a = ap.parse_args()
    import tempfile

    from nhigw.common.logging import configure

    configure("WARNING")

    with tempfile.TemporaryDirectory(prefix="nhigw-bench-pcsc-") as tmp, pcscd(Path(tmp)):
        results = asyncio.run(run(a.reps))
    first = results["HC basic data, first read"]["apdus"]
    cached = results["HC basic data, cached"]["apdus"]
    targets = {
        "HC basic data APDUs, first read": {"value": first, "target": 2, "met": first <= 2},
        "HC basic data APDUs, cached": {"value": cached, "target": 0, "met": cached == 0},
    }
    agree = all(r["apdus"] == r["apdus_card_side"] for r in results.values())
    floor = results["bare APDU (GET CHALLENGE, floor)"]["p50_ms"]
    for r in results.values():
        r["x_floor"] = round(r["p50_ms"] / floor, 1) if floor else None
    for k, v in targets.items():
        print(f"  target {k}: {v['value']} (<= {v['target']}) -> {'met' if v['met'] else 'NOT met'}")
    print(f"  agent-side and card-side APDU counts agree: {agree}")
    write_result("card_path", {"setup": "own pcscd, 2 vpcd readers (4 slots); SAM, HC, HPC virtual cards over vpcd TCP in the bench process; agent state machine on pyscard (one PC/SC worker thread); simulator DC in-process", "params": {"reps": a.reps}, "operations": results, "counts_agree": agree, "targets": targets})
    chart(results)


def chart(results: dict) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results if not n.startswith("Initial")]
    fig, ax1 = plt.subplots(figsize=(11, 4.5))
    x = range(len(names))
    ax1.bar([i - 0.2 for i in x], [results[n]["p50_ms"] for n in names], 0.4, label="p50 ms", color="C0")
    ax1.set_ylabel("ms (p50)")
    ax2 = ax1.twinx()
    ax2.bar([i + 0.2 for i in x], [results[n]["apdus"] for n in names], 0.4, label="APDUs", color="C1")
    ax2.set_ylabel("APDUs")
    ax1.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    ax1.set_title("card path over pcscd + vpcd: time and APDUs per operation")
    fig.legend(loc="upper left")
    fig.tight_layout()
    out = RESULTS / "card_path.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
