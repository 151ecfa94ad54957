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
vpcd ports of its own; it holds the machine-wide pcscd lock through the ``pcscd`` fixture so that
no other test run's pcscd restart kills it.
"""

from __future__ import annotations

import asyncio
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

from tests.helpers import ROOT, Proc, free_port, insecure_ssl, wait_port

pytestmark = [pytest.mark.pcsc, pytest.mark.redis]

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
VENV_BIN = Path(sys.executable).parent
CONTAINER_PORTS = {"sim": 8068, "gateway": 8066, "agent": 5066}


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


def free_port_run(n: int) -> int:
    """A base port with n consecutive free ports (vpcd takes base..base+3)."""
    for _ in range(200):
        base = free_port()
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
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
        if base_of(service) in CONTAINER_PORTS:
            s = s.replace(f"127.0.0.1:{CONTAINER_PORTS[base_of(service)]}", f"127.0.0.1:{self.ports[service]}")
        return s

    def env(self, service: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        spec = SERVICES[base_of(service)]
        # A fresh clone: no REDIS_PASSWORD / NHIGW_* in the environment compose interpolates from.
        outer = {k: v for k, v in os.environ.items() if not k.startswith("NHIGW_") and k != "REDIS_PASSWORD"}
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
def stack(pcscd: dict, tmp_path: Path) -> Iterator[Stack]:  # type: ignore[type-arg]
    # `pcscd` holds the machine-wide pcscd lock for this session; the agent's own pcscd runs beside it.
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


def in_private_run_pcscd(argv: list[str]) -> list[str]:
    """Run argv in a mount namespace where /run/pcscd is a fresh tmpfs (pcscd's fixed socket path)."""
    script = 'mkdir -p /run/pcscd && mount -t tmpfs -o mode=0755,size=1m nhigw-test /run/pcscd && exec "$@"'
    return [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]


async def get(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with http.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.json(content_type=None)


async def test_compose_services_run_as_processes(stack: Stack) -> None:
    st = stack

    # secrets: the one-shot service writes each role's secrets into that role's volume.
    st.run_once("secrets")
    gw_secrets, agent_secrets = st.volume("secrets-gateway"), st.volume("secrets-agent")
    assert {p.name for p in gw_secrets.iterdir()} == {"redis_password", "bus_key", "master_key", "clients.json", "his_api_key"}
    assert {p.name for p in agent_secrets.iterdir()} == {"redis_password", "master_key"}  # never the gateway key
    assert [p.name for p in st.volume("secrets-redis").iterdir()] == ["redis.conf"]
    password = (gw_secrets / "redis_password").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", password) and (agent_secrets / "redis_password").read_text() == password
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
    assert all(password not in a for a in redis_cmd)  # on no command line

    # sim and the gateway replicas (as many as compose runs).
    replicas = SERVICES["gateway"]["deploy"]["replicas"]
    assert replicas == 2
    gateways = ["gateway", *(f"gateway-{i}" for i in range(2, replicas + 1))]
    for name in ("sim", *gateways, "agent"):
        st.ports[name] = free_port()
    st.procs["sim"] = Cmd("sim", st.argv("sim"), st.tmp, st.env("sim")).wait_ready()
    for name in gateways:
        st.procs[name] = Cmd(name, st.argv(name), st.tmp, st.env(name)).wait_ready()

    # enrol: a one-time token for the demo agent, into the agent's secrets volume only.
    st.run_once("enrol")
    assert (agent_secrets / "enrol_token").stat().st_size > 20 and not (gw_secrets / "enrol_token").exists()

    # The demo agent: its own pcscd + vpcd, virtual cards, `nhigw agent --pcsc`, enrolled with the token.
    agent_env = st.env("agent", {
        "NHIGW_VPCD_BASE_PORT": str(free_port_run(4)),
        "NHIGW_VCARD_PORT": str(free_port()),
        "NHIGW_RUN_DIR": st.remap("/tmp/nhigw-demo", "agent"),  # the image's ENV
    })
    assert "NHIGW_BUS_KEY" not in agent_env and "NHIGW_BUS_KEY_FILE" not in agent_env
    workstation = SERVICES["agent"]["command"][SERVICES["agent"]["command"].index("--workstation") + 1]
    agent = f"https://127.0.0.1:{st.ports['agent']}"

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure_ssl())) as http:

        async def start_agent(name: str) -> None:
            st.procs[name] = proc = Cmd(name, in_private_run_pcscd(st.argv("agent")), st.tmp, agent_env)
            deadline = time.monotonic() + 40
            while True:
                try:
                    _, body = await get(http, agent + "/api/common/v1/Status")
                    s = body["status"]
                    if s["sam"]["status"] == 2 and s["hc"]["status"] == 2 and s["hpc"]["status"] >= 1:
                        return
                except aiohttp.ClientError:
                    pass
                assert proc.proc.poll() is None and time.monotonic() < deadline, proc.log()[-4000:]
                await asyncio.sleep(0.2)

        async def register_through_every_gateway() -> None:
            """One call per gateway replica, over Redis, to the agent's cards in its own pcscd, checked by the simulator."""
            for name in gateways:
                url = f"http://127.0.0.1:{st.ports[name]}/api/v1/BasicData/Register"
                async with http.post(url, json={}, headers={"X-Workstation": workstation}) as r:
                    assert r.status == 401  # a gateway on the LAN wants an HIS key
                status, body = 0, {}
                for _ in range(100):  # until this replica sees the agent
                    async with http.post(url, json={}, headers={"X-Workstation": workstation, "Authorization": f"Bearer {his_key}"}) as r:
                        status, body = r.status, await r.json(content_type=None)
                    if status != 503:
                        break
                    await asyncio.sleep(0.1)
                assert status == 200, (name, body)
                assert (body["name"], body["idCardNum"]) == ("測試十", "Z299999929")

        await start_agent("agent")

        # Every compose healthcheck passes, as written (the gateways probe /readyz: their bus).
        for name in ("sim", *gateways, "agent"):
            r = st.healthcheck(name)
            assert r.returncode == 0, (name, r.stderr)
        assert SERVICES["gateway"]["environment"]["NHIGW_HEALTH_URL"].endswith("/readyz")
        await register_through_every_gateway()

        # A restart (crash, `docker compose restart agent`) keeps the enrolment: the used token is not spent again.
        assert st.procs["agent"].stop() == 0, st.procs["agent"].log()[-3000:]
        await start_agent("agent-restarted")
        await register_through_every_gateway()

    # A clean stop: SIGTERM (docker stop) ends every part with status 0, pcscd included.
    for name in ("agent-restarted", *reversed(gateways), "sim"):
        assert st.procs[name].stop() == 0, (name, st.procs[name].log()[-3000:])
    assert not running_under(st.tmp / "fs-agent"), "the demo agent left pcscd running"
    # Secrets reach no log.
    bus_key = (gw_secrets / "bus_key").read_text()
    for p in st.procs.values():
        text = p.log()
        assert password not in text and bus_key not in text and his_key not in text and "Z299999929" not in text, p.name


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
    assert r.stdout.split()[0] == "rediss://user:other@redis:6380/1"  # its own credentials win
    r = run({"NHIGW_BUS_KEY_FILE": str(tmp_path / "missing")})
    assert r.returncode == 64 and "cannot read" in r.stderr
    # Without a helper name, the entry point is `nhigw` itself.
    r = subprocess.run([str(bin_dir / "nhigw-entrypoint"), "--version"], env={"PATH": f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin"}, capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("nhigw ")


def test_healthcheck_fails_on_a_dead_or_unready_service(tmp_path: Path) -> None:
    bin_dir = image_bin(tmp_path)
    r = subprocess.run([str(bin_dir / "nhigw-healthcheck"), f"http://127.0.0.1:{free_port()}/healthz"], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "nhigw-healthcheck" in r.stderr
