"""The images' entry points, proven without a Docker engine.

Every service of ``docker-compose.yml`` — the one-shot ``secrets`` service, ``redis``, ``sim``,
both ``gateway`` replicas and the demo ``agent`` (pcscd + vpcd + virtual cards + ``nhigw agent
--pcsc``) — runs here as a plain process with the ``command:`` and ``environment:`` the compose
file gives it, through the image's ``ENTRYPOINT`` (``deploy/docker/entrypoint.sh``) and the
helpers the Dockerfile copies into ``/usr/local/bin``. Only what a container would see differently
is remapped: service host names and ports become free loopback ports, volume paths become
temporary directories. Then each compose ``healthcheck`` runs as written and must pass, and a
one-call registration goes through each gateway replica to the agent's cards and the simulator.

The demo agent starts its own pcscd. pcscd's socket path is fixed (``/run/pcscd``), so the agent
runs in a private mount namespace (``unshare --mount``, root as in CI) with a tmpfs there, and on
vpcd ports of its own. Its pcscd binary is a copy under the test's directory (the script's ``PCSCD``),
so what it leaves running is found by path. This test needs neither the ``pcscd`` fixture nor its
machine-wide lock.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.helpers import ROOT, Proc, eventually, free_port, insecure_ssl, wait_port
from tests.pcsc import VPCD_LIB

pytestmark = [pytest.mark.pcsc, pytest.mark.redis]

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
VENV_BIN = Path(sys.executable).parent
CONTAINER_PORTS = {"sim": 8068, "gateway": 8066, "agent": 5066, "compat": 5067}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        got = env.get(name)
        if op == ":-":
            return got if got else default
        if op == "-":
            return got if got is not None else default
        return got or ""

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", sub, value)


def image_bin(tmp: Path) -> Path:
    """The image's /usr/local/bin helpers, as the Dockerfile copies them: links to the repo's files."""
    bin_dir = tmp / "image-bin"
    bin_dir.mkdir()
    copies = re.findall(r"^COPY\s+--chmod=0755\s+(\S+)\s+/usr/local/bin/(\S+)\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert {name for _src, name in copies} >= {"nhigw-entrypoint", "nhigw-healthcheck", "nhigw-init-secrets", "nhigw-agent-demo"}
    for src, name in copies:
        (bin_dir / name).symlink_to(ROOT / src)
    return bin_dir


def free_port_run(n: int, taken: tuple[int, ...] = ()) -> int:
    """A base port with n consecutive free ports (vpcd takes base..base+3), none of them in taken."""
    for _ in range(200):
        base = free_port()
        if base + n > 65535 or 35963 - n < base < 35967 or any(base <= t < base + n for t in taken):  # nor the pcscd fixture's vpcd ports
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


class Cmd(Proc):
    """Like ``Proc``, for any command line (the image's entry point rather than ``python -m nhigw``)."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> None:  # noqa: D107
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


@dataclass
class Stack:
    """The compose stack as local processes, and the maps from container to local addresses."""

    tmp: Path
    bin_dir: Path
    ports: dict[str, int] = field(default_factory=dict)  # service name (gateway, gateway-2, ...) -> local port
    procs: dict[str, Proc] = field(default_factory=dict)
    redis_port: int = 0
    redis: subprocess.Popen[bytes] | None = None

    def volume(self, name: str) -> Path:
        return self.tmp / "volumes" / name

    def container_fs(self, service: str) -> Path:
        """The service's own filesystem: a directory where each of its volumes is linked in at its mount path."""
        root = self.tmp / f"fs-{service}"
        if not root.exists():
            for v in SERVICES[base_of(service)].get("volumes", []):
                name, target = v.split(":")[:2]
                assert name in COMPOSE["volumes"], name
                link = root / target.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(self.volume(name))
            root.mkdir(exist_ok=True)
        return root

    def remap(self, s: str, service: str) -> str:
        """Container paths, host names and ports -> this machine's."""
        roots = {v.split(":")[1] for v in SERVICES[base_of(service)].get("volumes", [])} | {"/run/nhigw-secrets", "/var/lib/nhigw", "/tmp"}
        fs = self.container_fs(service)
        alternatives = "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True))
        s = re.sub(rf"(?<![\w/.-])(?:{alternatives})(?=/|$|[\s\"'])", lambda m: str(fs) + m.group(0), s)  # one pass
        s = s.replace("redis:6379", f"127.0.0.1:{self.redis_port}")
        if "sim" in self.ports:
            s = s.replace("http://sim:8068", f"http://127.0.0.1:{self.ports['sim']}")
        if "gateway" in self.ports:
            s = s.replace("http://gateway:8066", f"http://127.0.0.1:{self.ports['gateway']}")
        # Its own port on loopback, and those of a service whose network namespace it shares.
        shared = SERVICES[base_of(service)].get("network_mode", "").removeprefix("service:")
        for name in (service, shared):
            if base_of(name) in CONTAINER_PORTS and name in self.ports:
                s = s.replace(f"127.0.0.1:{CONTAINER_PORTS[base_of(name)]}", f"127.0.0.1:{self.ports[name]}")
        return s

    def env(self, service: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        spec = SERVICES[base_of(service)]
        # A fresh clone: no REDIS_PASSWORD / NHIGW_* in the environment compose interpolates from, and
        # not the session's PC/SC socket (tests/conftest.py): the demo agent talks to its own pcscd.
        outer = {k: v for k, v in os.environ.items() if not k.startswith("NHIGW_") and k not in ("REDIS_PASSWORD", "PCSCLITE_CSOCK_NAME")}
        env = {**outer, "PATH": f"{self.bin_dir}:{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "PYTHONUNBUFFERED": "1"}
        for k, v in (spec.get("environment") or {}).items():
            env[k] = self.remap(interpolate(str(v), outer), service)
        env["NHIGW_DATA_DIR"] = self.remap("/var/lib/nhigw", service)  # the image's ENV: a volume or the container's disk
        return {**env, **(extra or {})}

    def argv(self, service: str) -> list[str]:
        """ENTRYPOINT + command:, with --host/--port made local."""
        cmd = [self.remap(interpolate(str(a), {}), service) for a in SERVICES[base_of(service)]["command"]]
        for i, a in enumerate(cmd[:-1]):
            if a == "--host":
                cmd[i + 1] = "127.0.0.1"
            if a == "--port":
                assert int(cmd[i + 1]) == CONTAINER_PORTS[base_of(service)]
                cmd[i + 1] = str(self.ports[service])
        return [str(self.bin_dir / "nhigw-entrypoint"), *cmd]

    def run_once(self, service: str) -> str:
        """A one-shot service (restart: "no"): runs to completion, must exit 0."""
        p = Cmd(service, self.argv(service), self.tmp, self.env(service))
        rc = p.proc.wait(60)
        out = p.log()
        p.stop()
        assert rc == 0, out
        return out

    def healthcheck(self, service: str) -> subprocess.CompletedProcess[str]:
        """The service's compose healthcheck, run as Docker runs it."""
        test = SERVICES[base_of(service)]["healthcheck"]["test"]
        env = self.env(service)
        if test[0] == "CMD":
            argv = [self.remap(interpolate(a, {}), service) for a in test[1:]]
        else:
            assert test[0] == "CMD-SHELL"
            line = self.remap(interpolate(test[1], {}), service).replace("redis-cli", f"redis-cli -p {self.redis_port}")
            argv = ["sh", "-c", line]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20, cwd=self.tmp)

    def start_redis(self) -> list[str]:
        """The compose redis command line, on a free loopback port; returns it as run."""
        self.redis_port = free_port()
        cmd = [self.remap(a, "redis") for a in SERVICES["redis"]["command"]]
        assert cmd[0] == "redis-server"
        with open(self.tmp / "redis.log", "wb") as log:
            self.redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", *cmd[1:], "--port", str(self.redis_port), "--bind", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
        wait_port("127.0.0.1", self.redis_port, timeout_s=10, proc=self.redis)
        return cmd

    def redis_cli(self, *args: str, password: str | None = None) -> str:
        env = {**os.environ, "REDISCLI_AUTH": password} if password else None
        return subprocess.run([shutil.which("redis-cli") or "redis-cli", "-p", str(self.redis_port), *args], env=env, capture_output=True, text=True, check=True).stdout

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(5)


def base_of(service: str) -> str:
    """gateway-2 (a second replica) -> gateway."""
    return service.split("-")[0]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    st = Stack(tmp_path, image_bin(tmp_path))
    for name in COMPOSE["volumes"]:
        st.volume(name).mkdir(parents=True)
    try:
        yield st
    finally:
        st.stop()


def running_under(path: Path) -> str:
    """Processes whose command line names path (pgrep -f)."""
    return subprocess.run(["pgrep", "-af", str(path)], capture_output=True, text=True, check=False).stdout


def private_pcscd(tmp: Path) -> str:
    """A copy of pcscd under tmp: its processes are told from any other pcscd by their path."""
    exe = shutil.which("pcscd") or "/usr/sbin/pcscd"
    assert Path(exe).exists() and VPCD_LIB.exists(), "pcscd and the vpcd driver are required: apt-get install pcscd vsmartcard-vpcd (scripts/test.sh does it)"
    copy = tmp / "pcscd-demo"
    shutil.copy(exe, copy)
    return str(copy)


def in_private_run_pcscd(argv: list[str]) -> list[str]:
    """Run argv in a mount namespace where /run/pcscd is a fresh tmpfs (pcscd's fixed socket path)."""
    script = 'mkdir -p /run/pcscd && mount -t tmpfs -o mode=0755,size=1m nhigw-test /run/pcscd && exec "$@"'
    return [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]


async def get(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, dict]:
    async with http.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.json(content_type=None)


async def test_compose_services_run_as_processes(stack: Stack) -> None:
    st = stack

    # secrets: the one-shot service writes each role's secrets into that role's volume.
    st.run_once("secrets")
    gw_secrets, agent_secrets = st.volume("secrets-gateway"), st.volume("secrets-agent")
    assert {p.name for p in gw_secrets.iterdir()} == {"redis_password", "bus_key", "master_key", "clients.json", "his_api_key"}
    assert {p.name for p in agent_secrets.iterdir()} == {"redis_password", "master_key"}  # never the gateway key
    assert [p.name for p in st.volume("secrets-compat").iterdir()] == ["his_api_key"]
    assert {p.name for p in st.volume("secrets-redis").iterdir()} == {"redis.conf", "sentinel.conf"}  # (sentinel.conf: the profile `sentinel`'s template)
    password = (gw_secrets / "redis_password").read_text()
    conf = (st.volume("secrets-redis") / "redis.conf").read_text()
    assert f"requirepass {password}\nmasterauth {password}\n" in conf  # a replica (or a demoted primary) logs in with it
    assert f"sentinel auth-pass nhigw {password}\n" in (st.volume("secrets-redis") / "sentinel.conf").read_text()
    agent_password = (agent_secrets / "redis_password").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", password) and re.fullmatch(r"[0-9a-f]{64}", agent_password) and agent_password != password
    from nhigw.bus.seal import Sealer

    Sealer.from_b64((gw_secrets / "bus_key").read_text())  # a valid gateway key
    his_key = (gw_secrets / "his_api_key").read_text()
    st.run_once("secrets")  # `docker compose up` again: the secrets are kept
    assert (gw_secrets / "redis_password").read_text() == password and (gw_secrets / "his_api_key").read_text() == his_key

    # redis: the compose command line (config from its secrets volume, AOF on) on a free port.
    redis_cmd = st.start_redis()
    assert "NOAUTH" in st.redis_cli("ping")  # the password is on
    assert st.redis_cli("config", "get", "appendonly", password=password).split() == ["appendonly", "yes"]
    assert st.healthcheck("redis").returncode == 0
    assert all(password not in a and agent_password not in a for a in redis_cmd)  # on no command line
    # The agents' Redis user: its own channels, no key, no other command.
    agent_cli = ["--user", "agent", "--pass", agent_password, "--no-auth-warning"]
    assert st.redis_cli(*agent_cli, "publish", "nhigw:presence", "x").strip() == "0"
    for denied in (["keys", "*"], ["get", "nhigw:agent-key:ws-01"], ["xrange", "nhigw:jobs", "-", "+"], ["publish", "nhigw:jobs", "x"], ["config", "get", "*"]):
        assert "NOPERM" in st.redis_cli(*agent_cli, *denied), denied

    # sim and the gateway replicas (as many as compose runs).
    replicas = SERVICES["gateway"]["deploy"]["replicas"]
    assert replicas == 2
    gateways = ["gateway", *(f"gateway-{i}" for i in range(2, replicas + 1))]
    for name in ("sim", *gateways, "agent", "compat"):
        st.ports[name] = free_port()
    st.procs["sim"] = Cmd("sim", st.argv("sim"), st.tmp, st.env("sim")).wait_ready()
    for name in gateways:
        st.procs[name] = Cmd(name, st.argv(name), st.tmp, st.env(name)).wait_ready()

    # enrol: a one-time token for the demo agent, into the agent's secrets volume only.
    st.run_once("enrol")
    assert (agent_secrets / "enrol_token").stat().st_size > 20 and not (gw_secrets / "enrol_token").exists()

    # The demo agent: its own pcscd + vpcd, virtual cards, `nhigw agent --pcsc`, enrolled with the token.
    vcard_port = free_port()
    agent_env = st.env("agent", {
        "PCSCD": private_pcscd(st.tmp),
        "NHIGW_VPCD_BASE_PORT": str(free_port_run(4, taken=(*st.ports.values(), st.redis_port, vcard_port))),
        "NHIGW_VCARD_PORT": str(vcard_port),
        "NHIGW_RUN_DIR": st.remap("/tmp/nhigw-demo", "agent"),  # the image's ENV
    })
    assert "NHIGW_BUS_KEY" not in agent_env and "NHIGW_BUS_KEY_FILE" not in agent_env
    workstation = SERVICES["agent"]["command"][SERVICES["agent"]["command"].index("--workstation") + 1]
    agent = f"https://127.0.0.1:{st.ports['agent']}"

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure_ssl())) as http:

        async def start_agent(name: str) -> None:
            st.procs[name] = proc = Cmd(name, in_private_run_pcscd(st.argv("agent")), st.tmp, agent_env)

            async def serving_its_cards() -> bool:
                assert proc.proc.poll() is None, proc.log()[-4000:]
                try:
                    _, body = await get(http, agent + "/api/common/v1/Status")
                except aiohttp.ClientError:
                    return False
                s = body["status"]
                return bool(s["sam"]["status"] == 2 and s["hc"]["status"] == 2 and s["hpc"]["status"] >= 1)

            assert await eventually(serving_its_cards, 40, interval_s=0.2), proc.log()[-4000:]

        async def register_through_every_gateway() -> None:
            """One call per gateway replica, over Redis, to the agent's cards in its own pcscd, checked by the simulator."""
            for name in gateways:
                url = f"http://127.0.0.1:{st.ports[name]}/api/v1/BasicData/Register"
                async with http.post(url, json={}, headers={"X-Workstation": workstation}) as r:
                    assert r.status == 401  # a gateway on the LAN wants an HIS key
                answer: dict = {}

                async def seen_online(url: str = url, answer: dict = answer) -> bool:  # until this replica sees the agent
                    async with http.post(url, json={}, headers={"X-Workstation": workstation, "Authorization": f"Bearer {his_key}"}) as r:
                        answer.update(status=r.status, body=await r.json(content_type=None))
                    return bool(answer["body"].get("statusCode") != 9400)  # offline here: an answer with 9400 (HTTP 200)

                await eventually(seen_online, 10, interval_s=0.1)
                status, body = answer["status"], answer["body"]
                assert (status, body.get("statusCode")) == (200, 0), (name, body)
                assert (body["name"], body["idCardNum"]) == ("測試十", "Z299999929")

        await start_agent("agent")

        # Every compose healthcheck passes, as written (the gateways probe /readyz: their bus).
        for name in ("sim", *gateways, "agent"):
            r = st.healthcheck(name)
            assert r.returncode == 0, (name, r.stderr)
        assert SERVICES["gateway"]["environment"]["NHIGW_HEALTH_URL"].endswith("/readyz")
        await register_through_every_gateway()

        # compat beside the agent (its network namespace): a legacy csHis call, signed by the agent,
        # through the gateway with compat's own HIS key, to the simulator.
        st.procs["compat"] = Cmd("compat", st.argv("compat"), st.tmp, st.env("compat")).wait_ready()
        assert st.healthcheck("compat").returncode == 0
        compat = f"https://127.0.0.1:{st.ports['compat']}"
        async with http.post(compat + "/VHC/VHCcsOpenCom") as r:
            assert (await r.json(content_type=None))["ERRORCODE"] == 0
        async with http.post(compat + "/VHC/VHChisGetBasicData") as r:
            basic = await r.json(content_type=None)
        assert basic["ERRORCODE"] == 0 and basic["pBuffer"].startswith("000073898381測試十"), basic

        # A restart (crash, `docker compose restart agent`) keeps the enrolment: the used token is not spent again.
        assert st.procs["agent"].stop() == 0, st.procs["agent"].log()[-3000:]
        await start_agent("agent-restarted")
        await register_through_every_gateway()

    # A clean stop: SIGTERM (docker stop) ends every part with status 0, pcscd included.
    for name in ("compat", "agent-restarted", *reversed(gateways), "sim"):
        assert st.procs[name].stop() == 0, (name, st.procs[name].log()[-3000:])
    assert not running_under(st.tmp / "fs-agent"), "the demo agent left pcscd running"
    # Secrets reach no log.
    bus_key = (gw_secrets / "bus_key").read_text()
    for p in st.procs.values():
        text = p.log()
        assert password not in text and agent_password not in text and bus_key not in text and his_key not in text and "Z299999929" not in text, p.name


def test_entrypoint_reads_secret_files_and_puts_the_password_in_the_redis_url(tmp_path: Path) -> None:
    """``NHIGW_*_FILE`` → ``NHIGW_*``; the Redis password goes into a credential-less URL only."""
    (tmp_path / "pw").write_text("s3cret")
    (tmp_path / "key").write_text("KEY")
    bin_dir = image_bin(tmp_path)
    show = [sys.executable, "-c", "import os; print(os.environ.get('NHIGW_REDIS_URL'), os.environ.get('NHIGW_BUS_KEY'), 'NHIGW_REDIS_PASSWORD' in os.environ)"]

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        # A first argument nhigw-* is run as is: here a stand-in helper that prints the environment.
        helper = tmp_path / "nhigw-show"
        helper.write_text("#!/bin/sh\nexec " + shlex.join(show) + "\n")
        helper.chmod(0o755)
        return subprocess.run([str(bin_dir / "nhigw-entrypoint"), "nhigw-show"], env={"PATH": f"{tmp_path}:{bin_dir}:/usr/bin:/bin", **env}, capture_output=True, text=True, check=False)

    files = {"NHIGW_REDIS_PASSWORD_FILE": str(tmp_path / "pw"), "NHIGW_BUS_KEY_FILE": str(tmp_path / "key")}
    r = run({"NHIGW_REDIS_URL": "redis://redis:6379/0", **files})
    assert r.returncode == 0 and r.stdout.split() == ["redis://:s3cret@redis:6379/0", "KEY", "False"], r
    r = run({"NHIGW_REDIS_URL": "rediss://user:other@redis:6380/1", **files})
    assert r.stdout.split()[0] == "rediss://user:other@redis:6380/1"  # its own password wins
    r = run({"NHIGW_REDIS_URL": "redis://agent@redis:6379/0", **files})
    assert r.stdout.split()[0] == "redis://agent:s3cret@redis:6379/0"  # an ACL user gets the password
    r = run({"NHIGW_REDIS_URL": "redis+sentinel://redis-ha-0.redis-ha:26379,redis-ha-1.redis-ha:26379/nhigw/0", **files})
    assert r.stdout.split()[0] == "redis+sentinel://:s3cret@redis-ha-0.redis-ha:26379,redis-ha-1.redis-ha:26379/nhigw/0"  # Redis's, not the sentinels'
    r = run({"NHIGW_BUS_KEY_FILE": str(tmp_path / "missing")})
    assert r.returncode == 64 and "cannot read" in r.stderr
    # Without a helper name, the entry point is `nhigw` itself.
    r = subprocess.run([str(bin_dir / "nhigw-entrypoint"), "--version"], env={"PATH": f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin"}, capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("nhigw ")


def test_healthcheck_fails_on_a_dead_or_unready_service(tmp_path: Path) -> None:
    """Dead: nothing listens. Unready: a gateway whose Redis is gone is alive (/healthz) but not ready (/readyz)."""
    from nhigw.bus.seal import Sealer

    check = str(image_bin(tmp_path) / "nhigw-healthcheck")
    r = subprocess.run([check, f"http://127.0.0.1:{free_port()}/healthz"], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "nhigw-healthcheck" in r.stderr
    from tests.conftest import start_redis

    redis, redis_port = start_redis(tmp_path)
    port = free_port()
    env = {"NHIGW_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "NHIGW_BUS_KEY": Sealer.new_key_b64()}
    gw = Proc("gateway", ["gateway", "--port", str(port)], tmp_path, env).wait_ready()
    ready = {**os.environ, "NHIGW_HEALTH_URL": f"http://127.0.0.1:{port}/readyz"}
    try:
        # Ready once its registry has heard the agents for a presence interval (1.5 s after start), as a
        # readiness probe polls it: not at the first instant.
        deadline = time.monotonic() + 15
        while subprocess.run([check], env=ready, capture_output=True, check=False).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert subprocess.run([check], env=ready, check=False).returncode == 0
        redis.terminate()
        redis.wait(5)
        assert subprocess.run([check, f"http://127.0.0.1:{port}/healthz"], check=False).returncode == 0  # alive
        r = subprocess.run([check], env=ready, capture_output=True, text=True, check=False)
        assert r.returncode == 1 and "503" in r.stderr  # not ready: no traffic (readinessProbe, compose health)
    finally:
        gw.stop()
        if redis.poll() is None:
            redis.kill()
            redis.wait(5)


# ------------------------------------------------------------------ Kubernetes containers as processes


def kustomize(path: Path) -> list[dict]:
    out = subprocess.run([str(VENV_BIN / "kubectl"), "kustomize", str(path)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


class Pod:
    """One container of a rendered Deployment/StatefulSet, run as a local process.

    Its environment comes from ``envFrom`` ConfigMaps, ``env`` values and ``secretKeyRef``s;
    its secret and emptyDir volumes become directories under ``root``; Service host names
    (``redis:6379``, ``http://sim:8068``) and ports become loopback ones.
    """

    def __init__(self, doc: dict, docs: list[dict], secret: dict[str, str], root: Path, services: dict[str, str]) -> None:
        self.name = doc["metadata"]["name"]
        spec = doc["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.root = root / self.name
        self.services = services
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.mounts: dict[str, Path] = {}
        for m in self.container.get("volumeMounts", []):
            local = self.root / m["mountPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            v = volumes.get(m["name"], {})
            for item in v.get("secret", {}).get("items", []):
                (local / item["path"]).write_text(secret[item["key"]])
            self.mounts[m["mountPath"]] = local
        configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("NHIGW_")}
        for ref in self.container.get("envFrom", []):
            env.update(configmaps[ref["configMapRef"]["name"]])
        for e in self.container.get("env", []):
            env[e["name"]] = e["value"] if "value" in e else secret[e["valueFrom"]["secretKeyRef"]["key"]]
        env["NHIGW_DATA_DIR"] = "/var/lib/nhigw"  # the image's ENV
        self.mounts.setdefault("/var/lib/nhigw", self.root / "var/lib/nhigw")  # no volume there: the container's own disk
        self.raw_env = env
        self.port = free_port()

    @property
    def env(self) -> dict[str, str]:
        return {**{k: self.local(v) for k, v in self.raw_env.items()}, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def local(self, s: str) -> str:
        alternatives = "|".join(re.escape(p) for p in sorted(self.mounts, key=len, reverse=True))
        s = re.sub(rf"(?<![\w/.-])(?:{alternatives})(?=/|$|\s)", lambda m: str(self.mounts[m.group(0)]), s)  # one pass
        for host, addr in self.services.items():
            s = s.replace(host, addr)
        return s

    def argv(self, entrypoint: Path) -> list[str]:
        args = [self.local(a) for a in self.container.get("command", [])] + [self.local(a) for a in self.container["args"]]
        container_port = self.container["ports"][0]["containerPort"]
        for i, a in enumerate(args[:-1]):
            if a == "--host":
                args[i + 1] = "127.0.0.1"
            if a == "--port":
                assert int(args[i + 1]) == container_port
                args[i + 1] = str(self.port)
        return args if self.container.get("command") else [str(entrypoint), *args]

    def probe_until_pass(self, kind: str, timeout_s: float = 15.0) -> int:
        """As Kubernetes polls a probe: its first pass within ``timeout_s`` (a gateway is ready once its
        registry has caught up, 1.5 s after start), else the last result."""
        import urllib.error

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                res = self.probe(kind)
            except urllib.error.HTTPError as exc:
                res = exc.code
            if res == 0 or time.monotonic() >= deadline:
                return res
            time.sleep(0.2)

    def probe(self, kind: str) -> int:
        """The container's probe: HTTP status, or an exec probe's exit code (0 = pass)."""
        probe = self.container[kind]
        if "httpGet" in probe:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{probe['httpGet']['path']}", timeout=3) as r:
                return 0 if r.status == 200 else r.status
        cmd = [self.local(a) for a in probe["exec"]["command"]]
        cmd = [a.replace("redis-cli", f"redis-cli -p {self.port}") for a in cmd]
        return subprocess.run(cmd, env=self.env, capture_output=True, check=False, timeout=10).returncode


def test_kubernetes_containers_run_as_processes(tmp_path: Path) -> None:
    """Staging's redis, sim and gateway containers, with their args, env, Secret files and probes, as processes."""
    from nhigw.bus.seal import Sealer
    from nhigw.gateway.auth import Clients

    docs = kustomize(ROOT / "deploy" / "k8s" / "overlays" / "staging")
    example = yaml.safe_load((ROOT / "deploy" / "k8s" / "secret.example.yaml").read_text())["stringData"]
    his_key = Clients.add(tmp_path / "clients.json", "his", None, ["*"])
    secret = {"redis-password": os.urandom(16).hex(), "redis-agent-password": os.urandom(16).hex(), "bus-key": Sealer.new_key_b64(), "master-key": os.urandom(32).hex(), "clients.json": (tmp_path / "clients.json").read_text()}
    assert set(secret) == set(example)
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    assert set(workloads) == {"redis", "sim", "gateway"}
    services: dict[str, str] = {}
    pods = {}
    for name in ("redis", "sim", "gateway"):
        pods[name] = Pod(workloads[name], docs, secret, tmp_path, services)
    services.update({"redis:6379": f"127.0.0.1:{pods['redis'].port}", "http://sim:8068": f"http://127.0.0.1:{pods['sim'].port}"})
    entry = tmp_path / "bin"
    entry.mkdir()
    (entry / "nhigw-entrypoint").symlink_to(ROOT / "deploy" / "docker" / "entrypoint.sh")
    procs: list[Proc] = []
    try:
        # redis: its shell line writes the password into a config file and execs redis-server.
        rp = pods["redis"]
        argv = rp.argv(entry / "nhigw-entrypoint")
        argv[-1] = argv[-1].replace("exec redis-server", f"exec {shutil.which('redis-server')}") + f" --port {rp.port} --bind 127.0.0.1"
        procs.append(Cmd("k8s-redis", argv, tmp_path, rp.env))
        wait_port("127.0.0.1", rp.port, timeout_s=10, proc=procs[-1].proc)
        assert (rp.mounts["/run/redis"] / "redis.conf").read_text().startswith(f"requirepass {secret['redis-password']}\nuser agent on >")
        assert rp.probe("readinessProbe") == 0 and rp.probe("livenessProbe") == 0
        assert all(secret["redis-password"] not in a and secret["redis-agent-password"] not in a for a in argv)
        # The agents' ACL user: exactly the channels the code names for an agent, no key.
        from nhigw.contracts.buskeys import BusKeys

        k = BusKeys()
        cli = [shutil.which("redis-cli") or "redis-cli", "-p", str(rp.port), "--user", "agent", "--pass", secret["redis-agent-password"], "--no-auth-warning"]
        for channel in (k.presence, k.enrol, k.enrol_reply("a1"), k.replies("gw1"), k.calls("ws-03"), k.sessions("ws-03")):
            assert subprocess.run([*cli, "publish", channel, "x"], capture_output=True, text=True, check=True).stdout.strip() == "0", channel
        for denied in (["publish", k.jobs, "x"], ["get", k.agent_key("ws-03")], ["keys", "*"]):
            assert "NOPERM" in subprocess.run([*cli, *denied], capture_output=True, text=True, check=True).stdout, denied

        for name in ("sim", "gateway"):
            procs.append(Cmd(f"k8s-{name}", pods[name].argv(entry / "nhigw-entrypoint"), tmp_path, pods[name].env).wait_ready())
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in pods[name].container:
                    assert pods[name].probe_until_pass(probe) == 0, (name, probe)
        # The gateway is on Redis with the password (readyz pings it) and wants HIS keys.
        import urllib.error
        import urllib.request

        url = f"http://127.0.0.1:{pods['gateway'].port}/api/workstations"
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(url, timeout=3)
        assert exc.value.code == 401
        exc.value.close()
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {his_key}"}), timeout=3) as r:
            assert r.status == 200
    finally:
        for p in reversed(procs):
            assert p.stop() == 0, p.log()[-3000:]


# ------------------------------------------------------------------ the workstation agent as systemd runs it


def systemd_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of a systemd EnvironmentFile (comments and blank lines ignored)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


def test_workstation_agent_as_the_systemd_unit_runs_it_enrols_and_restarts(tmp_path: Path) -> None:
    """deploy/README.md's Linux steps: the unit's ExecStart and EnvironmentFiles (agent.env from the example,
    enrol.env with a token from `nhigw gateway enrol-token`) against a gateway on Redis; the workstation shows
    online; after enrol.env is removed the agent starts again on its kept key."""
    import json
    import urllib.request

    from nhigw.bus.seal import Sealer
    from tests.conftest import start_redis

    unit = (ROOT / "deploy" / "systemd" / "nhigw-agent.service").read_text()
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))  # type: ignore[union-attr]
    env_files = re.findall(r"^EnvironmentFile=(-?)(\S+)$", unit, re.M)
    assert env_files == [("", "/etc/nhigw/agent.env"), ("-", "/etc/nhigw/enrol.env")]
    assert exec_start[0] == "/opt/nhigw/venv/bin/nhigw"

    password, key = os.urandom(16).hex(), Sealer.new_key_b64()
    (tmp_path / "redis").mkdir()
    redis, redis_port = start_redis(tmp_path / "redis", password=password)
    redis_url = f"redis://:{password}@127.0.0.1:{redis_port}/0"
    gw_port, agent_port = free_port(), free_port()
    gw_env = {"NHIGW_REDIS_URL": redis_url, "NHIGW_BUS_KEY": key}
    procs: list[Proc] = []
    try:
        procs.append(Proc("ws-gateway", ["gateway", "--port", str(gw_port)], tmp_path, gw_env).wait_ready())
        token = subprocess.run([sys.executable, "-m", "nhigw", "gateway", "enrol-token", "--workstation", "ws-03"],
                               env={**os.environ, **gw_env}, capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()

        # /etc/nhigw/agent.env from the example, with this bench's Redis; /etc/nhigw/enrol.env with the token.
        example = systemd_env_file((ROOT / "deploy" / "systemd" / "agent.env.example").read_text())
        assert set(example) == {"NHIGW_WORKSTATION", "NHIGW_REDIS_URL", "NHIGW_CLOUD_URL", "NHIGW_LOG_LEVEL"}
        assert "NHIGW_BUS_KEY" not in example  # the workstation never holds the gateway key
        etc = tmp_path / "etc" / "nhigw"
        etc.mkdir(parents=True)
        (etc / "agent.env").write_text(f"NHIGW_WORKSTATION={example['NHIGW_WORKSTATION']}\nNHIGW_REDIS_URL={redis_url}\nNHIGW_CLOUD_URL=http://127.0.0.1:9\n")
        (etc / "enrol.env").write_text(f"NHIGW_ENROL_TOKEN={token}\n")
        state = tmp_path / "var" / "lib" / "nhigw"

        def start(name: str) -> Proc:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NHIGW_")}
            for optional, path in env_files:
                local = tmp_path / path.lstrip("/")
                if optional and not local.exists():
                    continue
                env.update(systemd_env_file(local.read_text()))
            args = [a.replace("/var/lib/nhigw", str(state)) for a in exec_start[1:]]
            args[args.index("--port") + 1] = str(agent_port)
            return Proc(name, args, tmp_path, env)

        def online() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/api/workstations", timeout=3) as r:
                return any(w["workstation"] == "ws-03" and w["online"] for w in json.load(r)["workstations"])

        def wait_online(want: bool) -> None:
            deadline = time.monotonic() + 10
            while online() != want:
                assert time.monotonic() < deadline, f"ws-03 online should be {want}"
                time.sleep(0.1)

        agent = start("ws-agent").wait_ready()
        wait_online(True)
        assert agent.stop() == 0
        wait_online(False)
        (etc / "enrol.env").unlink()  # README step 4: the token is spent, the agent keeps its key
        procs.append(start("ws-agent-restarted").wait_ready())
        wait_online(True)
        for p in (agent, *procs):
            assert token not in p.log() and password not in p.log()
    finally:
        for p in reversed(procs):
            p.stop()
        redis.terminate()
        redis.wait(5)
