"""Audit records streamed and replayed as RFC 5424 / IHE ATNA syslog messages into a real rsyslog.

rsyslogd runs as its own process with its own configuration (imtcp on a loopback port, octet-counted
framing, each message's ``%rawmsg%`` written to a file) and is stopped by its own pid. Every message
it got is parsed by a strict RFC 5424 parser written here, its body validated as a FHIR R4 AuditEvent
with the BALP checks of ``nhigw.gateway.auditexport``, and its chain position compared with the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from nhigw.bus.redis import RedisBus
from nhigw.gateway.audit import AuditRecord, MemoryAudit, mask_patient
from nhigw.gateway.auditexport import CHAIN_EXT, audit_event, balp_problems
from nhigw.gateway.auditsyslog import MSGID, PRI, SD_ID, SyslogSettings, SyslogStream, SyslogTarget, format_message
from nhigw.gateway.upstream import UpstreamSettings
from tests.helpers import ROOT, eventually, free_port, ok, stop_process, wait_port
from tests.stack import running_stack

FULL_ID = re.compile(r"[A-Z][12]\d{8}")  # a full national ID (the test cards' are Z2........)


# ---------------------------------------------------------------- a strict RFC 5424 parser


@dataclass
class Syslog5424:
    pri: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: bytes


_HEADER = re.compile(rb"<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_SD_NAME = re.compile(rb'[!-~]{1,32}')


def _printus(field: bytes, limit: int) -> str:
    assert 1 <= len(field) <= limit and all(33 <= b <= 126 for b in field), f"bad header field {field!r}"
    return field.decode("ascii")


def _sd_name(data: bytes, i: int) -> tuple[str, int]:
    m = _SD_NAME.match(data, i)
    assert m, f"SD-NAME expected at {i}"
    name = m.group().split(b"=")[0].split(b"]")[0].split(b'"')[0]
    assert name, f"empty SD-NAME at {i}"
    return name.decode("ascii"), i + len(name)


def parse_5424(raw: bytes) -> Syslog5424:
    """RFC 5424 section 6, strictly: header fields' lengths and characters, the timestamp, SD escapes."""
    m = _HEADER.match(raw)
    assert m, f"not an RFC 5424 header: {raw[:80]!r}"
    pri, version = int(m.group(1)), m.group(2)
    assert pri <= 191 and version == b"1" and not (m.group(1).startswith(b"0") and m.group(1) != b"0")
    ts = m.group(3).decode("ascii")
    assert ts == "-" or _TIME.fullmatch(ts), f"bad TIMESTAMP {ts}"
    hostname, app, procid, msgid = _printus(m.group(4), 255), _printus(m.group(5), 48), _printus(m.group(6), 128), _printus(m.group(7), 32)
    i, sd = m.end(), {}
    if raw[i:i + 1] == b"-":
        i += 1
    else:
        assert raw[i:i + 1] == b"[", "STRUCTURED-DATA expected"
        while raw[i:i + 1] == b"[":
            sd_id, i = _sd_name(raw, i + 1)
            params: dict[str, str] = {}
            while raw[i:i + 1] == b" ":
                name, i = _sd_name(raw, i + 1)
                assert raw[i:i + 2] == b'="', f"PARAM-VALUE expected at {i}"
                i += 2
                value = bytearray()
                while raw[i:i + 1] != b'"':
                    c = raw[i:i + 1]
                    assert c, "unterminated PARAM-VALUE"
                    if c == b"\\" and raw[i + 1:i + 2] in (b'"', b"\\", b"]"):
                        value += raw[i + 1:i + 2]
                        i += 2
                        continue
                    assert c != b"]", "an unescaped ] in a PARAM-VALUE"
                    value += c
                    i += 1
                params[name] = value.decode("utf-8")
                i += 1
            assert raw[i:i + 1] == b"]", f"] expected at {i}"
            assert sd_id not in sd, "an SD-ID twice"
            sd[sd_id] = params
            i += 1
    msg = b""
    if i < len(raw):
        assert raw[i:i + 1] == b" ", "SP before MSG expected"
        msg = raw[i + 1:]
    return Syslog5424(pri, ts, hostname, app, procid, msgid, sd, msg)


# ---------------------------------------------------------------- a real rsyslog


class Rsyslog:
    """rsyslogd -n with its own configuration, pid file and work directory; one port across restarts."""

    def __init__(self, base: Path, tls: Path | None = None) -> None:
        """``tls``: a directory with ``ca.pem``, ``server.pem``, ``server.key`` (``make_pki``): RFC 5425 with
        rsyslog's OpenSSL driver, and client certificates required (ATNA node authentication)."""
        exe = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)
        if exe is None:
            pytest.fail("rsyslogd is required: apt-get install rsyslog (scripts/bootstrap.sh does it)")
        self.exe, self.dir = exe, base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()  # rsyslog reports a port of its own only to a file, and must keep it across a restart
        self.out = base / "atna.log"
        self.conf = base / "rsyslog.conf"
        if tls is not None and not list(Path("/usr/lib").glob("*/rsyslog/lmnsd_ossl.so")):
            pytest.fail("rsyslog's OpenSSL driver is required: apt-get install rsyslog-openssl (scripts/bootstrap.sh does it)")
        driver = (f' DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="{tls}/ca.pem" DefaultNetstreamDriverCertFile="{tls}/server.pem"'
                  f' DefaultNetstreamDriverKeyFile="{tls}/server.key"') if tls else ""
        streams = ' StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid"' if tls else ""
        self.scheme = "tls" if tls else "tcp"
        self.conf.write_text(
            f'global(workDirectory="{base}" maxMessageSize="64k"{driver})\n'
            f'module(load="imtcp"{streams})\n'
            'template(name="raw" type="string" string="%rawmsg%\\n")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="atna")\n'
            f'ruleset(name="atna") {{ action(type="omfile" file="{self.out}" template="raw") }}\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / f"rsyslogd-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([self.exe, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port("127.0.0.1", self.port, timeout_s=15, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def raw(self) -> list[bytes]:
        # Whole lines only: omfile writes through a 4 KiB buffer, so a message may be half written when read.
        return [ln for ln in self.out.read_bytes().split(b"\n")[:-1] if ln] if self.out.exists() else []

    def messages(self) -> list[Syslog5424]:
        return [parse_5424(ln) for ln in self.raw()]


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    r = Rsyslog(tmp_path / "rsyslog")
    r.start()
    yield r
    r.stop()


def make_pki(d: Path, ca_name: str = "atna-ca") -> Path:
    """A CA and, signed by it, a server certificate (127.0.0.1, localhost) and a client one, as PEM files in ``d``."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder(ca_name, name(ca_name), ca_key).add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False).sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (builder("localhost" if who == "server" else "gw-1", ca.subject, key)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False).sign(ca_key, hashes.SHA256()))
        (d / f"{who}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{who}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return d


def check_atna(m: Syslog5424, by_seq: dict[int, AuditRecord], chain: str) -> AuditEvent:
    """One message as the ATNA receiver got it: header, chain position equal to the log's, a valid BALP AuditEvent."""
    assert (m.pri, m.app, m.msgid) == (PRI, "nhigw", MSGID) and m.pri == 10 * 8 + 5
    pos = m.sd[SD_ID]
    rec = by_seq[int(pos["seq"])]
    assert (pos["chain"], pos["hash"], pos["prevHash"]) == (chain, rec.hash, rec.prevHash)
    assert m.msg.startswith(b"\xef\xbb\xbf")  # RFC 5424 MSG-UTF8
    ev = AuditEvent.model_validate_json(m.msg[3:])
    assert balp_problems(ev) == []
    ext = json.loads(m.msg[3:])["extension"][0]
    assert ext["url"] == CHAIN_EXT and {"url": "seq", "valueInteger": rec.seq} in ext["extension"]
    return ev


async def _wait_for(rs: Rsyslog, seqs: set[int], timeout_s: float = 20.0) -> bool:
    async def got() -> bool:
        return seqs <= {int(m.sd[SD_ID]["seq"]) for m in rs.messages()}

    return await eventually(got, timeout_s)


# ---------------------------------------------------------------- the tests


def test_the_parser_takes_rfc_5424_and_refuses_what_is_not() -> None:
    m = parse_5424(b'<85>1 2026-12-02T08:00:00.123Z gw nhigw gw-1 IHE+FHIR [a@1 x="q\\"\\]\\\\" y=""][b@1] \xef\xbb\xbf{}')
    assert m.sd == {"a@1": {"x": 'q"]\\', "y": ""}, "b@1": {}} and m.msg == b"\xef\xbb\xbf{}"
    for bad in (b"<85>1 2026-12-02 gw nhigw - - - x", b'<85>1 - gw nhigw - - [a@1 x="]"]', b"<192>1 - gw nhigw - - -", b"<85>2x - gw nhigw - - -"):
        with pytest.raises(AssertionError):
            parse_5424(bad)
    rec = AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance="gw 1", site="clinic",
                      requestId="r", idempotencyKey="k", seq=3, hash="ab", prevHash="cd", patient=mask_patient("Z299999929"))
    got = parse_5424(format_message(rec, 'odd"chain]', hostname="host with spaces", procid="gw 1"))
    assert got.sd[SD_ID] == {"chain": 'odd"chain]', "seq": "3", "hash": "ab", "prevHash": "cd"} and got.hostname == "hostwithspaces"
    # the body is the export's resource (nhigw audit export --format fhir-ndjson), written from the data it validated
    same = json.loads(AuditEvent.model_validate_json(got.msg[3:]).model_dump_json())
    assert same == json.loads(audit_event(rec, 'odd"chain]').model_dump_json())


async def test_registration_and_write_reach_rsyslog_as_atna_messages_through_a_receiver_restart_and_replay(
    rsyslog: Rsyslog, redis_server: str, bus_prefix: str, tmp_path: Path
) -> None:
    key = os.urandom(32)
    settings = SyslogSettings(SyslogTarget.parse(rsyslog.url), first_backoff_s=0.1, max_backoff_s=0.5)
    # the run below goes as fast as the stack answers: no client rate limit in the way
    fast = UpstreamSettings(rate_per_s=1e6, rate_burst=1e6)
    async with RedisBus(redis_server) as bus, running_stack(bus=bus, prefix=bus_prefix, gateway_key=key, audit_syslog=settings, upstream=fast) as s:
        await s.ready()
        gw = s.gateway
        assert ok(await s.gw("/api/v1/BasicData/Register", workstation="ws-01"))  # one call: the gateway gets the signature
        assert ok(await s.gw("/api/v1/EmergentTel/Write", {"tel": "0912345678"}, workstation="ws-01"))
        recs = await gw.audit.records()
        assert [r.route for r in recs] == ["BasicData/Register", "EmergentTel/Write"]
        assert await _wait_for(rsyslog, {r.seq for r in recs}), rsyslog.raw()
        by_seq = {r.seq: r for r in recs}
        events = [check_atna(m, by_seq, gw.audit.name) for m in rsyslog.messages()]
        assert [e.action for e in events] == ["R", "C"] and len(events) == 2  # read, then the write; each once
        assert json.loads(events[0].model_dump_json())["meta"]["profile"][0].endswith("PatientRead")

        # The receiver stops in the middle of a steady run of requests and comes back: nothing is lost.
        stream = gw.syslog
        assert stream is not None
        done = asyncio.Event()

        async def load() -> int:
            n = 0
            while not done.is_set():
                assert ok(await s.gw("/api/v1/BasicData/Register", workstation="ws-01"))
                n += 1
            return n

        async def head() -> int:
            return int(((await gw.audit.head()) or "0").split()[0])

        async def noticed() -> bool:
            return not stream.connected

        running = asyncio.create_task(load())
        assert await _wait_for(rsyslog, {3, 4})
        await asyncio.to_thread(rsyslog.stop)  # the gateway keeps serving while rsyslogd shuts down
        assert await eventually(noticed, 10)
        down_at = await head()

        async def more_while_down() -> bool:
            return await head() >= down_at + 3

        assert await eventually(more_while_down, 20)
        await asyncio.to_thread(rsyslog.start)
        await eventually(lambda: _connected(stream), 10)
        after_up = await head()

        async def more_after() -> bool:
            return await head() >= after_up + 3

        assert await eventually(more_after, 20)
        done.set()
        assert await running >= 9
        recs = await gw.audit.records()
        want = {r.seq for r in recs}
        assert await _wait_for(rsyslog, want), f"missing {sorted(want - {int(m.sd[SD_ID]['seq']) for m in rsyslog.messages()})}"
        by_seq = {r.seq: r for r in recs}
        for m in rsyslog.messages():
            check_atna(m, by_seq, gw.audit.name)  # duplicates (the rewind) carry the same chain position
        assert stream.failures >= 1 and stream.connects >= 2 and stream.resent >= 3
        text = b"\n".join(rsyslog.raw()).decode("utf-8")
        assert not FULL_ID.search(text) and "Z29*****29" in text  # masked IDs only
        metrics = await (await s.http.get(s.gateway_url + "/metrics")).text()
        assert "nhigw_gateway_audit_syslog_connected 1.0" in metrics and "nhigw_gateway_audit_syslog_dropped_total 0.0" in metrics
        # what the shipped alert and dashboard read of a streaming replica (test_alerts' gateways do not stream)
        from prometheus_client.parser import text_string_to_metric_families

        from tests.test_alerts import ONLY_WHEN_CONFIGURED

        families = {f.name for f in text_string_to_metric_families(metrics)}
        assert {m.removesuffix("_total") for m in ONLY_WHEN_CONFIGURED} <= families

        # Replay from a time, by the CLI, into another receiver: exactly the records recorded from then on, once each.
        other = Rsyslog(tmp_path / "replay")
        await asyncio.to_thread(other.start)
        try:
            pivot = recs[len(recs) // 2]
            expected = sorted(r.seq for r in recs if r.at_ms() >= pivot.at_ms())
            argv = [sys.executable, "-m", "nhigw", "audit", "syslog", "--redis", redis_server, "--bus-key", base64.b64encode(key).decode(), "--bus-prefix", bus_prefix,
                    "--data-dir", str(tmp_path / "cli"), "--since", pivot.recorded, "--to", other.url]
            out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["sent"] == len(expected) < len(recs)
            assert await _wait_for(other, set(expected))
            replayed = other.messages()
            assert sorted(int(m.sd[SD_ID]["seq"]) for m in replayed) == expected and {m.procid for m in replayed} == {"nhigw-replay"}
            for m in replayed:
                check_atna(m, by_seq, gw.audit.name)
            assert not FULL_ID.search(b"\n".join(other.raw()).decode("utf-8"))
        finally:
            other.stop()


async def _connected(stream: SyslogStream) -> bool:
    return stream.connected


async def test_a_full_queue_drops_and_counts_then_reads_the_log_again(rsyslog: Rsyslog) -> None:
    """The receiver is down and more records come than the queue holds: the request path never waits,
    the overflow is counted, and once the receiver is back every record arrives from the log."""
    log = MemoryAudit()
    rsyslog.stop()
    stream = SyslogStream(log, SyslogSettings(SyslogTarget.parse(rsyslog.url), queue_max=3, first_backoff_s=0.05, max_backoff_s=0.2), instance="gw-1")
    stream.start()
    try:
        for i in range(10):
            await log.append(AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance="gw-1", site="clinic",
                                         requestId=f"r{i}", idempotencyKey=f"k{i}", patient=mask_patient("Z299999929")))
        # another replica's record in the same chain is not this replica's to send
        await log.append(AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance="gw-2", site="clinic",
                                     requestId="other", idempotencyKey="o"))
        assert stream.dropped == 7 and stream.pending == 3
        rsyslog.start()
        assert await _wait_for(rsyslog, set(range(1, 11)))
        recs = {r.seq: r for r in await log.records()}
        msgs = rsyslog.messages()
        assert sorted(int(m.sd[SD_ID]["seq"]) for m in msgs) == list(range(1, 11))  # each once; seq 11 is gw-2's
        for m in msgs:
            check_atna(m, recs, log.name)
        assert stream.resent >= 7
    finally:
        await stream.close()


def test_the_gateway_takes_its_syslog_receiver_from_a_flag_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nhigw.cli import parser, resolve_environment
    from nhigw.gateway.cli import gateway_settings

    def built(argv: list[str]) -> SyslogSettings | None:
        args = parser().parse_args(argv)
        resolve_environment(args)
        return gateway_settings(args, cloud="http://127.0.0.1:1", data_dir=tmp_path, audit_file=False).audit_syslog

    monkeypatch.delenv("NHIGW_AUDIT_SYSLOG", raising=False)
    monkeypatch.delenv("NHIGW_AUDIT_SYSLOG_CA", raising=False)
    assert built(["gateway"]) is None
    got = built(["gateway", "--audit-syslog", "tls://atna.example:6514", "--audit-syslog-ca", "/etc/atna-ca.pem"])
    assert got is not None and got.target == SyslogTarget("atna.example", 6514, tls=True, ca_file=Path("/etc/atna-ca.pem"))
    monkeypatch.setenv("NHIGW_AUDIT_SYSLOG", "tcp://10.0.0.9:601")
    got = built(["gateway"])
    assert got is not None and (got.target.host, got.target.port, got.target.tls) == ("10.0.0.9", 601, False)
    assert got.cursor == tmp_path / "audit-syslog-cursor.json"  # beside the replica's audit checkpoints
    up = built(["up", "--audit-syslog", "tcp://127.0.0.1:6601"])  # the one-process stack streams the same way
    assert up is not None and up.target.port == 6601
    for bad in (["--audit-syslog", "udp://10.0.0.9:514"], ["--audit-syslog", "tcp://10.0.0.9:601", "--audit-syslog-ca", "x.pem"], ["--audit-syslog", "tls://h:6514", "--audit-syslog-cert", "c.pem"]):
        with pytest.raises(SystemExit, match="nhigw: "):
            built(["gateway", *bad])


async def test_over_tls_with_a_client_certificate_and_never_to_a_receiver_it_does_not_trust(tmp_path: Path) -> None:
    """RFC 5425: rsyslog (OpenSSL driver) requires the gateway's client certificate; the stream and the
    replay CLI reach it with theirs, and a stream that trusts another CA never sends it a byte."""
    from nhigw.gateway.audit import FileAudit

    pki, other_ca = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other", "someone-else")
    rs = Rsyslog(tmp_path / "rsyslog", tls=pki)
    await asyncio.to_thread(rs.start)
    log = FileAudit(tmp_path / "gateway" / "audit.jsonl")
    cert = {"cert_file": pki / "client.pem", "key_file": pki / "client.key"}
    good = SyslogStream(log, SyslogSettings(SyslogTarget.parse(rs.url, ca_file=pki / "ca.pem", **cert), first_backoff_s=0.05, max_backoff_s=0.2), instance="gw-1")
    wrong = SyslogStream(log, SyslogSettings(SyslogTarget.parse(rs.url, ca_file=other_ca / "ca.pem", **cert), first_backoff_s=0.05, max_backoff_s=0.2), instance="gw-1")
    try:
        good.start()
        wrong.start()

        def both(rec: AuditRecord) -> None:  # start() attached each in turn: one log, two receivers' streams here
            good.offer(rec)
            wrong.offer(rec)

        log.on_append = both
        for i in range(3):
            await log.append(AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance="gw-1", site="clinic",
                                         requestId=f"r{i}", idempotencyKey=f"k{i}", patient=mask_patient("Z299999929")))
        assert await _wait_for(rs, {1, 2, 3})
        recs = {r.seq: r for r in await log.records()}
        for m in rs.messages():
            check_atna(m, recs, log.name)

        async def refused() -> bool:
            return wrong.failures >= 2

        assert await eventually(refused, 10) and not wrong.connected and wrong.sent == 0
        assert sorted(int(m.sd[SD_ID]["seq"]) for m in rs.messages()) == [1, 2, 3]  # from the trusted stream only, once each
        argv = [sys.executable, "-m", "nhigw", "audit", "syslog", "--file", str(log.path), "--data-dir", str(tmp_path), "--since", "2000-01-01", "--to", rs.url,
                "--syslog-ca", str(pki / "ca.pem"), "--syslog-cert", str(pki / "client.pem"), "--syslog-key", str(pki / "client.key")]
        out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0 and json.loads(out.stdout)["sent"] == 3, out.stderr
        replayed: list[int] = []

        async def arrived(n: int) -> bool:
            nonlocal replayed
            replayed = [int(m.sd[SD_ID]["seq"]) for m in rs.messages() if m.procid == "nhigw-replay"]
            return len(replayed) >= n

        assert await eventually(lambda: arrived(3), 10) and sorted(replayed) == [1, 2, 3]
        # Without its client certificate the replay is refused at the handshake: nothing of it arrives
        # (checked once the next replay with the certificate, started after it ended, has arrived).
        await asyncio.to_thread(subprocess.run, argv[:-4], capture_output=True, text=True, timeout=60, cwd=ROOT)
        out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert await eventually(lambda: arrived(6), 10) and sorted(replayed) == [1, 1, 2, 2, 3, 3]
    finally:
        await good.close()
        await wrong.close()
        rs.stop()


async def test_two_replicas_on_one_chain_each_send_their_own_records_once(rsyslog: Rsyslog, redis_server: str, bus_prefix: str) -> None:
    import redis.asyncio as aioredis

    from nhigw.contracts.buskeys import BusKeys
    from nhigw.gateway.audit import RedisAudit

    key = os.urandom(32)
    clients = [aioredis.Redis.from_url(redis_server) for _ in range(2)]
    logs = [RedisAudit(c, BusKeys(bus_prefix), key) for c in clients]
    streams = [SyslogStream(log, SyslogSettings(SyslogTarget.parse(rsyslog.url)), instance=f"gw-{i}") for i, log in enumerate(logs)]
    try:
        for st in streams:
            st.start()

        async def write(i: int, n: int) -> None:
            for j in range(n):
                await logs[i].append(AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance=f"gw-{i}",
                                                 site="clinic", requestId=f"r{i}-{j}", idempotencyKey=f"k{i}-{j}"))

        await asyncio.gather(write(0, 15), write(1, 15))
        assert await _wait_for(rsyslog, set(range(1, 31)))
        recs = {r.seq: r for r in await logs[0].records()}
        msgs = rsyslog.messages()
        assert sorted(int(m.sd[SD_ID]["seq"]) for m in msgs) == list(range(1, 31))  # the merged streams: every seq once
        for m in msgs:
            check_atna(m, recs, logs[0].name)
            assert m.procid == recs[int(m.sd[SD_ID]["seq"])].instance  # each replica sent its own
    finally:
        for st in streams:
            await st.close()
        for c in clients:
            await c.aclose()


async def test_a_record_that_makes_no_audit_event_is_skipped_and_counted_and_the_sender_lives_on(rsyslog: Rsyslog) -> None:
    log = MemoryAudit()
    stream = SyslogStream(log, SyslogSettings(SyslogTarget.parse(rsyslog.url)), instance="gw-1")
    stream.start()
    try:
        # e.g. a record edited in Redis: its time is no date (FHIR's AuditEvent.recorded refuses it)
        stream.offer(AuditRecord(action="R", route="x", outcome=0, statusCode=0, httpStatus=200, client="c", instance="gw-1", site="clinic",
                                 requestId="bad", idempotencyKey="b", seq=1, recorded="not a time"))
        await log.append(AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance="gw-1", site="clinic",
                                     requestId="good", idempotencyKey="g"))
        assert await _wait_for(rsyslog, {1})
        assert stream.unsendable == 1 and stream.connected and [m.sd[SD_ID]["seq"] for m in rsyslog.messages()] == ["1"]
    finally:
        await stream.close()


def test_a_receiver_that_vanishes_silently_is_noticed_within_the_rewind() -> None:
    import socket

    from nhigw.gateway.auditsyslog import dead_peer_options

    settings = SyslogSettings(SyslogTarget("127.0.0.1", 1))
    assert settings.unacked_s < settings.rewind_s  # what was written before a silent peer was noticed is sent again
    with socket.socket() as sock:
        dead_peer_options(sock, settings.unacked_s)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20000
        idle, every, probes = (sock.getsockopt(socket.IPPROTO_TCP, o) for o in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT))
        assert idle + every * probes < settings.rewind_s  # an idle connection to a vanished peer fails inside the rewind too


async def test_nhigw_gateway_process_streams_with_the_flag_and_stops_cleanly(rsyslog: Rsyslog, tmp_path: Path) -> None:
    """``nhigw gateway --audit-syslog`` as its own process (one process: the audit file in its data
    directory): a signed pass-through registration arrives in rsyslog with the file's chain position."""
    from nhigw.gateway.audit import FileAudit
    from tests.helpers import Proc
    from tests.simkit import running_sim

    async with running_sim() as sim:
        port = free_port()
        data = tmp_path / "gw"
        gw = Proc("gw", ["gateway", "--port", str(port), "--cloud", sim.url, "--data-dir", str(data), "--audit-syslog", rsyslog.url], tmp_path)
        try:
            await asyncio.to_thread(gw.wait_ready)
            body = sim.signer.for_route("BasicData/Register")
            async with sim.http.post(f"http://127.0.0.1:{port}/api/v1/BasicData/Register", json=body) as r:
                assert r.status == 200 and (await r.json())["statusCode"] == 0
            assert await _wait_for(rsyslog, {1})
            metrics = await (await sim.http.get(f"http://127.0.0.1:{port}/metrics")).text()
            assert "nhigw_gateway_audit_syslog_connected 1.0" in metrics and "nhigw_gateway_audit_syslog_sent_total 1.0" in metrics
        finally:
            assert await asyncio.to_thread(gw.stop) == 0
    log = FileAudit(data / "gateway" / "audit.jsonl")
    recs = {r.seq: r for r in await log.records()}
    owed = json.loads((data / "gateway" / "audit-syslog-cursor.json").read_text())["owed"]
    assert [seq for seq, _at in owed.values()] == [1]  # a clean stop: nothing after seq 1 owed
    (m,) = rsyslog.messages()
    check_atna(m, recs, log.name)
    assert not FULL_ID.search(b"\n".join(rsyslog.raw()).decode("utf-8"))


async def test_what_a_stopped_replica_still_owed_is_sent_by_the_next_process_on_its_data_directory(rsyslog: Rsyslog, tmp_path: Path) -> None:
    from nhigw.gateway.audit import FileAudit

    log = FileAudit(tmp_path / "gateway" / "audit.jsonl")
    cursor = tmp_path / "gateway" / "audit-syslog-cursor.json"
    settings = SyslogSettings(SyslogTarget.parse(rsyslog.url), cursor=cursor, first_backoff_s=0.05, max_backoff_s=0.2, drain_s=0.5)

    def rec(instance: str, i: int) -> AuditRecord:
        return AuditRecord(action="R", route="BasicData/Register", outcome=0, statusCode=0, httpStatus=200, client="his-a", instance=instance, site="clinic",
                           requestId=f"{instance}-{i}", idempotencyKey=f"{instance}-{i}")

    def counts() -> dict[int, int]:
        out: dict[int, int] = {}
        for m in rsyslog.messages():
            out[int(m.sd[SD_ID]["seq"])] = out.get(int(m.sd[SD_ID]["seq"]), 0) + 1
        return out

    # One process sends two records, loses its receiver, appends two more and stops with them unsent.
    a = SyslogStream(log, settings, instance="gw-a")
    a.start()
    for i in range(2):
        await log.append(rec("gw-a", i))
    assert await _wait_for(rsyslog, {1, 2})
    await asyncio.to_thread(rsyslog.stop)

    async def a_noticed() -> bool:
        return not a.connected

    assert await eventually(a_noticed, 10)
    for i in range(2, 4):
        await log.append(rec("gw-a", i))
    await a.close()
    assert json.loads(cursor.read_text())["owed"]["gw-a"][0] == 0  # 1 and 2 were in the rewind window of the break

    # The next process on the same data directory (another instance name) sends them once the receiver is back.
    await asyncio.to_thread(rsyslog.start)
    b = SyslogStream(log, settings, instance="gw-b")
    b.start()
    await log.append(rec("gw-b", 0))
    assert await _wait_for(rsyslog, {1, 2, 3, 4, 5})
    recs = {r.seq: r for r in await log.records()}
    for m in rsyslog.messages():
        check_atna(m, recs, log.name)
    assert counts()[3] == counts()[4] == counts()[5] == 1  # never sent before: once

    async def b_idle() -> bool:
        return b.connected and b.pending == 0

    assert await eventually(b_idle, 10)
    await b.close()
    assert list(json.loads(cursor.read_text())["owed"]) == ["gw-b"]  # gw-a's debt is paid

    # After that clean stop, the next process sends nothing twice.
    c = SyslogStream(log, settings, instance="gw-c")
    c.start()
    try:
        await log.append(rec("gw-c", 0))
        assert await _wait_for(rsyslog, {6})
        assert counts()[5] == counts()[6] == 1
    finally:
        await c.close()
