"""Real services for the tests: pcscd with vpcd (4 slots), redis-server, nhigw processes.

Nothing here skips: if pcscd, the vpcd driver or redis-server is missing, the
fixture that needs it fails with a message saying what to install
(``scripts/test.sh`` installs them on Debian).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from nhigw.common.logging import processors
from tests.helpers import free_port, wait_port
from tests.pcsc import Pcscd, PcscdError, running_pcscd

pytest_plugins = ["tests.leaks"]  # unclosed resources put against the test that left them


def pytest_configure(config: pytest.Config) -> None:
    # The services' own chain for everything logged in this process (masked, plain tracebacks, no
    # frame locals), not structlog's defaults: a test's output is a log like any other.
    structlog.configure(processors=processors(json=False))


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """The session's pcscd (``tests/pcsc.py``): 4 vpcd slots on ports 35963..35966, its own socket."""
    try:
        with running_pcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
            yield daemon
    except PcscdError as exc:
        pytest.fail(str(exc))


def start_redis(tmp: Path, *, appendonly: bool = False, port: int | None = None, password: str | None = None, unixsocket: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is required: apt-get install redis-server (scripts/test.sh does it)")
    port = port or free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp), "--appendonly", "yes" if appendonly else "no"]
    if password:
        args += ["--requirepass", password]
    if unixsocket:
        args += ["--unixsocket", str(unixsocket), "--unixsocketperm", "700"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port, timeout_s=10, proc=proc)
    return proc, port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def bus_prefix() -> str:
    """A random prefix per test isolates it on the shared Redis (no FLUSHALL)."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def bus_key() -> str:
    from nhigw.bus.seal import Sealer

    return Sealer.new_key_b64()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    d = Path(os.environ.get("NHIGW_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d
