"""The simulator as an NHI cloud on HTTPS under a private CA (tests of --cloud-ca, nhigw doctor)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from nhigw.common.http import runner as http_runner
from nhigw.common.tls import LocalCA
from nhigw.sim.app import create_app as sim_app
from nhigw.sim.store import SimStore
from tests.helpers import free_port


@contextlib.asynccontextmanager
async def https_cloud(store: SimStore, ca_dir: Path, port: int | None = None) -> AsyncIterator[tuple[str, Path]]:
    """The simulator on HTTPS, its certificate (127.0.0.1, localhost) signed by a CA of its own; yields (URL, the CA file)."""
    ca = LocalCA(ca_dir, "private-cloud-ca")
    ca.ensure()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.load_into(ctx)
    port = port or free_port()
    runner = http_runner(sim_app(store))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    try:
        yield f"https://127.0.0.1:{port}", ca.ca_path
    finally:
        await runner.cleanup()
