"""The simulator as an NHI cloud on HTTPS under a private CA (tests of --cloud-ca, nhigw doctor)."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from nhigw.common.tls import LocalCA
from nhigw.sim.app import create_app as sim_app
from nhigw.sim.store import SimStore
from tests.helpers import site_url, start_site


@contextlib.asynccontextmanager
async def https_cloud(store: SimStore, ca_dir: Path, sock: socket.socket | None = None) -> AsyncIterator[tuple[str, Path]]:
    """The simulator on HTTPS (on ``sock``, or a port of the kernel's choice), its certificate (127.0.0.1,
    localhost) signed by a CA of its own; yields (URL, the CA file)."""
    ca = LocalCA(ca_dir, "private-cloud-ca")
    ca.ensure()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.load_into(ctx)
    runner = await start_site(sim_app(store), sock=sock, ssl_context=ctx)
    try:
        yield site_url(runner, "https"), ca.ca_path
    finally:
        await runner.cleanup()
