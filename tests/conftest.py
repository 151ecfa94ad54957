"""Real services for the tests: pcscd with vpcd (4 slots), redis-server, nhigw processes.

Nothing here skips: if pcscd, the vpcd driver or redis-server is missing, the
fixture that needs it fails with a message saying what to install
(``scripts/test.sh`` installs them on Debian).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_process, wait_port

VPCD_LIB = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_PORTS = [35963, 35964, 35965, 35966]  # the two readers' channels 0x8C7B and 0x8C7D, two slots each
VPCD_READERS = ["Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD B 00 00", "Virtual PCD B 00 01"]
# pcscd 1.9.9 serves its compiled-in socket /run/pcscd/pcscd.comm and ignores PCSCLITE_CSOCK_NAME; the
# client library (pyscard here, the agent processes the tests start) reads it, once per process. So the
# test pcscd runs in a mount namespace where /run/pcscd is this session's private directory, and every
# PC/SC client of the session is pointed at the socket there: the machine's own pcscd, if any, is never
# touched, and a test can never reach it by mistake.
PCSCD_RUN = Path(tempfile.mkdtemp(prefix="nhigw-pcscd-"))
os.environ["PCSCLITE_CSOCK_NAME"] = str(PCSCD_RUN / "pcscd.comm")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(PCSCD_RUN, ignore_errors=True)


def vpcd_ports_taken(ports: list[int]) -> list[int]:
    """Ports of ``ports`` someone listens on (binding with SO_REUSEADDR fails only on a listener)."""
    taken = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                taken.append(port)
    return taken


@dataclass
class Pcscd:
    """The session's pcscd: a child of this process (pcscd --foreground), stopped and restarted by its pid."""

    argv: list[str]
    log_path: Path
    ports: list[int] = field(default_factory=lambda: list(VPCD_PORTS))
    readers: list[str] = field(default_factory=lambda: list(VPCD_READERS))
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # vpcd's ports are machine-wide: another pcscd with vpcd's reader.conf (the system one, say) holds them.
        if taken := vpcd_ports_taken(self.ports):
            pytest.fail(f"vpcd ports {taken} are taken by another process (a pcscd loading /etc/reader.conf.d/vpcd?); stop it and run again")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        try:  # pcscd is ready once vpcd listens on all four ports
            for port in self.ports:
                wait_port("127.0.0.1", port, timeout_s=10, proc=self.proc)
        except Exception:
            self.stop()
            pytest.fail(f"pcscd did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=5)
            self.proc = None

    def restart(self) -> None:
        """SIGTERM this pcscd, wait for it to exit, start it again with the same configuration."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """Our own pcscd with two vpcd readers = 4 slots on ports 35963..35966.

    The second reader loads a *copy* of the vpcd driver: two readers on one copy of
    the library share its slot table and neither sees a card (seen on pcsc-lite 1.9.9).
    """
    exe = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    unshare = shutil.which("unshare")
    if exe is None or not VPCD_LIB.exists() or unshare is None:
        pytest.fail("pcscd, the vpcd driver and unshare are required: apt-get install pcscd vsmartcard-vpcd util-linux (scripts/test.sh does it)")
    # vpcd's ports are one per machine: hold a machine-wide lock so two test runs never fight over them.
    lock = open("/tmp/nhigw-pcscd.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    conf = tmp_path_factory.mktemp("reader.conf.d")
    lib2 = conf.parent / "libifdvpcd-b.so"
    shutil.copy(VPCD_LIB, lib2)
    (conf / "vpcd-a").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH {VPCD_LIB}\nCHANNELID 0x8C7B\n')
    (conf / "vpcd-b").write_text(f'FRIENDLYNAME "Virtual PCD B"\nDEVICENAME /dev/null:0x8C7D\nLIBPATH {lib2}\nCHANNELID 0x8C7D\n')
    # unshare and sh exec: the child's pid is pcscd's. /run/pcscd may be created on the host (empty, as pcscd would).
    script = 'mkdir -p /run/pcscd && mount --bind "$0" /run/pcscd && exec "$@"'
    argv = [unshare, "--mount", "--propagation", "private", "--", "sh", "-c", script, str(PCSCD_RUN), exe, "--foreground", "--config", str(conf)]
    daemon = Pcscd(argv, conf.parent / "pcscd.log")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
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
