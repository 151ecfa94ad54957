"""``nhigw``: one command, one subcommand per service.

    nhigw up        the whole stack in one process (in-memory bus, in-process virtual cards, simulator)
    nhigw agent     the reader agent of one workstation (HTTPS 127.0.0.1:5066)
    nhigw gateway   the clinic gateway (HTTP 127.0.0.1:8066)
    nhigw sim       the NHI cloud simulator (HTTP 127.0.0.1:8068)
    nhigw compat    csHis / VHC SDK 2.x compatibility (HTTPS 127.0.0.1:5067)
    nhigw vcard     virtual cards in a real pcscd through vpcd

Settings come from flags, then environment variables (``ENVIRONMENT`` and ``SECRETS``:
``NHIGW_REDIS_URL``, ``NHIGW_BUS_KEY`` (gateway key), ``NHIGW_ENROL_TOKEN``, ``NHIGW_CLOUD_URL``,
``NHIGW_DATA_DIR``, ``NHIGW_WORKSTATION``, ...), resolved once in ``main``: nothing below the CLI
reads the environment. Agents enrol once with a one-time token (``nhigw gateway
enrol-token``) and keep their own key; the gateway key stays on the gateway replicas.

Secrets (``SECRETS``: the gateway key, the enrolment token, the HIS API key, the Redis URL
with its password) are best not given as flags, which every local user sees in ``ps``: each
is read, in this order, from its flag, its ``--…-file`` flag, ``NHIGW_<NAME>`` or the file
named by ``NHIGW_<NAME>_FILE`` (a flag value is used, with a warning in the log).

The agent and compat have no authentication: they refuse to listen on anything but a
loopback address unless ``--allow-non-loopback`` says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from nhigw import __version__
from nhigw.common import cloudtls
from nhigw.common import loop as evloop
from nhigw.common.cloudtls import add_cloud_options
from nhigw.common.logging import configure, get_logger
from nhigw.common.serve import Site, data_dir, refuse_non_loopback, serve

if TYPE_CHECKING:
    from nhigw.agent.buslink import BusLink
    from nhigw.agent.sessions import LinkGroup
    from nhigw.bus.base import Bus
    from nhigw.common.tls import CertKeeper
    from nhigw.vcard.bank import CardFactory, VirtualReaderBank

log = get_logger("nhigw")
T = TypeVar("T")

DEFAULT_SIM_URL = "http://127.0.0.1:8068"


# attribute, environment name, flag: the secret settings (see the module docstring)
SECRETS = (("bus_key", "NHIGW_BUS_KEY", "--bus-key"), ("enrol_token", "NHIGW_ENROL_TOKEN", "--enrol-token"), ("api_key", "NHIGW_API_KEY", "--api-key"), ("redis", "NHIGW_REDIS_URL", "--redis"))


# attribute, environment variable, default, converter, the commands it is read for (None: every
# command with that flag; a command that sets the value itself, such as ``up``, is left out).
ENVIRONMENT: tuple[tuple[str, str, object, Callable[[str], object], frozenset[str] | None], ...] = (
    ("log_level", "NHIGW_LOG_LEVEL", "INFO", str, None),
    ("data_dir", "NHIGW_DATA_DIR", str(Path.home() / ".local" / "share" / "nhigw"), str, None),
    ("bus_prefix", "NHIGW_BUS_PREFIX", "nhigw", str, None),
    ("cloud", "NHIGW_CLOUD_URL", None, str, frozenset({"agent", "gateway", "compat", "doctor"})),
    ("cloud_ca", "NHIGW_CLOUD_CA", None, str, frozenset({"agent", "gateway", "compat", "up", "doctor"})),
    ("cloud_env", "NHIGW_CLOUD_ENV", None, str, frozenset({"agent", "gateway", "up", "doctor"})),
    ("workstation", "NHIGW_WORKSTATION", None, str, frozenset({"agent", "compat"})),
    ("agent", "NHIGW_AGENT_URL", None, str, frozenset({"compat"})),
    ("clients", "NHIGW_CLIENTS", None, str, frozenset({"gateway"})),
    ("site", "NHIGW_SITE", None, str, frozenset({"gateway"})),
    ("upload_cloud", "NHIGW_UPLOAD_CLOUD_URL", None, str, frozenset({"gateway"})),
    ("replica_wait", "NHIGW_REPLICA_WAIT", None, int, frozenset({"gateway"})),
    ("replica_wait_ms", "NHIGW_REPLICA_WAIT_MS", None, int, frozenset({"gateway"})),
    ("audit_syslog", "NHIGW_AUDIT_SYSLOG", None, str, frozenset({"gateway", "up"})),
    ("audit_syslog_ca", "NHIGW_AUDIT_SYSLOG_CA", None, str, frozenset({"gateway", "up"})),
    ("admin", "NHIGW_SIM_ADMIN", False, lambda v: v != "0", frozenset({"sim", "up"})),
    ("tls_check_s", "NHIGW_TLS_CHECK_S", None, float, frozenset({"agent", "up"})),  # certificate renewal checks (tests)
)


def _run(main: Coroutine[Any, Any, T]) -> T:
    """A command's coroutine on the event loop ``NHIGW_LOOP`` names (``nhigw.common.loop``: uvloop where installed)."""
    return evloop.run(main, choice=os.environ.get(evloop.ENV))


def resolve_environment(args: argparse.Namespace) -> None:
    """Each setting of ``ENVIRONMENT`` whose flag was not given: from its variable, else its default."""
    for attr, env, default, convert, commands in ENVIRONMENT:
        if (commands is None and not hasattr(args, attr)) or (commands is not None and args.cmd not in commands):
            continue
        value = getattr(args, attr, None)
        if value is None or value is False:
            raw = os.environ.get(env, "")
            try:
                value = convert(raw) if raw else default
            except ValueError:
                sys.exit(f"nhigw: {env}={raw!r} is not a valid value")
        setattr(args, attr, value)


def resolve_secrets(args: argparse.Namespace) -> None:
    """Fill each secret of ``SECRETS`` that ``args`` has from its flag, file flag, environment or file."""
    for attr, env, flag in SECRETS:
        if not hasattr(args, attr):
            continue
        value = getattr(args, attr)
        if value:
            if attr != "redis" or urlsplit(value).password:
                log.warning("secret_on_command_line", option=flag, hint=f"use {flag}-file, {env} or {env}_FILE: a command line is visible to every local user")
            continue
        path = getattr(args, attr + "_file", None) or os.environ.get(env + "_FILE")
        if path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                sys.exit(f"nhigw: cannot read {flag} from {path}: {exc.strerror}")
        setattr(args, attr, value or os.environ.get(env) or None)


def bus_from(args: argparse.Namespace, *, gateway: bool = True) -> "Bus":
    from nhigw.bus import make_bus

    url, key = args.redis, args.bus_key
    if gateway and url and not url.startswith("memory://") and not key:
        sys.exit("nhigw: a gateway on Redis needs the gateway key (--bus-key or NHIGW_BUS_KEY; make one with `nhigw keygen`)")
    try:
        return make_bus(url)
    except ValueError as exc:  # a malformed Sentinel URL (nhigw.bus.redisurl)
        sys.exit(f"nhigw: {exc}")


# ------------------------------------------------------------------ builders (shared by the subcommands and `up`)


def build_sim(store=None, state=None, console_requests: int = 200) -> web.Application:
    from nhigw.sim.app import create_app

    return create_app(store, state, console_requests=console_requests)


async def build_agent(args: argparse.Namespace, *, bank=None):
    from nhigw.agent.app import create_app
    from nhigw.agent.cardio import InProcessBackend, PcscBackend, ReaderBackend
    from nhigw.agent.core import Agent
    from nhigw.agent.dc import DcClient

    if getattr(args, "no_pcsc", False):
        from nhigw.agent.sessions import NoReaderBackend

        backend: ReaderBackend = NoReaderBackend()  # a cloud SAM only: serves device sessions (nhigw.agent.sessions)
    else:
        backend = InProcessBackend(bank) if bank is not None else PcscBackend()
    cloud = args.cloud or DEFAULT_SIM_URL
    dc = DcClient(cloud, tls=cloudtls.from_args(args), environment=getattr(args, "cloud_env", None))
    agent = Agent(backend=backend, dc=dc, workstation=args.workstation or socket.gethostname(), data_dir=data_dir(args, "agent"))
    cors = args.cors.split(",") if getattr(args, "cors", None) else None
    from nhigw.common.guard import bind_hosts

    app = create_app(agent, cors_hosts=cors, allowed_hosts=bind_hosts(args.host))
    app.cleanup_ctx.append(lambda _app: _card_monitor(agent))
    return agent, app


@contextlib.asynccontextmanager
async def _card_monitor(agent) -> AsyncIterator[None]:
    """The agent's card monitor (``nhigw.agent.discovery``) while its app runs."""
    agent.start_monitor()
    try:
        yield
    finally:
        await agent.cards.stop()


async def _stop_task(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _kept_tls(args: argparse.Namespace, app: web.Application, ddir: Path, workstation: str, ca_dir: Path | None = None) -> "CertKeeper":
    """A data directory's server certificate (signed by the CA of ``ca_dir``, default its own), renewed while ``app`` runs
    (its renewal task is one ``cleanup_ctx`` of the app the certificate serves)."""
    from nhigw.common.tls import CHECK_S, CertKeeper

    keeper = CertKeeper(ddir, workstation, check_s=args.tls_check_s or CHECK_S, ca_dir=ca_dir)

    @contextlib.asynccontextmanager
    async def renewal() -> AsyncIterator[None]:
        task = asyncio.create_task(keeper.run(), name=f"tls-renewal-{ddir.name}")
        try:
            yield
        finally:
            await _stop_task(task)

    app.cleanup_ctx.append(lambda _app: renewal())
    return keeper


async def _auto_verify_sam(agent, first_pass: asyncio.Event) -> None:
    """``--auto-verify-sam`` (virtual and test SAMs): verify each SAM once when it is present, unverified.

    One attempt per insertion: a failure is logged and not retried until the SAM is removed and
    put back (too many failed verifications lock a physical SAM). ``first_pass`` is set once the
    SAM present at the start (if any) has had its attempt.
    """
    from nhigw.contracts.codes import StatusError

    events = agent.subscribe()
    tried = False
    try:
        while True:
            if agent.sam_state == 0:
                tried = False
            elif agent.initialized and agent.sam_state == 1 and not tried:
                tried = True
                try:
                    await agent.sam_verify()
                except StatusError as exc:
                    log.warning("auto_verify_sam_failed", statusCode=exc.code, detail=exc.detail)
            first_pass.set()
            await events.get()
    finally:
        agent.unsubscribe(events)


READY_WAIT_S = 10.0  # how long "nhigw ready" waits for what a first HIS call needs (the SAM verified, the agent heard)


async def _settle(what: str, done: Callable[[], bool], timeout_s: float = READY_WAIT_S) -> None:
    """Wait (bounded) until ``done()``, so that "ready" means a first HIS call can be served; past the bound,
    a warning says what is missing and the process serves anyway (an HIS asks again, an operator looks)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not done():
        if loop.time() >= end:
            log.warning("not_settled_at_ready", waitedFor=what, timeout_s=timeout_s)
            return
        await asyncio.sleep(0.02)


async def _enrolled(args: argparse.Namespace, bus, keys, workstation: str):
    """The agent's bus identity: kept in its data directory, or traded for its one-time enrolment token."""
    from nhigw.bus.enrol import EnrolError, agent_identity, load_identity
    from nhigw.gateway.cli import self_issued_token

    token = getattr(args, "enrol_token", None)
    ddir = None if getattr(args, "cmd", "") == "up" else data_dir(args, "agent")
    if not token and (ddir is None or load_identity(ddir, keys.prefix) is None):
        token = await self_issued_token(bus, keys.prefix, args, workstation)
    try:
        return await agent_identity(bus, keys, workstation, data_dir=ddir, token=token)
    except EnrolError as exc:
        sys.exit(f"nhigw: {exc}")


@dataclass
class AgentRun:
    """What ``start_agent`` started once every site listens: the bus links and the SAM's auto-verification."""

    link: "BusLink | LinkGroup | None" = None
    auto_verify: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.stop()
        await _stop_task(self.auto_verify)


async def start_agent(agent, args: argparse.Namespace, bus) -> AgentRun:
    """Auto-Initial and the bus link after the sites listen (in ``up`` the gateway issues the agent its
    enrolment token only once it runs); the card monitor and certificate renewal are the app's (``cleanup_ctx``)."""
    from nhigw.agent.buslink import BusLink
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.contracts.codes import StatusError

    run = AgentRun()
    if args.auto_init or getattr(args, "no_pcsc", False):
        try:
            await agent.initial(None)
        except StatusError as exc:
            log.warning("auto_init_failed", statusCode=exc.code, detail=exc.detail)
        if args.auto_verify_sam:
            # pcscd may report a card a moment after Initial: verify the SAM whenever one appears. The
            # one present now is verified (or has failed) before the process says it is ready.
            first_pass = asyncio.Event()
            task = run.auto_verify = asyncio.create_task(_auto_verify_sam(agent, first_pass), name="auto-verify-sam")
            await _settle("the SAM's verification", lambda: first_pass.is_set() or task.done())
    link: BusLink | LinkGroup | None = None
    if bus is not None:
        keys = BusKeys(args.bus_prefix)
        ident = await _enrolled(args, bus, keys, agent.workstation)
        port = getattr(args, "agent_port", None) or args.port
        component_url = f"{'http' if args.no_tls else 'https'}://127.0.0.1:{port}"
        link = BusLink(agent, bus, keys, ident, component_url=component_url, cloud_env=agent.dc.environment)
        await link.start()
        if getattr(args, "no_pcsc", False):
            from nhigw.agent.sessions import LinkGroup, ServedSessions, SessionLink

            slink = SessionLink(ServedSessions(agent, max_sessions=args.max_sessions), bus, keys, ident)
            await slink.start()
            link = LinkGroup(slink, link)
    run.link = link
    return run


def build_gateway(args: argparse.Namespace, bus) -> web.Application:
    from nhigw.gateway.cli import build_gateway_app

    return build_gateway_app(args, bus, cloud=args.cloud or DEFAULT_SIM_URL, data_dir=data_dir(args, "gateway"), audit_file=not args.redis)


# ------------------------------------------------------------------ subcommands


async def cmd_sim(args: argparse.Namespace) -> None:
    from nhigw.sim.store import SimStore

    store = SimStore.seeded()
    store.admin_enabled = args.admin
    store.dedupe_writes = args.dedupe_writes
    state = None
    if args.state:
        from nhigw.sim.persist import StateFile

        state = StateFile(args.state, reset=args.reset)
    elif args.reset:
        sys.exit("nhigw sim: --reset needs --state FILE")
    await serve([Site(build_sim(store, state, args.console_requests), args.host, args.port, label="sim")])


async def cmd_vcard(args: argparse.Namespace) -> None:
    from nhigw.vcard.app import VcardService, create_app
    from nhigw.vcard.bank import CardFactory
    from nhigw.vcard.identities import Identities, KeyStore

    factory = CardFactory(Identities.load(Path(args.identities) if args.identities else None), KeyStore(data_dir(args, "vcard")))
    svc = VcardService(factory, vpcd_host=args.vpcd_host, base_port=args.base_port, sim_url=args.sim)
    slots = args.slot or ["0=" + factory.default_specs()[0], "1=" + factory.default_specs()[1]]

    async def started() -> None:
        for s in slots:
            n, _, spec = s.partition("=")
            await svc.insert(int(n), spec)
            print(f"nhigw vcard slot {n}: {spec}", flush=True)

    await serve([Site(create_app(svc), args.host, args.port, label="vcard")], on_started=started, on_stop=svc.close)


async def cmd_bridge(args: argparse.Namespace) -> None:
    """``nhigw agent --component URL``: the official 6.0 component as the card backend (``nhigw.agent.bridge``)."""
    from nhigw.agent.bridge import ComponentBridge, ComponentTrust, RefusedSessions
    from nhigw.agent.buslink import BusLink
    from nhigw.agent.sessions import LinkGroup, SessionLink
    from nhigw.common.http import healthz
    from nhigw.contracts.buskeys import BusKeys

    if not args.redis:
        sys.exit("nhigw: an agent bridged to the official component serves the gateway only: it needs --redis (or NHIGW_REDIS_URL)")
    ddir = data_dir(args, "agent")
    try:
        trust = ComponentTrust(args.component, ca_file=Path(args.component_ca) if args.component_ca else None, pin_dir=ddir)
    except ValueError as exc:
        sys.exit(f"nhigw: {exc}")
    workstation = args.workstation or socket.gethostname()
    bridge = ComponentBridge(args.component, workstation, trust, poll_s=args.component_poll_s, timeout_s=args.component_timeout_s)
    bus = bus_from(args, gateway=False)
    links: list = []

    async def readyz(_req: web.Request) -> web.Response:
        checks = await bridge.readiness.run()
        failing = [n for n, passed in checks.items() if not passed]
        return web.json_response({"status": "ok" if not failing else "not ready: " + ", ".join(failing), "checks": checks}, status=503 if failing else 200)

    async def started() -> None:
        keys = BusKeys(args.bus_prefix)
        ident = await _enrolled(args, bus, keys, workstation)
        await bridge.start()
        link = BusLink(bridge, bus, keys, ident, forward=bridge.forward, cloud_env=cloudtls.cloud_env(args.cloud, args.cloud_env))
        await link.start()
        slink = SessionLink(RefusedSessions(bridge), bus, keys, ident)
        await slink.start()
        links.append(LinkGroup(slink, link))

    async def stopping() -> None:
        for link in links:
            await link.stop()
        await bridge.stop()
        await bus.close()

    sites = []
    if args.port:  # its own API is off (5066 is the component's); --port serves /healthz and /readyz only
        health = web.Application()
        health.router.add_get("/healthz", healthz)
        health.router.add_get("/readyz", readyz)
        sites.append(Site(health, args.host, args.port, label="agent"))
    await serve(sites, on_started=started, on_stop=stopping)


async def cmd_agent(args: argparse.Namespace) -> None:
    refuse_non_loopback(args, "agent")
    if args.component:
        await cmd_bridge(args)
        return
    args.port = args.port or 5066
    bank = _virtual_bank(args)[0] if args.virtual else None
    bus = bus_from(args, gateway=False) if args.redis else None
    agent, app = await build_agent(args, bank=bank)
    agent.tls = None if args.no_tls else _kept_tls(args, app, data_dir(args, "agent"), agent.workstation)
    ctx = agent.tls.context if agent.tls else None
    run = AgentRun()

    async def started() -> None:
        nonlocal run
        run = await start_agent(agent, args, bus)

    async def stopping() -> None:
        await run.stop()
        await agent.stop()
        if bus:
            await bus.close()

    await serve([Site(app, args.host, args.port, ctx, label="agent")], on_started=started, on_stop=stopping)


async def cmd_gateway(args: argparse.Namespace) -> None:
    bus = bus_from(args)
    app = build_gateway(args, bus)

    async def stopping() -> None:
        await bus.close()

    await serve([Site(app, args.host, args.port, label="gateway")], on_stop=stopping)


def _virtual_bank(args: argparse.Namespace) -> tuple[VirtualReaderBank, CardFactory]:
    """The in-process readers with the default cards, and the factory that made them (its key
    store holds the SAMs' keys, which ``up`` registers with the simulator)."""
    from nhigw.vcard.bank import CardFactory, VirtualReaderBank
    from nhigw.vcard.identities import Identities, KeyStore

    factory = CardFactory(Identities.load(Path(args.identities) if getattr(args, "identities", None) else None), KeyStore(None))
    bank = VirtualReaderBank()
    for reader, spec in zip(bank.names, factory.default_specs(), strict=False):
        bank.insert(reader, factory.make(spec))
    return bank, factory


async def cmd_up(args: argparse.Namespace) -> None:
    """Sim + agent (ws-01, in-process cards or --pcsc) + gateway + compat in one process."""
    from nhigw.sim.store import SimStore
    from nhigw.vcard.cards import SamCard

    refuse_non_loopback(args, "agent and compat")
    store = SimStore.seeded()
    store.admin_enabled = args.admin
    bank = None
    if not args.pcsc:
        bank, factory = _virtual_bank(args)
        for card in bank.cards.values():
            if isinstance(card, SamCard):
                store.register_sam(card.ident.samId, card.ident.hospitalId, factory.keys.public_pem(card.ident.samId))
    args.cloud = args.cloud or f"http://{args.host}:{args.sim_port}"
    args.workstation = args.workstation or "ws-01"
    args.auto_init = True
    args.auto_verify_sam = True
    bus = bus_from(args)
    agent, agent_app = await build_agent(args, bank=bank)
    gw_app = build_gateway(args, bus)
    agent.tls = None if args.no_tls else _kept_tls(args, agent_app, data_dir(args, "agent"), agent.workstation)
    ctx = agent.tls.context if agent.tls else None
    from nhigw.compat.cli import build_from_args as build_compat

    gw_local = (args.gateway_host or args.host).replace("0.0.0.0", "127.0.0.1")
    compat_app = build_compat(args, agent_url=f"{'http' if args.no_tls else 'https'}://{args.host}:{args.agent_port}", cloud_url=f"http://{gw_local}:{args.gateway_port}")
    compat_ctx = None if args.no_tls else _kept_tls(args, compat_app, data_dir(args, "compat"), agent.workstation, ca_dir=data_dir(args, "agent")).context
    run = AgentRun()

    async def started() -> None:
        nonlocal run
        from nhigw.gateway.app import GATEWAY

        if not getattr(args, "enrol_token", None):  # one process: the gateway issues the agent its token
            args.enrol_token = await gw_app[GATEWAY].agents.issue_token(args.workstation)
        run = await start_agent(agent, args, bus)
        gateway = gw_app[GATEWAY]
        await _settle("the gateway hearing the agent", lambda: gateway.registry.online(args.workstation))

    async def stopping() -> None:
        await run.stop()
        await agent.stop()
        await bus.close()

    sites = [
        Site(build_sim(store), args.host, args.sim_port, label="sim"),
        Site(agent_app, args.host, args.agent_port, ctx, label="agent"),
        Site(gw_app, args.gateway_host or args.host, args.gateway_port, label="gateway"),
        Site(compat_app, args.host, args.compat_port, compat_ctx, label="compat"),
    ]
    await serve(sites, on_started=started, on_stop=stopping)


def cmd_keygen(_args: argparse.Namespace) -> None:
    from nhigw.bus.seal import Sealer

    print(Sealer.new_key_b64())


# ------------------------------------------------------------------ argument parsing


def common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data-dir", help="where keys, certificates and state live (default ~/.local/share/nhigw)")
    sp.add_argument("--host", default="127.0.0.1")


def unauthenticated(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--allow-non-loopback", action="store_true", help="listen on a non-loopback --host although this service has no authentication")


def busopts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--redis", help="Redis URL (redis://[:password@]host:port/db, or Sentinel: redis+sentinel://[:password@]host1:26379,host2:26379/<service>/<db>); none = in-process bus")
    sp.add_argument("--bus-key", help="gateway key: 32-byte base64, sealing agent keys and enrolment tokens in Redis (`nhigw keygen`); gateway replicas only")
    sp.add_argument("--bus-key-file", help="file holding the gateway key (or NHIGW_BUS_KEY / NHIGW_BUS_KEY_FILE): not visible in ps")
    sp.add_argument("--bus-prefix", help="key/channel prefix on the bus (or NHIGW_BUS_PREFIX; default nhigw)")


def agentopts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--workstation", help="workstation id (default: host name)")
    sp.add_argument("--cloud", help=f"NHI cloud / DC base URL (default {DEFAULT_SIM_URL}, the simulator)")
    add_cloud_options(sp)
    sp.add_argument("--cors", help="comma-separated CORS host patterns (default *.nhi.gov.tw)")
    sp.add_argument("--no-tls", action="store_true", help="serve plain HTTP (tests only)")
    sp.add_argument("--identities", help="virtual card identities JSON (default: the seeded test cards)")
    sp.add_argument("--enrol-token", help="one-time enrolment token (`nhigw gateway enrol-token`); needed once, the agent keeps its key")
    sp.add_argument("--enrol-token-file", help="file holding the enrolment token (or NHIGW_ENROL_TOKEN / NHIGW_ENROL_TOKEN_FILE)")


def add_sim_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("sim", help="NHI cloud simulator")
    common(sp)
    sp.add_argument("--port", type=int, default=8068)
    sp.add_argument("--admin", action="store_true", help="enable the admin API: fault injection and clock (/test/v1/Faults, /Clock)")
    sp.add_argument("--dedupe-writes", action="store_true", help="answer a write sent again with the same Idempotency-Key from a cache instead of executing it (the real NHI cloud does not)")
    sp.add_argument("--state", metavar="FILE", help="keep the simulator's state (patients, test cards, visits, numbers, uploads, used signatures, clock, counts) in this SQLite file across restarts (default: in memory)")
    sp.add_argument("--reset", action="store_true", help="with --state: forget the saved state and start from the seed")
    sp.add_argument("--console-requests", type=int, default=200, metavar="N", help="how many of the last requests the developer console (/console/, needs --admin) keeps in memory (default 200; not kept in --state)")


def add_vcard_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("vcard", help="virtual cards into pcscd via vpcd")
    common(sp)
    sp.add_argument("--port", type=int, default=8069, help="control API port")
    sp.add_argument("--vpcd-host", default="127.0.0.1")
    sp.add_argument("--base-port", type=int, default=35963, help="vpcd port of slot 0")
    sp.add_argument("--slot", action="append", help="N=kind:id, e.g. 1=hc:000073898381 (repeatable)")
    sp.add_argument("--sim", help="simulator URL to provision SAM keys in")
    sp.add_argument("--identities")


def add_agent_parser(sub: argparse._SubParsersAction) -> None:
    from nhigw.agent.trust import add_trust_parser

    sp = sub.add_parser("agent", help="reader agent (6.0 component API)")
    common(sp)
    unauthenticated(sp)
    busopts(sp)
    agentopts(sp)
    sp.add_argument("--port", type=int, help="HTTPS port of its 6.0 component API (default 5066); with --component: plain HTTP /healthz and /readyz only (default: none)")
    mode = sp.add_mutually_exclusive_group()
    mode.add_argument("--pcsc", action="store_true", default=True, help="use PC/SC readers (default)")
    mode.add_argument("--virtual", action="store_true", help="use in-process virtual cards (no pcscd)")
    mode.add_argument("--no-pcsc", action="store_true", help="no reader at all: a cloud SAM serving device sessions (tablets, phones, kiosks) through the gateway")
    mode.add_argument("--component", metavar="URL", help="bridge to the official 6.0 component on this workstation (e.g. https://localhost:5066): it does every card operation, this agent serves the gateway")
    sp.add_argument("--component-ca", metavar="FILE", help="with --component: the certificate (or its CA) the component must present, e.g. the installer's cshis6.crt; default: pinned on first use")
    sp.add_argument("--component-poll-s", type=float, default=1.0, help="with --component: how often its Status is read (also at once after each call of this agent)")
    sp.add_argument("--component-timeout-s", type=float, default=5.0, help="with --component: a call it has not answered by then is 9401")
    sp.add_argument("--max-sessions", type=int, default=500, help="device sessions this agent serves at most (with --no-pcsc)")
    sp.add_argument("--auto-init", action="store_true", help="call Initial at start")
    sp.add_argument("--auto-verify-sam", action="store_true", help="verify the SAM at start (virtual/test SAMs; a physical SAM should be verified on purpose)")
    add_trust_parser(sp, common)


def add_gateway_parsers(sub: argparse._SubParsersAction) -> None:
    """``nhigw gateway`` and its admin commands, ``nhigw audit``, ``nhigw doctor``."""
    from nhigw.gateway.cli import add_admin_parsers, add_gateway_options
    from nhigw.gateway.doctor import add_doctor_parser

    sp = sub.add_parser("gateway", help="clinic gateway")
    common(sp)
    busopts(sp)
    sp.add_argument("--port", type=int, default=8066)
    sp.add_argument("--cloud", help=f"NHI cloud base URL (default {DEFAULT_SIM_URL}, the simulator)")
    add_cloud_options(sp)
    add_gateway_options(sp)
    add_admin_parsers(sub, sp, busopts, common)
    add_doctor_parser(sub, busopts, common)


def add_up_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("up", help="the whole stack in one process")
    common(sp)
    unauthenticated(sp)
    busopts(sp)
    agentopts(sp)
    sp.add_argument("--pcsc", action="store_true", help="use real PC/SC readers instead of in-process cards")
    sp.add_argument("--agent-port", type=int, default=5066)
    sp.add_argument("--gateway-port", type=int, default=8066)
    sp.add_argument("--gateway-host", help="gateway bind address (default --host)")
    sp.add_argument("--sim-port", type=int, default=8068)
    sp.add_argument("--compat-port", type=int, default=5067, help="csHis / VHC SDK compatibility (HTTPS)")
    from nhigw.gateway.cli import add_audit_syslog_options

    add_audit_syslog_options(sp)


def parser() -> argparse.ArgumentParser:
    from nhigw.agent.samcli import add_sam_parser
    from nhigw.compat.cli import add_compat_parser

    p = argparse.ArgumentParser(prog="nhigw", description="NHI card reader control software 6.0, as a clinic gateway")
    p.add_argument("--version", action="version", version=f"nhigw {__version__}")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (or NHIGW_LOG_LEVEL; default INFO)")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_sim_parser(sub)
    add_vcard_parser(sub)
    add_agent_parser(sub)
    add_gateway_parsers(sub)
    add_up_parser(sub)
    add_compat_parser(sub, common, unauthenticated)
    add_sam_parser(sub, common)
    sub.add_parser("keygen", help="print a new bus key")
    sp = sub.add_parser("proto", help="write proto/ (OpenAPI documents, bus JSON Schemas) from the code")
    sp.add_argument("--check", action="store_true", help="write nothing; exit 1 if proto/ differs from the code")
    sp.add_argument("--root", help="repository root (default: this checkout)")
    return p


def main(argv: list[str] | None = None) -> None:
    from nhigw.common.secretbox import NoMachineIdentity

    try:
        _main(argv)
    except NoMachineIdentity as exc:  # a clear refusal, not a stack trace (nhigw.common.secretbox)
        sys.exit(f"nhigw: {exc}")


def _main(argv: list[str] | None) -> None:
    args = parser().parse_args(argv)
    resolve_environment(args)
    configure(args.log_level)
    resolve_secrets(args)
    if args.cmd == "keygen":
        cmd_keygen(args)
        return
    if args.cmd == "sam":
        from nhigw.agent.samcli import cmd_sam

        sys.exit(cmd_sam(args, data_dir(args, "agent")))
    if args.cmd == "agent" and getattr(args, "agentcmd", None) == "trust":
        from nhigw.agent.trust import cmd_trust

        sys.exit(cmd_trust(args, data_dir(args, "agent")))
    if args.cmd == "proto":
        from nhigw import protogen

        sys.exit(protogen.main([*(["--check"] if args.check else []), *(["--root", args.root] if args.root else [])]))
    from nhigw.gateway import cli as gwcli

    if args.cmd == "gateway" and getattr(args, "gwcmd", None) == "add-client":
        gwcli.cmd_add_client(args)
        return
    if args.cmd == "gateway" and getattr(args, "gwcmd", None) == "remove-client":
        gwcli.cmd_remove_client(args)
        return
    if args.cmd == "gateway" and getattr(args, "gwcmd", None) == "enrol-token":
        _run(gwcli.cmd_enrol_token(args))
        return
    if args.cmd == "audit":
        sys.exit(_run(gwcli.cmd_audit(args, data_dir(args, "gateway"))))
    if args.cmd == "doctor":
        from nhigw.gateway.doctor import cmd_doctor

        sys.exit(cmd_doctor(args, Path(args.data_dir)))  # reads the data directory, makes nothing there
    if args.cmd == "compat":
        from nhigw.compat.cli import cmd_compat

        _run(cmd_compat(args, data_dir(args, "compat"), ca_dir=data_dir(args, "agent")))
        return
    fn = {"sim": cmd_sim, "vcard": cmd_vcard, "agent": cmd_agent, "gateway": cmd_gateway, "up": cmd_up}[args.cmd]
    try:
        _run(fn(args))  # uvloop where installed (nhigw.common.loop)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
