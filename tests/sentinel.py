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


def agent_acl(prefix: str) -> list[str]:
    """The ACL rules of the agents' Redis user (as deploy/docker/init-secrets.sh writes them): their channels only."""
    from nhigw.contracts.buskeys import BusKeys

    k = BusKeys(prefix)
    channels = ["&" + c for c in ("__nhigw_keepalive__", k.presence, k.enrol, k.enrol_reply("*"), k.replies("*"), k.calls("*"), k.sessions("*"))]
    return ["on", "resetkeys", "resetchannels", *channels, "-@all", "+publish", "+subscribe", "+unsubscribe", "+ping"]


class SentinelSet:
    """``password``: every server's ``requirepass`` and ``masterauth`` and the sentinels' ``auth-pass``;
    ``agent``: (password, bus prefix) adds the agents' ACL user ``agent`` on every server."""

    def __init__(self, tmp: Path, *, down_after_ms: int = 1000, password: str | None = None, agent: tuple[str, str] | None = None) -> None:
        self.tmp = tmp
        self.down_after_ms = down_after_ms
        self.password, self.agent = password, agent
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinel_ports: list[int] = []
        self.primary_port = self.replica_port = 0

    @property
    def url(self) -> str:
        return self.url_for(f":{self.password}" if self.password else None)

    def url_for(self, userinfo: str | None) -> str:
        return "redis+sentinel://" + (f"{userinfo}@" if userinfo else "") + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}/0"

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
        if self.password or self.agent:
            self.primary_port = free_port()
            self.procs[self.primary_port] = self._server(self.primary_port, self.tmp / "p", None)
        else:
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
                + (f"sentinel auth-pass {SERVICE} {self.password}\n" if self.password else "")
            )
            proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port("127.0.0.1", port, timeout_s=10, proc=proc)
            self.procs[port] = proc
            self.sentinel_ports.append(port)
        self.wait_settled()

    def _replica(self, port: int, d: Path, of: int | None = None, *, read_only: bool = True) -> subprocess.Popen[bytes]:
        return self._server(port, d, of or self.primary_port, read_only=read_only)

    def _server(self, port: int, d: Path, of: int | None, *, read_only: bool = True) -> subprocess.Popen[bytes]:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(d), "--appendonly", "no", "--replica-read-only", "yes" if read_only else "no"]
        if of:
            args += ["--replicaof", "127.0.0.1", str(of)]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.agent:
            args += ["--user", "agent", *agent_acl(self.agent[1]), f">{self.agent[0]}"]
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
            with self.redis(replica) as r:
                return bool(r.info("replication").get("master_link_status") == "up")
        except redis_sync.RedisError:
            return False

    def redis(self, port: int) -> redis_sync.Redis:
        return redis_sync.Redis(port=port, password=self.password, socket_timeout=2)

    def sentinel(self, i: int = 0) -> redis_sync.Redis:
        return redis_sync.Redis(port=self.sentinel_ports[i], socket_timeout=2)

    def master_port(self) -> int:
        with self.sentinel() as s:
            return int(s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])

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
            with self.redis(self.replica_port) as r:
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
                    with self.redis(port) as r:
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
