"""``nhigw compat``: the compatibility service (csHis functions and VHC SDK 2.x routes), HTTPS 127.0.0.1:5067.

Settings: ``--agent`` (the workstation's agent, default ``https://127.0.0.1:5066``),
``--cloud`` (where business calls go: the gateway for pass-through and audit, the NHI
cloud, or the simulator; default the simulator ``http://127.0.0.1:8068``), ``--api-key``
(a gateway HIS-client key; better ``--api-key-file`` or ``NHIGW_API_KEY[_FILE]``, not shown in
``ps``), ``--close-com-finalizes``, ``--allow-non-loopback`` (compat has no authentication: it
refuses a non-loopback ``--host`` without it). Environment: ``NHIGW_AGENT_URL``,
``NHIGW_CLOUD_URL``, ``NHIGW_API_KEY``. The TLS certificate is made on first start in compat's
data directory and signed by the agent's local CA (``<data dir>/agent/ca.crt``, made here if the
agent has not started yet; ``nhigw.common.tls``), so ``nhigw agent trust`` makes browsers trust
compat too; it is renewed while compat runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_AGENT_URL = "https://127.0.0.1:5066"
DEFAULT_CLOUD_URL = "http://127.0.0.1:8068"


def add_compat_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None], unauthenticated: Callable[[argparse.ArgumentParser], None]) -> None:
    sp = sub.add_parser("compat", help="csHis / VHC SDK 2.x compatibility service (HTTPS 5067)")
    common(sp)
    unauthenticated(sp)
    sp.add_argument("--port", type=int, default=5067)
    sp.add_argument("--agent", help=f"the workstation's agent URL (default {DEFAULT_AGENT_URL})")
    sp.add_argument("--cloud", help=f"business API URL: gateway, NHI cloud or simulator (default {DEFAULT_CLOUD_URL})")
    sp.add_argument("--cloud-ca", metavar="FILE", help="PEM CA bundle trusted for --cloud (or NHIGW_CLOUD_CA); default: the system's store")
    sp.add_argument("--api-key", help="HIS client key for a gateway started with --clients")
    sp.add_argument("--api-key-file", help="file holding the HIS client key (or NHIGW_API_KEY / NHIGW_API_KEY_FILE): not visible in ps")
    sp.add_argument("--close-com-finalizes", action="store_true", help="csCloseCom calls Finalize (default: keep the device and SAM verification)")
    sp.add_argument("--no-tls", action="store_true", help="serve plain HTTP (tests only)")


def build_from_args(args: argparse.Namespace, *, agent_url: str | None = None, cloud_url: str | None = None) -> Any:
    from nhigw.common import cloudtls
    from nhigw.common.guard import bind_hosts
    from nhigw.compat.app import build

    return build(
        agent_url or getattr(args, "agent", None) or DEFAULT_AGENT_URL,  # flags over environment: resolved by ``nhigw.cli``
        cloud_url or getattr(args, "cloud", None) or DEFAULT_CLOUD_URL,
        api_key=getattr(args, "api_key", None),
        close_com_finalizes=bool(getattr(args, "close_com_finalizes", False)),
        allowed_hosts=bind_hosts(getattr(args, "host", "127.0.0.1")),
        cloud_tls=cloudtls.from_args(args),
    )


async def cmd_compat(args: argparse.Namespace, data_dir: Path, *, ca_dir: Path | None = None) -> None:
    """``ca_dir``: the agent's data directory, whose CA signs compat's certificate."""
    import asyncio
    import contextlib

    from nhigw.common.serve import Site, refuse_non_loopback, serve
    from nhigw.common.tls import CertKeeper

    refuse_non_loopback(args, "compat")
    keeper = None if args.no_tls else CertKeeper(data_dir, getattr(args, "workstation", None), ca_dir=ca_dir)
    renewal: list[asyncio.Task[None]] = []

    async def started() -> None:
        if keeper is not None:
            renewal.append(asyncio.create_task(keeper.run(), name="tls-renewal-compat"))

    async def stopping() -> None:
        for t in renewal:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    await serve([Site(build_from_args(args), args.host, args.port, keeper.context if keeper else None, label="compat")], on_started=started, on_stop=stopping)
