"""The test pcscd: two vpcd readers (4 slots), a child of this process, on a socket of its own.

pcscd 1.9.9 serves its compiled-in socket ``/run/pcscd/pcscd.comm`` and ignores
``PCSCLITE_CSOCK_NAME``; the client library (pyscard here, the agent processes the tests start)
reads that variable, once per process. So this pcscd runs in a mount namespace where
``/run/pcscd`` is a private directory of this process, and importing this module points every PC/SC
client of the process (and its children) at the socket there: the machine's own pcscd, if any, is
never touched, and a test never reaches it by mistake. pcscd is started and stopped by its pid.

vpcd's ports (35963..35966) are machine-wide, so ``running_pcscd`` holds the lock
``/tmp/nhigw-pcscd.lock`` while its pcscd runs. Used by the ``pcscd`` fixture
(``tests/conftest.py``) and ``bench/card_path.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import stop_process, wait_port

VPCD_LIB = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_PORTS = [35963, 35964, 35965, 35966]  # the two readers' channels 0x8C7B and 0x8C7D, two slots each
VPCD_READERS = ["Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD B 00 00", "Virtual PCD B 00 01"]
LOCK = Path("/tmp/nhigw-pcscd.lock")
PCSCD_RUN = Path(tempfile.mkdtemp(prefix="nhigw-pcscd-"))
os.environ["PCSCLITE_CSOCK_NAME"] = str(PCSCD_RUN / "pcscd.comm")
atexit.register(shutil.rmtree, PCSCD_RUN, ignore_errors=True)


class PcscdError(RuntimeError):
    """pcscd is missing or did not start; the message says what to do."""


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
    """A pcscd --foreground child, stopped and restarted by its pid."""

    argv: list[str]
    log_path: Path
    ports: list[int] = field(default_factory=lambda: list(VPCD_PORTS))
    readers: list[str] = field(default_factory=lambda: list(VPCD_READERS))
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # vpcd's ports are machine-wide: another pcscd with vpcd's reader.conf (the system one, say) holds them.
        if taken := vpcd_ports_taken(self.ports):
            raise PcscdError(f"vpcd ports {taken} are taken by another process (a pcscd loading /etc/reader.conf.d/vpcd?); stop it and run again")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        try:  # pcscd is ready once vpcd listens on all four ports
            for port in self.ports:
                wait_port("127.0.0.1", port, timeout_s=10, proc=self.proc)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise PcscdError(f"pcscd did not start ({exc}); see {self.log_path}") from exc

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=5)
            self.proc = None

    def restart(self) -> None:
        """SIGTERM this pcscd, wait for it to exit, start it again with the same configuration."""
        self.stop()
        self.start()


@contextlib.contextmanager
def running_pcscd(tmp: Path) -> Iterator[Pcscd]:
    """Our own pcscd with two vpcd readers = 4 slots on ports 35963..35966, for the block.

    The second reader loads a *copy* of the vpcd driver: two readers on one copy of
    the library share its slot table and neither sees a card (seen on pcsc-lite 1.9.9).
    """
    exe = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    unshare = shutil.which("unshare")
    if exe is None or not VPCD_LIB.exists() or unshare is None:
        raise PcscdError("pcscd, the vpcd driver and unshare are required: apt-get install pcscd vsmartcard-vpcd util-linux (scripts/bootstrap.sh does it)")
    conf = tmp / "reader.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    lib2 = tmp / "libifdvpcd-b.so"
    shutil.copy(VPCD_LIB, lib2)
    (conf / "vpcd-a").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH {VPCD_LIB}\nCHANNELID 0x8C7B\n')
    (conf / "vpcd-b").write_text(f'FRIENDLYNAME "Virtual PCD B"\nDEVICENAME /dev/null:0x8C7D\nLIBPATH {lib2}\nCHANNELID 0x8C7D\n')
    # unshare and sh exec: the child's pid is pcscd's. /run/pcscd may be created on the host (empty, as pcscd would).
    script = 'mkdir -p /run/pcscd && mount --bind "$0" /run/pcscd && exec "$@"'
    argv = [unshare, "--mount", "--propagation", "private", "--", "sh", "-c", script, str(PCSCD_RUN), exe, "--foreground", "--config", str(conf)]
    daemon = Pcscd(argv, tmp / "pcscd.log")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            daemon.start()
            yield daemon
        finally:
            daemon.stop()
            fcntl.flock(lock, fcntl.LOCK_UN)
