"""Real services for the tests: pcscd with vpcd (4 slots), redis-server, nhigw processes.

Nothing here skips: if pcscd, the vpcd driver or redis-server is missing, the
fixture that needs it fails with a message saying what to install
(``scripts/test.sh`` installs them on Debian).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_port

VPCD_LIB = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Our own pcscd with two vpcd readers = 4 slots on ports 35963..35966.

    The second reader loads a *copy* of the vpcd driver: two readers on one copy of
    the library share its slot table and neither sees a card (seen on pcsc-lite 1.9.9).
    """
    exe = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    if exe is None or not VPCD_LIB.exists():
        pytest.fail("pcscd and the vpcd driver are required: apt-get install pcscd vsmartcard-vpcd (scripts/test.sh does it)")
    # pcscd is one per machine: hold a machine-wide lock so two test runs never fight over it.
    lock = open("/tmp/nhigw-pcscd.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    conf = tmp_path_factory.mktemp("reader.conf.d")
    lib2 = conf.parent / "libifdvpcd-b.so"
    shutil.copy(VPCD_LIB, lib2)
    (conf / "vpcd-a").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH {VPCD_LIB}\nCHANNELID 0x8C7B\n')
    (conf / "vpcd-b").write_text(f'FRIENDLYNAME "Virtual PCD B"\nDEVICENAME /dev/null:0x8C7D\nLIBPATH {lib2}\nCHANNELID 0x8C7D\n')
    subprocess.run(["pkill", "-x", "pcscd"], check=False)
    time.sleep(0.3)
    log = open(conf.parent / "pcscd.log", "wb")
    proc = subprocess.Popen([exe, "--foreground", "--config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    # pcscd is ready once vpcd listens on all four ports.
    try:
        for port in range(35963, 35967):
            wait_port("127.0.0.1", port, timeout_s=10, proc=proc)
    except Exception:
        proc.kill()
        pytest.fail(f"pcscd did not start; see {conf.parent / 'pcscd.log'}")
    yield {"ports": [35963, 35964, 35965, 35966], "readers": ["Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD B 00 00", "Virtual PCD B 00 01"]}
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


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
