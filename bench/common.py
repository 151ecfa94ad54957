"""Shared parts of the benchmarks: the machine, percentiles, results, real processes, signatures.

Every benchmark runs the real services as separate processes (``python -m nhigw ...``),
a real ``redis-server`` and, for the card path, a real ``pcscd`` with vpcd; the load
generator is its own process (``bench/loadgen.py``). Results go to
``bench/results/<name>.json`` (+ a PNG); ``bench/report.py`` turns them into
``docs/benchmarks.md``.

Signatures for pass-through traffic are made here, before the run, with a SAM key
registered in the simulator through its test-card API: every request carries a fresh
``clientRandom`` (the simulator refuses a reused one with 3245) and a valid RSA-2048
signature, so the simulator's full signature check runs on every request. No check is
relaxed for the benchmarks.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
PY = sys.executable


def _use_source_tree() -> None:
    """``NHIGW_SRC=/path/to/a/checkout``: run the services of that tree (e.g. ``git archive HEAD``)
    instead of the working tree, in every child process (``PYTHONPATH``). This process, the harness
    (load generator bodies, Redis from ``tests/conftest.py``), keeps the working tree's ``nhigw``: an
    older tree lacks names the working tree's tests import (f8dfab3: ``nhigw.common.logging.processors``).
    Name the event loops (``--loops asyncio``) for a tree from before uvloop."""
    src = os.environ.get("NHIGW_SRC")
    if not src:
        return
    shim = Path(tempfile.gettempdir()) / f"nhigw-src-{os.getpid()}"
    shim.mkdir(exist_ok=True)
    link = shim / "nhigw"
    if not link.exists():
        link.symlink_to(Path(src).resolve() / "services" / "nhigw")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)


_use_source_tree()


# ------------------------------------------------------------------ the machine


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------ numbers


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def summary_ms(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50_ms": round(pct(values_ms, 50), 3),
        "p90_ms": round(pct(values_ms, 90), 3),
        "p99_ms": round(pct(values_ms, 99), 3),
        "max_ms": round(max(values_ms), 3) if values_ms else 0.0,
        "mean_ms": round(statistics.fmean(values_ms), 3) if values_ms else 0.0,
    }


def loop_ns() -> float:
    """Machine speed check: ns per iteration of a fixed pure-Python loop (best of 5). Machines of one
    kind differ from day to day (other work on the host); runs are comparable by this figure."""

    def once() -> float:
        t, acc = time.perf_counter_ns(), 0
        for i in range(1_000_000):
            acc += i
        return (time.perf_counter_ns() - t) / 1_000_000

    return round(min(once() for _ in range(5)), 1)


LOOP_NS_AT_START = loop_ns()  # when the benchmark started (it imports this module first)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=os.environ.get("NHIGW_SRC") or ROOT).stdout.strip()
    doc = {"benchmark": name, "machine": machine(), "commit": os.environ.get("NHIGW_SRC_COMMIT") or commit, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()], "python_loop_ns": [LOOP_NS_AT_START, loop_ns()], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return out


def free_port() -> int:
    from tests.helpers import free_port as fp

    return fp()


def wait_port(port: int, timeout_s: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    from tests.helpers import wait_port as wp

    wp("127.0.0.1", port, timeout_s=timeout_s, proc=proc)


# ------------------------------------------------------------------ processes


class Services:
    """Real processes for one benchmark run, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, tmp: Path | None = None) -> None:
        self.tmp = Path(tmp or tempfile.mkdtemp(prefix="nhigw-bench-"))
        self.procs: list[Any] = []
        self.raw: list[subprocess.Popen[bytes]] = []

    def nhigw(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Any:
        from tests.helpers import Proc

        p = Proc(name, args, self.tmp, env={"NHIGW_LOG_LEVEL": "WARNING", **(env or {})})
        self.procs.append(p)
        return p.wait_ready(30)

    def python(self, name: str, args: list[str], port: int | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen([PY, *args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.raw.append(p)
        if port:
            wait_port(port, proc=p)
        return p

    def redis(self, *, appendonly: bool = False, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
        from tests.conftest import start_redis

        proc, port = start_redis(self.tmp, appendonly=appendonly, port=port)
        self.raw.append(proc)
        return proc, f"redis://127.0.0.1:{port}/0"

    def close(self) -> None:
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop()
        for r in reversed(self.raw):
            if r.poll() is None:
                r.send_signal(signal.SIGTERM)
                try:
                    r.wait(10)
                except subprocess.TimeoutExpired:
                    r.kill()
                    r.wait(5)

    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 1024 / 1024, 1)


def cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


# ------------------------------------------------------------------ pre-made signatures


class SigMaker:
    """A SAM key registered in the simulator; makes valid pass-through request bodies."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        from nhigw.vcard.identities import Identities

        ids = Identities.load()
        self.sam = next(iter(ids.sams.values()))
        self.hc = next(iter(ids.hcs.values()))
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._n = 0

    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def register(self, sim_url: str) -> None:
        import urllib.request

        body = json.dumps({"samId": self.sam.samId, "hospitalId": self.sam.hospitalId, "publicKeyPem": self.public_pem()}).encode()
        req = urllib.request.Request(f"{sim_url}/test/v1/Sam/Register", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["statusCode"] == 0

    def body(self, service_type: str = "01", **extra: object) -> bytes:
        """One pass-through body (default: ``BasicData/Register``, serviceType 01) with a fresh
        clientRandom; ``extra`` fields are added beside the signature object (e.g. ``tel``)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        from nhigw.contracts import signing

        self._n += 1
        fields = {
            "serviceType": service_type,
            "clientRandom": base64.b64encode(os.urandom(8)).decode(),
            "samId": self.sam.samId,
            "hospitalId": self.sam.hospitalId,
            "hcId": self.hc.cardNo,
            "hcIdNo": self.hc.idNo,
        }
        sig = self.key.sign(signing.canonical_message(**fields), padding.PKCS1v15(), hashes.SHA256())
        return json.dumps({**fields, "signature": base64.b64encode(sig).decode(), **extra}).encode()

    def write_bodies(self, path: Path, n: int) -> Path:
        with open(path, "wb") as f:
            for _ in range(n):
                f.write(self.body() + b"\n")
        return path


def loadgen(url: str, bodies: Path, *, rate: float, duration_s: float, warmup_s: float = 1.0, concurrency: int = 64, skip: int = 0) -> dict[str, Any]:
    """Run ``bench/loadgen.py`` as its own process; returns its JSON summary."""
    args = [PY, str(ROOT / "bench" / "loadgen.py"), "--url", url, "--bodies", str(bodies), "--rate", str(rate), "--duration", str(duration_s), "--warmup", str(warmup_s), "--concurrency", str(concurrency), "--skip", str(skip)]
    out = subprocess.run(args, capture_output=True, check=True, cwd=ROOT, timeout=600)
    return json.loads(out.stdout)


def gateway_args(port: int, cloud: str, redis_url: str, *, prefix: str = "bench", key: str | None = None) -> list[str]:
    """``nhigw gateway`` for a benchmark: real Redis; the per-hospital rate limit (default 50/s)
    lifted, since the benchmarks measure throughput, not the limiter."""
    from nhigw.bus.seal import Sealer

    args = ["gateway", "--port", str(port), "--cloud", cloud, "--redis", redis_url, "--bus-key", key or Sealer.new_key_b64(), "--bus-prefix", prefix]
    help_text = subprocess.run([PY, "-m", "nhigw", "gateway", "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    if "--rate-per-s" in help_text:
        args += ["--rate-per-s", "1000000", "--rate-burst", "1000000"]
    return args


def have(exe: str) -> bool:
    return shutil.which(exe) is not None


@contextlib.contextmanager
def chdir(p: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(p)
    try:
        yield
    finally:
        os.chdir(old)
