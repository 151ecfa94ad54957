"""The gateway's command-line pieces, wired into ``nhigw`` by ``nhigw.cli``.

    nhigw gateway [--clients FILE] ...             run a replica
    nhigw gateway enrol-token --workstation ws-03  print a one-time agent enrolment token
    nhigw gateway add-client --name his-a --hospital 3501200000 --workstations 'ws-0*'
    nhigw gateway add-client --name it-desk --hospital 3501200000 --role operator
    nhigw gateway remove-client --name it-desk
    nhigw audit verify [--checkpoints FILE]         check the audit chain and its checkpoints (exit 1 if broken)
    nhigw audit export --since 2026-11-01 --until 2026-12-01
    nhigw audit syslog --since 2026-12-01T08:00 --to tls://atna.example:6514 --syslog-ca ca.pem

``enrol-token`` and ``audit`` work on the same Redis (``--redis``, ``--bus-prefix``) and
gateway key (``--bus-key``) as the gateway replicas, without a running gateway; with no
Redis, ``audit`` reads the single-process audit file (``--file``, default
``<data-dir>/gateway/audit.jsonl``).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nhigw.common.guard import is_loopback

if TYPE_CHECKING:
    from nhigw.gateway.auth import Clients
    from nhigw.gateway.service import GatewaySettings


def gateway_key(args: argparse.Namespace) -> bytes | None:
    key = getattr(args, "bus_key", None)  # flag, file or environment: resolved by ``nhigw.cli``
    return base64.b64decode(key) if key else None


def add_gateway_options(sp: argparse.ArgumentParser) -> None:
    # Defaults not given here are ``GatewaySettings``' / ``UpstreamSettings``' (one place each).
    sp.add_argument("--clients", help="HIS clients JSON (API keys); none = open, loopback only (or NHIGW_CLIENTS)")
    sp.add_argument("--site", help="site name in audit records (or NHIGW_SITE; default clinic)")
    sp.add_argument("--max-deliveries", type=int, help="deliveries before a job is dead-lettered (default 3: nhigw.gateway.queue.MAX_DELIVERIES)")
    sp.add_argument("--claim-idle-s", type=float, help="reclaim another replica's job after it is idle this long (default 10)")
    sp.add_argument("--rate-per-s", type=float, help="rate limit per HIS client, every endpoint (requests/s, per replica; default 50)")
    sp.add_argument("--rate-burst", type=float, help="burst per HIS client (default 100)")
    sp.add_argument("--replica-wait", type=int, metavar="N",
                    help="acknowledge admission and a job's end only once N Redis replicas have it (WAIT; or NHIGW_REPLICA_WAIT); default 1 under Sentinel, 0 (off) on one Redis")
    sp.add_argument("--replica-wait-ms", type=int, help="how long to wait for those replicas before answering 9402 (or NHIGW_REPLICA_WAIT_MS; default 1000)")
    add_audit_syslog_options(sp)
    sp.add_argument(
        "--upload-cloud",
        help="base URL of the IC-data upload host that /V2000/VNHI_Upload goes to (real: https://medvpndti.nhi.gov.tw); default: the business cloud (--cloud)",
    )


def add_audit_syslog_options(sp: argparse.ArgumentParser) -> None:
    """The gateway's audit stream (``nhigw gateway`` and ``nhigw up``)."""
    sp.add_argument("--audit-syslog", metavar="URL",
                    help="stream every audit record as an RFC 5424 / IHE ATNA syslog message to tcp://host:port or tls://host:port (or NHIGW_AUDIT_SYSLOG)")
    add_syslog_tls_options(sp, "audit-syslog")


def add_syslog_tls_options(sp: argparse.ArgumentParser, prefix: str) -> None:
    sp.add_argument(f"--{prefix}-ca", metavar="FILE", help="tls://: the CA certificates the syslog receiver's certificate is checked against (default: the system's)")
    sp.add_argument(f"--{prefix}-cert", metavar="FILE", help="tls://: this gateway's client certificate (PEM), for receivers that authenticate nodes (ATNA)")
    sp.add_argument(f"--{prefix}-key", metavar="FILE", help="tls://: the client certificate's private key (PEM)")


def syslog_target(args: argparse.Namespace, url_attr: str, prefix: str):  # -> SyslogTarget | None
    """The syslog receiver the flags name (None: none); exits with a sentence when they are wrong."""
    from nhigw.gateway.auditsyslog import SyslogTarget

    url = getattr(args, url_attr, None)
    if not url:
        return None
    tls = {k: getattr(args, f"{prefix}_{k}", None) for k in ("ca", "cert", "key")}
    try:
        return SyslogTarget.parse(url, ca_file=tls["ca"], cert_file=tls["cert"], key_file=tls["key"])
    except ValueError as exc:
        sys.exit(f"nhigw: {exc}")


def add_admin_parsers(sub: argparse._SubParsersAction, gw: argparse.ArgumentParser, busopts, common) -> None:
    gsub = gw.add_subparsers(dest="gwcmd", required=False)
    sp = gsub.add_parser("enrol-token", help="print a one-time enrolment token for a workstation's agent")
    busopts(sp)
    sp.add_argument("--workstation", required=True)
    sp.add_argument("--ttl-s", type=float, default=24 * 3600.0)
    sp = gsub.add_parser("add-client", help="add an HIS client to a clients file and print its API key")
    sp.add_argument("--clients", required=True)
    sp.add_argument("--name", required=True)
    sp.add_argument("--hospital", help="hospitalId the client is scoped to")
    sp.add_argument("--workstations", default="*", help="comma-separated workstation patterns (fnmatch)")
    sp.add_argument("--role", choices=["viewer", "operator", "admin"], help="an operator key: viewer (looks), operator (also acts on dead letters), admin (also clients and enrolment tokens); none: an HIS client")
    sp.add_argument("--ops", action="store_true", help="the same as --role operator")
    sp.add_argument("--all-hospitals", action="store_true", help="with --role: for every hospital's requests (instead of --hospital)")
    sp = gsub.add_parser("remove-client", help="remove a client from a clients file (running gateways re-read it within a second)")
    sp.add_argument("--clients", required=True)
    sp.add_argument("--name", required=True)

    sp = sub.add_parser("audit", help="verify or export the gateway's audit trail")
    common(sp)
    busopts(sp)
    sp.add_argument("action", choices=["verify", "export", "syslog"])
    sp.add_argument("--file", help="audit file of a single-process gateway")
    sp.add_argument("--checkpoints", action="append", default=[], metavar="FILE",
                    help="more signed checkpoints to check (another replica's audit-checkpoints.jsonl, or a gateway log); repeatable")
    sp.add_argument("--since", help="ISO date/time (inclusive)")
    sp.add_argument("--until", help="ISO date/time (exclusive)")
    sp.add_argument("--hospital", help="export only this hospital's records")
    sp.add_argument("--format", choices=["jsonl", "fhir-ndjson", "fhir-bundle"], default="jsonl",
                    help="export as the records (JSON lines), FHIR R4 AuditEvents after IHE BALP (NDJSON), or one FHIR batch Bundle")
    sp.add_argument("--to", metavar="URL", help="syslog: the receiver to replay to, tcp://host:port or tls://host:port (RFC 5424 / IHE ATNA messages)")
    add_syslog_tls_options(sp, "syslog")


def build_gateway_app(args: argparse.Namespace, bus, *, cloud: str, data_dir: Path, audit_file: bool) -> web.Application:
    """``data_dir``: the gateway's (audit checkpoints; with ``audit_file``, the audit itself: one process)."""
    from nhigw.gateway.app import create_app
    from nhigw.gateway.auth import Clients
    from nhigw.gateway.service import Gateway

    if getattr(args, "clients", None) and not Path(args.clients).is_file():
        sys.exit(f"nhigw: clients file {args.clients} not found (a gateway told to use API keys never falls back to open)")
    clients = Clients.load(Path(args.clients)) if getattr(args, "clients", None) else Clients()
    if getattr(args, "clients", None) and not clients.clients:
        sys.exit(f"nhigw: clients file {args.clients} lists no client (a gateway told to use API keys never runs open; `nhigw gateway add-client`)")
    host = getattr(args, "gateway_host", None) or args.host
    if clients.open and not is_loopback(host):
        sys.exit(f"nhigw: a gateway on {host} needs HIS API keys (--clients FILE; `nhigw gateway add-client`); without them it serves loopback only")
    return create_app(Gateway(bus, gateway_settings(args, cloud=cloud, data_dir=data_dir, audit_file=audit_file, clients=clients)))


def gateway_settings(args: argparse.Namespace, *, cloud: str, data_dir: Path, audit_file: bool, clients: Clients | None = None) -> GatewaySettings:
    """A replica's settings from its resolved flags (``nhigw.cli``)."""
    from nhigw.common import cloudtls
    from nhigw.gateway.auth import Clients
    from nhigw.gateway.service import GatewaySettings
    from nhigw.gateway.upstream import UpstreamSettings

    def given(*names: str) -> dict[str, Any]:
        """The flags given (``nhigw up`` has none of them): the settings' own defaults for the rest."""
        return {n: v for n in names if (v := getattr(args, n, None)) is not None}

    return GatewaySettings(
        cloud_url=cloud,
        prefix=args.bus_prefix,
        gateway_key=gateway_key(args),
        clients=clients if clients is not None else Clients(),
        audit_path=data_dir / "audit.jsonl" if audit_file else None,
        audit_checkpoints=data_dir / "audit-checkpoints.jsonl",
        upstream=UpstreamSettings(**given("rate_per_s", "rate_burst"), tls=cloudtls.from_args(args)),
        cloud_env=cloudtls.cloud_env(cloud, getattr(args, "cloud_env", None)),
        **given("site", "max_deliveries", "claim_idle_s", "replica_wait", "replica_wait_ms"),
        upload_url=getattr(args, "upload_cloud", None),
        audit_syslog=_syslog_settings(args, data_dir),
    )


def _syslog_settings(args: argparse.Namespace, data_dir: Path):  # -> SyslogSettings | None (its module loads the FHIR models: only when used)
    target = syslog_target(args, "audit_syslog", "audit_syslog")
    if target is None:
        return None
    from nhigw.gateway.auditsyslog import SyslogSettings

    return SyslogSettings(target, cursor=data_dir / "audit-syslog-cursor.json")  # what a replica still owes survives its restart


def _store(args: argparse.Namespace):
    from nhigw.bus.redisurl import redis_client

    url = args.redis
    if not url:
        sys.exit("nhigw: --redis (or NHIGW_REDIS_URL) is required")
    try:
        return redis_client(url)
    except ValueError as exc:
        sys.exit(f"nhigw: {exc}")


async def cmd_enrol_token(args: argparse.Namespace) -> None:
    from nhigw.bus import MemoryBus
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.agents import AgentKeys
    from nhigw.gateway.store import RedisKV

    key = gateway_key(args)
    if key is None:
        sys.exit("nhigw: the gateway key is required (--bus-key or NHIGW_BUS_KEY, the same as the gateway's)")
    client = _store(args)
    try:
        token = await AgentKeys(MemoryBus(), RedisKV(client), BusKeys(args.bus_prefix), key).issue_token(args.workstation, args.ttl_s)
    finally:
        await client.aclose()
    print(token)


def cmd_add_client(args: argparse.Namespace) -> None:
    from nhigw.gateway.auth import Clients, Role

    role = Role(args.role) if args.role else (Role.OPERATOR if args.ops else None)
    if args.all_hospitals and role is None:
        sys.exit("nhigw: --all-hospitals is for operator keys (--role); an HIS client without --hospital may act for any hospital already")
    print(Clients.add(Path(args.clients), args.name, args.hospital, [w.strip() for w in args.workstations.split(",") if w.strip()], all_hospitals=args.all_hospitals, role=role))


def cmd_remove_client(args: argparse.Namespace) -> None:
    from nhigw.gateway.auth import Clients

    if not Path(args.clients).is_file() or not Clients.remove(Path(args.clients), args.name):
        sys.exit(f"nhigw: no client {args.name!r} in {args.clients}")


async def cmd_audit(args: argparse.Namespace, data_dir: Path) -> int:
    """``verify``: the chain under the audit key (from ``--bus-key``, or the audit file's ``audit.key``)
    and the signed checkpoints (``<data-dir>/gateway/audit-checkpoints.jsonl`` and ``--checkpoints``);
    exit 1 on any problem. ``export``: JSON lines by time; unreadable records are counted on stderr.
    ``syslog``: the records of [since, until) sent once each to ``--to`` as ATNA syslog messages."""
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.audit import AuditLog, FileAudit, RedisAudit, audit_key, to_ms

    path = Path(args.file) if args.file else data_dir / "audit.jsonl"
    try:
        key = audit_key(gateway_key(args), None if gateway_key(args) else path.with_name("audit.key"), create=False)
    except FileNotFoundError as exc:
        sys.exit(f"nhigw: {exc}")
    client = None
    if args.redis:
        if gateway_key(args) is None:
            sys.exit("nhigw: the gateway key is required (--bus-key or NHIGW_BUS_KEY, the same as the gateway's): the audit chain is keyed with it")
        client = _store(args)
        log: AuditLog = RedisAudit(client, BusKeys(args.bus_prefix), key)
    else:
        log = FileAudit(path, key)
    try:
        if args.action == "verify":
            own = data_dir / "audit-checkpoints.jsonl"
            res = await log.verify([*([own] if own.exists() else []), *map(Path, args.checkpoints)])
            if not res.checkpoints:
                res.warnings.append("no checkpoints of this chain were found: records removed at the end, or the whole log, cannot be seen")
            print(json.dumps(res.model_dump(), ensure_ascii=False, indent=2))
            return 0 if res.ok else 1
        try:
            since, until = (to_ms(v) if v else None for v in (args.since, args.until))
        except ValueError:
            sys.exit("nhigw: --since and --until take ISO dates or date-times (2026-11-01, 2026-11-01T08:00:00+08:00)")
        if args.action == "syslog":
            return await _replay_syslog(args, log, since, until)
        from nhigw.gateway.auditexport import audit_event, bundle

        unreadable = 0
        kept = []
        async for page in log.pages(since=since, until=until, hospital=args.hospital):
            for r in page.records:
                if args.format == "fhir-bundle":
                    kept.append(r)
                else:
                    print(audit_event(r, log.name).model_dump_json() if args.format == "fhir-ndjson" else r.model_dump_json())
            unreadable += page.unreadable
        if args.format == "fhir-bundle":
            print(bundle(kept, log.name).model_dump_json())
        if unreadable:
            print(f"nhigw: {unreadable} audit record(s) could not be read and were left out (run `nhigw audit verify`)", file=sys.stderr)
        return 0
    finally:
        await log.close()
        if client is not None:
            await client.aclose()


async def _replay_syslog(args: argparse.Namespace, log, since: int | None, until: int | None) -> int:
    import ssl

    from nhigw.gateway.auditsyslog import replay

    if not args.to:
        sys.exit("nhigw: audit syslog needs --to tcp://host:port (or tls://host:port)")
    if since is None:
        sys.exit("nhigw: audit syslog needs --since (an ISO date/time): what to replay")
    target = syslog_target(args, "to", "syslog")
    try:
        sent, unreadable = await replay(log, target, since=since, until=until, hospital=args.hospital)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        print(f"nhigw: syslog receiver {target}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": sent, "unreadable": unreadable, "to": str(target)}))
    if unreadable:
        print(f"nhigw: {unreadable} audit record(s) could not be read and were not sent (run `nhigw audit verify`)", file=sys.stderr)
    return 0


async def self_issued_token(bus, prefix: str, args: argparse.Namespace, workstation: str) -> str | None:
    """The ``--bus-key`` path for trusted hosts (demo containers): an agent holding the *gateway* key
    issues its own enrolment token in Redis. Whoever holds that key can act as any workstation, so
    real workstations enrol with a token from ``nhigw gateway enrol-token`` instead."""
    from nhigw.bus.seal import Sealer
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.agents import AgentKeys
    from nhigw.gateway.backend import BackendSettings, make_backend

    key = gateway_key(args)
    if key is None:
        return None
    keys = BusKeys(prefix)
    backend = make_backend(bus, BackendSettings(keys=keys, box=Sealer(key), instance=workstation, gateway_key=key))
    if not backend.shared:  # one process: the gateway there issues the token itself (`nhigw up`)
        return None
    return await AgentKeys(bus, backend.kv, keys, key).issue_token(workstation, ttl_s=120)
