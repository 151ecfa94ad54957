"""``nhigw doctor``: every hop checked, one table in Chinese and English, a fix for each failure.

    nhigw doctor --redis URL --bus-key-file F --cloud https://medvpndc.nhi.gov.tw [--cloud-ca FILE]
    nhigw doctor --agent https://127.0.0.1:5066 [--cloud URL]       # on a workstation

Against a gateway's Redis (as ``nhigw audit``, no gateway needs to run): Redis (reachable,
persistence, memory headroom and eviction policy), the NHI cloud (DNS, TCP, TLS chain and the
certificate's expiry, clock skew against its ``Date``), each workstation enrolled in that Redis
(agent online, its version, reader, SAM / HPC / HC states, SAM verified, the cloud its SAM is
verified against, its certificates' expiry: from the agents' sealed presence, so ``--bus-key`` is
needed to read it) and the gateway's own files in ``<data-dir>/gateway`` (permissions, certificate
expiry), and whether this machine can seal files at all (a machine identity or
``NHIGW_MASTER_KEY``). Against one agent (``--agent``): its answer, version and card states, its
data directory and the cloud hop from this machine.

Exit status 1 when any row is ``FAIL``; ``WARN`` rows (a certificate ending within
:data:`EXPIRY_WARN_DAYS` days, a version differing from this one, no workstation enrolled) do not.
``--json`` prints the rows as JSON (for monitoring) instead of the table.

Choices (the seed is silent): persistence is "on" when the append-only file is on or an RDB
``save`` schedule exists (the work queue and the audit live in Redis: without either a Redis
restart loses them); memory headroom fails above :data:`MEMORY_FAIL` of ``maxmemory`` (or of the
machine's memory when no limit is set) and when a limit evicts keys (``maxmemory-policy`` other
than ``noeviction`` silently drops queue entries and answers); clock skew fails beyond
:data:`SKEW_FAIL_S` s. Presence is listened to for :data:`LISTEN_S` s (agents send one every
second). File modes are checked on POSIX only (Windows: ACLs, see deploy/windows).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import email.utils
import json
import os
import socket
import ssl
import stat
import sys
import time
import unicodedata
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509

from nhigw import __version__

Status = Literal["OK", "WARN", "FAIL"]
EXPIRY_WARN_DAYS = 14
MEMORY_FAIL = 0.8
SKEW_FAIL_S = 60.0
LISTEN_S = 2.5
TIMEOUT_S = 5.0


@dataclass
class Row:
    hop: str
    check: str
    status: Status
    result: str
    fix_zh: str = ""
    fix_en: str = ""


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, hop: str, check: str, status: Status, result: str, fix_zh: str = "", fix_en: str = "") -> Row:
        row = Row(hop, check, status, result, fix_zh if status != "OK" else "", fix_en if status != "OK" else "")
        self.rows.append(row)
        return row

    @property
    def failed(self) -> bool:
        return any(r.status == "FAIL" for r in self.rows)


# ------------------------------------------------------------------ Redis


async def check_redis(rep: Report, client: Any) -> bool:
    hop = "Redis"
    try:
        await asyncio.wait_for(client.ping(), TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 -- any failure is this row's answer
        rep.add(hop, "連線 reachable", "FAIL", f"{type(exc).__name__}: {exc}",
                "啟動 Redis，並確認 --redis 的主機、埠號與密碼", "start Redis; check the host, port and password in --redis")
        return False
    rep.add(hop, "連線 reachable", "OK", "PING ok")
    try:
        persist = await client.info("persistence")
        aof = int(persist.get("aof_enabled", 0)) == 1
        try:
            save = str((await client.config_get("save")).get("save", "")).strip()
        except Exception:  # noqa: BLE001 -- CONFIG may be renamed away on a managed Redis
            save = "?"
        if aof or save not in ("", "?"):
            rep.add(hop, "持久化 persistence", "OK", f"appendonly={'yes' if aof else 'no'} save={save!r}")
        else:
            rep.add(hop, "持久化 persistence", "FAIL", f"appendonly=no save={save!r}: a restart loses the queue, answers and audit",
                    "在 redis.conf 設定 appendonly yes（appendfsync everysec）後重新啟動 Redis",
                    "set appendonly yes (appendfsync everysec) in redis.conf and restart Redis")
        mem = await client.info("memory")
        used, limit, total = int(mem.get("used_memory", 0)), int(mem.get("maxmemory", 0)), int(mem.get("total_system_memory", 0))
        policy = str(mem.get("maxmemory_policy", "noeviction"))
        base = limit or total
        share = used / base if base else 0.0
        if limit and policy != "noeviction":
            rep.add(hop, "記憶體 memory", "FAIL", f"maxmemory-policy {policy}: at the limit Redis drops queue entries and answers",
                    "設定 maxmemory-policy noeviction", "set maxmemory-policy noeviction")
        elif share > MEMORY_FAIL:
            rep.add(hop, "記憶體 memory", "FAIL", f"{used >> 20} MiB used of {base >> 20} MiB ({share:.0%})",
                    "提高 maxmemory 或主機記憶體，並檢查死信佇列與稽核是否過大", "raise maxmemory or the host's memory; check the dead letters and the audit size")
        else:
            rep.add(hop, "記憶體 memory", "OK", f"{used >> 20} MiB used of {(base >> 20) or '?'} MiB ({share:.0%}), policy {policy}")
    except Exception as exc:  # noqa: BLE001
        rep.add(hop, "設定 settings", "FAIL", f"INFO failed: {type(exc).__name__}: {exc}",
                "確認此 Redis 使用者可執行 INFO", "allow INFO for this Redis user")
    return True


# ------------------------------------------------------------------ the NHI cloud


def _proxy_for(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(urlsplit(url).scheme or "https")


def _not_after(der: bytes) -> dt.datetime:
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _expiry_row(rep: Report, hop: str, what: str, not_after: dt.datetime, fix_zh: str, fix_en: str, now: dt.datetime | None = None) -> None:
    left = not_after - (now or dt.datetime.now(dt.UTC))
    days = left.total_seconds() / 86400
    if days < 0:
        rep.add(hop, what, "FAIL", f"expired {not_after:%Y-%m-%d}", fix_zh, fix_en)
    elif days < EXPIRY_WARN_DAYS:
        rep.add(hop, what, "WARN", f"ends {not_after:%Y-%m-%d} ({days:.0f} days)", fix_zh, fix_en)
    else:
        rep.add(hop, what, "OK", f"ends {not_after:%Y-%m-%d} ({days:.0f} days)")


async def check_cloud(rep: Report, url: str, tls: Any) -> None:
    """DNS, TCP, TLS (chain, expiry), the clock against the cloud's ``Date`` (through the proxy when one applies)."""
    from nhigw.common.cloudtls import cloud_env

    hop = "雲端 NHI cloud"
    u = urlsplit(url)
    host, port = u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
    env = cloud_env(url)
    proxy = _proxy_for(url)
    rep.add(hop, "位址 URL", "OK", f"{url} ({env or 'neither medvpndc nor medvpndct'})" + (f" via proxy {proxy}" if proxy else ""))
    target = (urlsplit(proxy).hostname or "", urlsplit(proxy).port or 8080) if proxy else (host, port)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(target[0], target[1], type=socket.SOCK_STREAM), TIMEOUT_S)
        rep.add(hop, "DNS", "OK", f"{target[0]} -> {infos[0][4][0]}")
    except (OSError, TimeoutError) as exc:
        rep.add(hop, "DNS", "FAIL", f"{target[0]}: {exc}", "檢查 DNS 設定與 VPN（健保 VPN 的 DNS）", "check DNS and the NHI VPN (its DNS server)")
        return
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(target[0], target[1]), TIMEOUT_S)
        w.close()
        rep.add(hop, "TCP", "OK", f"{target[0]}:{target[1]} open")
    except (OSError, TimeoutError) as exc:
        rep.add(hop, "TCP", "FAIL", f"{target[0]}:{target[1]}: {exc or 'timed out'}",
                "確認雲端（或模擬器）正在執行、VPN 已連線、防火牆允許此埠", "make sure the cloud (or simulator) is up, the VPN connected and the firewall open for this port")
        return
    if u.scheme == "https" and not proxy:  # the chain and expiry from a handshake of our own (through a proxy: the HTTPS call below)
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=tls.context(), server_hostname=host), TIMEOUT_S)
            obj = w.get_extra_info("ssl_object")
            der = obj.getpeercert(binary_form=True) if obj is not None else None
            w.close()
        except (OSError, TimeoutError) as exc:
            _tls_failed(rep, hop, exc)
            return
        rep.add(hop, "TLS 憑證鏈 chain", "OK", "verified" + (f" against {tls.ca_file}" if tls.ca_file else " against the system's store"))
        if der:
            _expiry_row(rep, hop, "TLS 憑證效期 expiry", _not_after(der),
                        "雲端憑證即將到期：若以 --cloud-ca 指定 CA，請更新該檔", "the cloud's certificate is ending: if --cloud-ca pins a CA, update that file")
    import aiohttp

    session = tls.session(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S * 2))
    try:
        async with session.get(url.rstrip("/") + "/") as r:
            date = r.headers.get("Date")
        if proxy and u.scheme == "https":
            rep.add(hop, "TLS 憑證鏈 chain", "OK", f"verified through the proxy {proxy}")
        _clock_row(rep, hop, date)
    except aiohttp.ClientError as exc:
        _tls_failed(rep, hop, exc)
    except TimeoutError:
        rep.add(hop, "HTTPS", "FAIL", "no answer in time", "檢查 VPN 與代理伺服器", "check the VPN and the proxy")
    finally:
        await session.close()


def _tls_failed(rep: Report, hop: str, exc: BaseException) -> None:
    from nhigw.common.cloudtls import UNTRUSTED_EN, UNTRUSTED_ZH, is_untrusted, untrusted_reason

    if is_untrusted(exc):
        rep.add(hop, "TLS 憑證鏈 chain", "FAIL", f"{untrusted_reason(exc)}: {UNTRUSTED_EN}",
                f"{UNTRUSTED_ZH}：以 --cloud-ca 指定簽發此憑證的 CA 檔", f"{UNTRUSTED_EN}: give the CA that signs this certificate with --cloud-ca FILE")
    else:
        rep.add(hop, "HTTPS", "FAIL", f"{type(exc).__name__}: {exc}", "檢查 --cloud 位址與代理伺服器設定（HTTPS_PROXY、NO_PROXY）",
                "check the --cloud URL and the proxy settings (HTTPS_PROXY, NO_PROXY)")


def _clock_row(rep: Report, hop: str, date: str | None) -> None:
    if not date:
        rep.add(hop, "時鐘 clock", "WARN", "the cloud sent no Date header", "", "")
        return
    try:
        theirs = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        rep.add(hop, "時鐘 clock", "WARN", f"unreadable Date {date!r}")
        return
    skew = time.time() - theirs
    if abs(skew) > SKEW_FAIL_S:
        rep.add(hop, "時鐘 clock", "FAIL", f"this machine is {skew:+.0f} s off the cloud's clock",
                "校正系統時鐘（NTP：timedatectl set-ntp true；Windows：w32tm /resync）", "sync the clock (NTP: timedatectl set-ntp true; Windows: w32tm /resync)")
    else:
        rep.add(hop, "時鐘 clock", "OK", f"{skew:+.1f} s against the cloud's Date")


# ------------------------------------------------------------------ workstations


SAM_FIX = ("在該工作站驗證 SAM（POST /api/sam/v1/Verification，或 HIS 的「安全模組認證」）", "verify the SAM on that workstation (POST /api/sam/v1/Verification, or the HIS's SAM verification)")


def presence_rows(rep: Report, workstation: str, presence: Any | None, *, cloud_env: str | None, online: bool) -> None:
    """One workstation's rows from its last presence (None: never heard while listening)."""
    hop = f"工作站 {workstation}"
    if presence is None or not online:
        rep.add(hop, "代理程式 agent", "FAIL", "offline: no presence heard" if presence is None else "offline (leaving, or the component stopped answering)",
                "在該工作站啟動 nhigw agent（服務 nhigw-agent），並確認其 --redis 可連到此 Redis",
                "start nhigw agent on that workstation (service nhigw-agent) and check that its --redis reaches this Redis")
        return
    ver = presence.version
    rep.add(hop, "代理程式 agent", "OK" if ver == __version__ else "WARN", f"online, version {ver}" + ("" if ver == __version__ else f" (this is {__version__})"),
            "將代理程式更新到與閘道器相同版本", "update the agent to the gateway's version")
    st = presence.states
    if st.reader or st.initialized:
        rep.add(hop, "讀卡機 reader", "OK", f"{st.reader or 'initialised'}")
    else:
        rep.add(hop, "讀卡機 reader", "FAIL", "not initialised: no reader or component in use",
                "接上讀卡機，並由 HIS 呼叫 Initial（或 nhigw agent --auto-init）", "connect the reader and let the HIS call Initial (or run nhigw agent --auto-init)")
    if st.sam >= 2:
        rep.add(hop, "SAM", "OK", "verified (state 2)")
    elif st.sam == 1:
        rep.add(hop, "SAM", "FAIL", "present, not verified (state 1): one-call requests are refused (1301)", *SAM_FIX)
    else:
        rep.add(hop, "SAM", "FAIL", "no SAM (state 0)", "插入 SAM 卡（或匯入雲端安全模組）後驗證", "insert the SAM (or import the cloud SAM), then verify it")
    rep.add(hop, "HPC / HC", "OK", f"HPC state {st.hpc}, HC state {st.hc}")
    if presence.cloudEnv and cloud_env and presence.cloudEnv != cloud_env:
        rep.add(hop, "雲端環境 cloud", "FAIL", f"its SAM is verified against the {presence.cloudEnv} cloud, this gateway's is {cloud_env} (1003)",
                "代理程式與閘道器的 --cloud 指向同一雲端（正式 medvpndc、測試 medvpndct）", "point the agent's and the gateway's --cloud at the same cloud (medvpndc production, medvpndct test)")
    tls = getattr(presence, "tls", None)
    if tls is not None:
        _expiry_row(rep, hop, "代理程式憑證 agent certificate", dt.datetime.fromtimestamp(min(tls.serverNotAfter, tls.caNotAfter), dt.UTC),
                    "重新啟動代理程式以更新憑證；CA 到期時再執行 nhigw agent trust", "restart the agent to renew; when its CA ends, run nhigw agent trust again")


async def check_workstations(rep: Report, client: Any, args: argparse.Namespace, cloud_env: str | None) -> None:
    from nhigw.bus.redis import RedisBus
    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.agents import AgentKeys
    from nhigw.gateway.cli import gateway_key
    from nhigw.gateway.registry import Registry
    from nhigw.gateway.store import RedisKV

    keys = BusKeys(args.bus_prefix)
    names = sorted({k.decode() if isinstance(k, bytes) else str(k) async for k in client.scan_iter(match=keys.agent_key("*"), count=500)})
    workstations = [n.removeprefix(keys.agent_key("")) for n in names]
    if not workstations:
        rep.add("工作站 workstations", "登錄 enrolled", "WARN", f"no agent enrolled under prefix {keys.prefix!r}",
                "以 nhigw gateway enrol-token 為每個工作站發放登錄權杖", "issue each workstation an enrolment token (nhigw gateway enrol-token)")
        return
    key = gateway_key(args)
    if key is None:
        rep.add("工作站 workstations", "狀態 presence", "FAIL", f"{len(workstations)} enrolled; their presence is sealed: the gateway key is needed",
                "加上 --bus-key-file（與閘道器相同的金鑰）", "add --bus-key-file (the gateway's key)")
        return
    bus = RedisBus(args.redis)
    agents = AgentKeys(bus, RedisKV(client), keys, key)
    registry = Registry(bus, keys, agents)
    for ws in workstations:
        await agents.refresh(ws)
    try:
        await registry.start()  # settled: online, or offline once it has listened its warm-up (agents speak every second)
        await asyncio.gather(*(registry.settled(ws, LISTEN_S) for ws in workstations))
    finally:
        await registry.close()
        await bus.close()
    for ws in workstations:
        e = registry.entries.get(ws)
        presence_rows(rep, ws, e.presence if e else None, cloud_env=cloud_env, online=registry.online(ws))


# ------------------------------------------------------------------ files and keys


def check_files(rep: Report, hop: str, directory: Path) -> None:
    """Permissions of a data directory and its files (POSIX), expiry of its certificates."""
    from nhigw.common.secretbox import NoMachineIdentity, sealing_source

    try:
        rep.add(hop, "封存金鑰 sealing", "OK", f"bound to {sealing_source()}")
    except NoMachineIdentity as exc:
        rep.add(hop, "封存金鑰 sealing", "FAIL", str(exc), "設定 NHIGW_MASTER_KEY（隨機值，與本機一同保存）", "set NHIGW_MASTER_KEY (a random secret kept with this machine)")
    if not directory.exists():
        rep.add(hop, "資料目錄 data dir", "WARN", f"{directory} does not exist (nothing kept here yet)", "確認 --data-dir 與服務使用者相同", "check that --data-dir is the service's")
        return
    posix = hasattr(os, "getuid")
    loose: list[str] = []
    certs: list[Path] = []
    for p in [directory, *sorted(directory.rglob("*"))]:
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.suffix in (".crt", ".pem") and p.is_file():
            certs.append(p)
        if not posix:
            continue
        public = p.suffix in (".crt", ".pem") or p.name.endswith(".jsonl")
        if stat.S_ISDIR(st.st_mode):
            if st.st_mode & 0o077:
                loose.append(f"{p} {stat.filemode(st.st_mode)}")
        elif st.st_mode & (0o022 if public else 0o077):
            loose.append(f"{p} {stat.filemode(st.st_mode)}")
        if st.st_uid != os.getuid():
            loose.append(f"{p} owned by uid {st.st_uid}")
    if loose:
        rep.add(hop, "權限 permissions", "FAIL", "; ".join(loose[:5]) + (f" (+{len(loose) - 5})" if len(loose) > 5 else ""),
                f"chmod -R go-rwx {directory}（並以服務使用者擁有）", f"chmod -R go-rwx {directory} (owned by the service's user)")
    else:
        rep.add(hop, "權限 permissions", "OK", f"{directory}: private" if posix else f"{directory}: POSIX modes not checked on {sys.platform} (ACLs)")
    for c in certs:
        try:
            cert = x509.load_pem_x509_certificate(c.read_bytes())
        except (OSError, ValueError):
            rep.add(hop, f"憑證 {c.name}", "FAIL", "unreadable certificate", "刪除後重新啟動服務以重新產生", "remove it and restart the service to make a new one")
            continue
        _expiry_row(rep, hop, f"憑證 {c.name}", cert.not_valid_after_utc, "重新啟動服務以更新憑證", "restart the service to renew it")


# ------------------------------------------------------------------ one agent


async def check_agent(rep: Report, url: str, verify: bool | ssl.SSLContext) -> None:
    """``verify``: the agent's local CA (``<data-dir>/agent/ca.crt``) when this machine has it."""
    from nhigw.client import AgentClient
    from nhigw.client.errors import NhigwError

    hop = f"代理程式 {url}"
    async with AgentClient(url, verify_tls=verify, timeout_s=TIMEOUT_S) as agent:
        try:
            version = await agent.version()
            status = (await agent.status()).status
        except NhigwError as exc:
            rep.add(hop, "回應 answers", "FAIL", str(exc), "啟動 nhigw agent（服務 nhigw-agent）並確認埠號", "start nhigw agent (service nhigw-agent) and check its port")
            return
    rep.add(hop, "回應 answers", "OK", f"version {version.shortVersion}" + ("" if verify else " (certificate not verified: no ca.crt in --data-dir)"))
    from nhigw.contracts.models import CardStates

    states = CardStates(initialized=status.initialized, sam=status.sam.status, hpc=status.hpc.status, hc=status.hc.status, reader=status.reader)
    presence_rows(rep, url, _Seen(version.shortVersion, states), cloud_env=None, online=True)


@dataclass
class _Seen:
    """What an agent's own Status says, shaped as its presence (for :func:`presence_rows`)."""

    version: str
    states: Any
    cloudEnv: str | None = None
    tls: Any = None


# ------------------------------------------------------------------ the command


def add_doctor_parser(sub: Any, busopts: Any, common: Any) -> None:
    from nhigw.common.cloudtls import add_cloud_options

    sp = sub.add_parser("doctor", help="check every hop (Redis, the NHI cloud, workstations, files) and print a fix for each failure")
    common(sp)
    busopts(sp)
    sp.add_argument("--cloud", help="the NHI cloud URL to check (or NHIGW_CLOUD_URL)")
    add_cloud_options(sp)
    sp.add_argument("--agent", help="check one agent on this workstation (e.g. https://127.0.0.1:5066) instead of a gateway's Redis")
    sp.add_argument("--json", action="store_true", help="print the rows as JSON")


async def run(args: argparse.Namespace, data_dir: Path) -> Report:
    from nhigw.common import cloudtls

    rep = Report()
    cloud_env = cloudtls.cloud_env(args.cloud, args.cloud_env)
    if args.agent:
        ca = data_dir / "agent" / "ca.crt"
        await check_agent(rep, args.agent, ssl.create_default_context(cafile=str(ca)) if ca.is_file() else False)
        check_files(rep, "檔案 files (agent)", data_dir / "agent")
    elif args.redis:
        from nhigw.bus.redisurl import redis_client

        client = redis_client(args.redis, socket_connect_timeout=TIMEOUT_S)
        try:
            if await check_redis(rep, client):
                await check_workstations(rep, client, args, cloud_env)
        finally:
            await client.aclose()
        check_files(rep, "檔案 files (gateway)", data_dir / "gateway")
    else:
        rep.add("Redis", "設定 settings", "FAIL", "neither --redis nor --agent given", "加上 --redis URL（閘道器）或 --agent URL（工作站）", "add --redis URL (a gateway) or --agent URL (a workstation)")
    if args.cloud:
        await check_cloud(rep, args.cloud, cloudtls.from_args(args))
    else:
        rep.add("雲端 NHI cloud", "位址 URL", "WARN", "no --cloud given: not checked", "加上 --cloud URL", "add --cloud URL")
    return rep


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, n: int) -> str:
    return s + " " * max(0, n - _width(s))


def table(rep: Report) -> str:
    head = ("狀態 Status", "環節 Hop", "檢查 Check", "結果 Result")
    cells = [(r.status, r.hop, r.check, r.result) for r in rep.rows]
    widths = [max(_width(x) for x in col) for col in zip(head, *cells, strict=False)]
    widths[3] = min(widths[3], 90)
    lines = ["  ".join(_pad(h, w) for h, w in zip(head, widths, strict=True)), "  ".join("-" * w for w in widths)]
    for r, c in zip(rep.rows, cells, strict=True):
        lines.append("  ".join(_pad(x, w) for x, w in zip(c, widths, strict=True)).rstrip())
        if r.fix_zh or r.fix_en:
            indent = " " * (widths[0] + 2)
            lines.append(f"{indent}→ 修正：{r.fix_zh}")
            lines.append(f"{indent}→ fix: {r.fix_en}")
    fails, warns = sum(r.status == "FAIL" for r in rep.rows), sum(r.status == "WARN" for r in rep.rows)
    lines.append("")
    lines.append(f"{fails} 項失敗 failed, {warns} 項警告 warnings, {len(rep.rows) - fails - warns} 項正常 ok")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace, data_dir: Path) -> int:
    """Run every check; print the table (or ``--json``); 1 when a row failed."""
    rep = asyncio.run(run(args, data_dir))
    print(json.dumps([asdict(r) for r in rep.rows], ensure_ascii=False, indent=2) if args.json else table(rep))
    return 1 if rep.failed else 0
