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
        self.primary_port = free_port()
        self.procs[self.primary_port] = self._server(self.primary_port, self.tmp / "p", None)
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
                f"logfile {self.tmp / f'sentinel-{i}.log'}\n"
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
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(d), "--appendonly", "no", "--replica-read-only", "yes" if read_only else "no",
                "--logfile", str(self.tmp / f"redis-{port}.log")]  # appended to across a restart on the same port
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

    def replica_linked(self, replica: int, of: int | None = None) -> bool:
        """``replica`` is a replica with its link up (to ``of``, when given)."""
        try:
            with self.redis(replica) as r:
                info = r.info("replication")
        except redis_sync.RedisError:
            return False
        return info.get("role") == "slave" and info.get("master_link_status") == "up" and (of is None or int(info.get("master_port", 0)) == of)

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

    def failover_over(self, i: int, new: int) -> bool:
        """Sentinel ``i`` names ``new`` as the primary and has no failover of it in progress."""
        try:
            with self.sentinel(i) as s:
                addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                master = _pairs(s.execute_command("SENTINEL", "MASTER", SERVICE))
        except redis_sync.RedisError:
            return False
        return int(addr[1]) == new and master.get("port") == str(new) and "failover_in_progress" not in master.get("flags", "")

    def wait_failover_over(self, new: int, timeout_s: float = 20.0) -> None:
        """Every sentinel names ``new`` and none has a failover in progress: the leader logged +failover-end,
        the others took the new configuration from its hello (+switch-master; hellos go out every 2 s).
        ``wait_promoted`` asks one sentinel only, and the leader names the promoted replica already while it
        is still reconfiguring; a server that comes back after this is judged by every sentinel against
        the new configuration only."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.failover_over(i, new) for i in range(len(self.sentinel_ports))):
                return
            time.sleep(0.05)
        raise AssertionError(f"the sentinels did not all name {new} with the failover over in {timeout_s} s\n" + self.diagnostics())

    def set_down_after(self, ms: int) -> None:
        """``SENTINEL SET <service> down-after-milliseconds`` on every sentinel (for the primary, its replicas and peers)."""
        for i in range(len(self.sentinel_ports)):
            with self.sentinel(i) as s:
                s.execute_command("SENTINEL", "SET", SERVICE, "down-after-milliseconds", str(ms))
        self.down_after_ms = ms

    def config_epochs(self) -> list[int | None]:
        """Each sentinel's config epoch of the primary: 1 after one failover, 2 after a second one."""
        out: list[int | None] = []
        for i in range(len(self.sentinel_ports)):
            try:
                with self.sentinel(i) as s:
                    out.append(int(_pairs(s.execute_command("SENTINEL", "MASTER", SERVICE))["config-epoch"]))
            except (redis_sync.RedisError, KeyError, ValueError):
                out.append(None)
        return out

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

    def diagnostics(self, log_lines: int = 80) -> str:
        """What to read when a drill's expectation of the set failed: each server's ``INFO replication``,
        each sentinel's ``SENTINEL MASTER`` and ``SENTINEL REPLICAS``, and the tail of every log (the
        sentinels' events: +sdown, +odown, +switch-master, +convert-to-slave, -tilt ...). No password in it."""
        out: list[str] = []
        for port in sorted({self.primary_port, self.replica_port}):
            try:
                with self.redis(port) as r:
                    info = r.info("replication")
                out.append(f"server {port} INFO replication: " + " ".join(f"{k}={v}" for k, v in info.items() if not k.startswith("slave") or k[5:].isdigit()))
            except redis_sync.RedisError as exc:
                out.append(f"server {port}: {exc!r}")
        for i in range(len(self.sentinel_ports)):
            try:
                with self.sentinel(i) as s:
                    master = _pairs(s.execute_command("SENTINEL", "MASTER", SERVICE))
                    reps = [_pairs(r) for r in s.execute_command("SENTINEL", "REPLICAS", SERVICE)]
                keep = ("ip", "port", "flags", "config-epoch", "failover-state", "num-slaves", "num-other-sentinels", "role-reported", "master-link-status", "master-port")
                out.append(f"sentinel {i} MASTER: " + " ".join(f"{k}={master.get(k)}" for k in keep if k in master))
                out.extend(f"sentinel {i} REPLICA: " + " ".join(f"{k}={r.get(k)}" for k in keep if k in r) for r in reps)
            except redis_sync.RedisError as exc:
                out.append(f"sentinel {i}: {exc!r}")
        for log in sorted(self.tmp.glob("sentinel-*.log")) + sorted(self.tmp.glob("redis-*.log")):
            lines = log.read_text(errors="replace").splitlines()
            out.append(f"--- {log.name} (last {min(log_lines, len(lines))} of {len(lines)} lines)")
            out.extend(lines[-log_lines:])
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(5)
        self.procs.clear()


def _pairs(reply: object) -> dict[str, str]:
    """A sentinel's reply about one instance (a flat ``[name, value, ...]`` list, or redis-py's dict) as strings."""
    def text(x: object) -> str:
        return x.decode() if isinstance(x, bytes) else ",".join(sorted(map(str, x))) if isinstance(x, set) else str(x)
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    items = [text(x) for x in reply] if isinstance(reply, list) else []
    return dict(zip(items[::2], items[1::2], strict=True))
