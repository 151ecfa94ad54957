"""A real Redis Sentinel set for the tests: one primary, one replica, three sentinels.

The sentinels are Debian's ``redis-sentinel <conf>`` (package redis-sentinel, installed by
scripts/bootstrap.sh), each with its own config file (Sentinel rewrites it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_sync

from tests.conftest import start_redis
from tests.helpers import free_port, wait_port

SERVICE = "nhigw"


class SentinelSet:
    def __init__(self, tmp: Path, *, down_after_ms: int = 1000) -> None:
        self.tmp = tmp
        self.down_after_ms = down_after_ms
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinel_ports: list[int] = []
        self.primary_port = self.replica_port = 0

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}/0"

    def start(self) -> SentinelSet:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        (self.tmp / "p").mkdir()
        (self.tmp / "r").mkdir()
        proc, self.primary_port = start_redis(self.tmp / "p")
        self.procs[self.primary_port] = proc
        self.replica_port = free_port()
        self.procs[self.replica_port] = self._replica(self.replica_port, self.tmp / "r")
        exe = shutil.which("redis-sentinel")
        if exe is None:
            pytest.fail("redis-sentinel is required: apt-get install redis-sentinel (scripts/bootstrap.sh --test does it)")
        for i in range(3):
            port = free_port()
            conf = self.tmp / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.tmp}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 4000\nsentinel parallel-syncs {SERVICE} 1\n"
            )
            proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port("127.0.0.1", port, timeout_s=10, proc=proc)
            self.procs[port] = proc
            self.sentinel_ports.append(port)
        self.wait_settled()

    def _replica(self, port: int, d: Path, of: int | None = None, *, read_only: bool = True) -> subprocess.Popen[bytes]:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(d), "--appendonly", "no",
                "--replicaof", "127.0.0.1", str(of or self.primary_port), "--replica-read-only", "yes" if read_only else "no"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", port, timeout_s=10, proc=proc)
        return proc

    def restart_as_replica(self, port: int, *, read_only: bool = True) -> None:
        """A killed server started again on its port as a replica of the primary the sentinels name now,
        as the Kubernetes pods do (deploy/k8s/overlays/sentinel). ``read_only=False``: it would take a
        client's write (so a write sent there shows in its ``MONITOR`` instead of being refused)."""
        self.procs[port] = self._replica(port, self.tmp / ("p" if port == self.primary_port else "r"), self.master_port(), read_only=read_only)

    def replica_linked(self, replica: int) -> bool:
        try:
            with redis_sync.Redis(port=replica, socket_timeout=2) as r:
                return bool(r.info("replication").get("master_link_status") == "up")
        except redis_sync.RedisError:
            return False

    def sentinel(self, i: int = 0) -> redis_sync.Redis:
        return redis_sync.Redis(port=self.sentinel_ports[i], socket_timeout=2)

    def master_port(self) -> int:
        return int(self.sentinel().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])

    def wait_settled(self, timeout_s: float = 20.0) -> None:
        """Every sentinel sees the replica (linked) and the two other sentinels: a failover can happen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            good = 0
            for i in range(3):
                s = self.sentinel(i)
                try:
                    reps = s.execute_command("SENTINEL", "REPLICAS", SERVICE)
                    peers = s.execute_command("SENTINEL", "SENTINELS", SERVICE)
                except redis_sync.RedisError:
                    break
                finally:
                    s.close()
                linked = [r for r in reps if r[b"flags"] == b"slave"]  # known, not down (the link itself: below)
                if linked and len(peers) == 2:
                    good += 1
            with redis_sync.Redis(port=self.replica_port) as r:
                up = r.info("replication").get("master_link_status") == "up"
            if good == 3 and up:
                return
            time.sleep(0.1)
        raise AssertionError("the sentinels did not settle (replica linked, peers known)")

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(5)

    def wait_promoted(self, old: int, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                port = self.master_port()
                if port != old:
                    with redis_sync.Redis(port=port) as r:
                        if r.info("replication")["role"] == "master":
                            return port
            except redis_sync.RedisError:
                pass
            time.sleep(0.1)
        raise AssertionError("no replica was promoted")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(5)
        self.procs.clear()
