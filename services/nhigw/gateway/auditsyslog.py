"""Audit records as RFC 5424 syslog messages, as IHE ATNA audit record repositories take them.

Each record is one message (``format_message``): PRI ``<85>`` (facility authpriv 10, severity
notice 5), version 1, the record's time, this host, APP-NAME ``nhigw``, PROCID the replica,
MSGID ``IHE+FHIR``, the record's place in the hash chain as structured data
``[nhigw@32473 chain=".." seq=".." hash=".." prevHash=".."]`` and as the body (UTF-8, with its BOM)
the record as a FHIR R4 AuditEvent after IHE BALP (``nhigw.gateway.auditexport``: masked numbers
only). Over TCP or TLS (RFC 5425) with octet-counted framing (``LEN SP MSG``, RFC 6587 3.4.1).
Choices (the seed and ATNA are silent on FHIR over syslog): the MSGID, and SD-ID ``nhigw@32473``
(32473 is the enterprise number RFC 5612 reserves for documentation).

Streaming (``SyslogStream``, ``--audit-syslog``): the audit backends call ``offer`` after each
append committed (``AuditLog.on_append``), in chain order; it puts the record in a bounded queue and
never waits, and a full queue drops the record and counts it (``nhigw_gateway_audit_syslog_dropped_total``).
One supervised task sends; it reconnects with capped backoff and watches the connection for the
receiver's close while idle. The guarantee, for the records this replica appends while it runs:

- **at least once, in chain order** (each replica sends its own records; in a shared chain the
  ``seq`` of one replica's messages has gaps where other replicas appended);
- a record that did not fit in the queue, and every record written to a connection in the
  ``rewind_s`` (30) seconds before it broke (a receiver that stops may not have read what was in
  flight; TCP syslog has no acknowledgement), is read again from the audit log (its paged reader,
  by time, from ``catchup_margin_s`` before that record) once a connection is back, so a receiver
  down for any time loses nothing; what it gets twice carries the same chain, seq and hash. A
  receiver that vanishes silently is noticed once data goes unacknowledged for ``unacked_s`` (20)
  seconds (TCP_USER_TIMEOUT, keepalive when idle), inside the rewind;
- across restarts: a replica notes what it still owes (per instance: the records after which seq,
  and from when) in ``cursor`` (``<data-dir>/gateway/audit-syslog-cursor.json``) at start, at every
  break, every ``cursor_every_s`` while sending and at close (``close`` first sends what it holds
  for up to ``drain_s``); the next process on that data directory sends those records first. A
  process killed outright owes at least the rewind window before its last note;
- not covered: records appended before the first start with streaming, a data directory lost with
  its cursor, and a receiver that takes a record and then loses it (its own queue):
  ``nhigw audit syslog --since`` replays any time range.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from nhigw.bus.base import BusError
from nhigw.common.logging import get_logger
from nhigw.gateway.audit import AuditLog, AuditRecord, to_ms
from nhigw.gateway.auditexport import audit_event_json

if TYPE_CHECKING:
    from nhigw.bus.guard import Supervisor

__all__ = ["MSGID", "PRI", "SD_ID", "SyslogSettings", "SyslogStream", "SyslogTarget", "format_message", "frame", "replay"]

log = get_logger("nhigw.gateway.auditsyslog")

FACILITY_AUTHPRIV, SEVERITY_NOTICE = 10, 5
PRI = FACILITY_AUTHPRIV * 8 + SEVERITY_NOTICE  # 85
APP_NAME = "nhigw"
MSGID = "IHE+FHIR"
SD_ID = "nhigw@32473"
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SyslogTarget:
    """Where messages go: ``tcp://host:port`` or ``tls://host:port`` (RFC 5425; ``ca_file`` to trust,
    ``cert_file`` + ``key_file`` for the client certificate ATNA node authentication asks for)."""

    host: str
    port: int
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def parse(cls, url: str, *, ca_file: str | Path | None = None, cert_file: str | Path | None = None, key_file: str | Path | None = None) -> SyslogTarget:
        """``ValueError`` with a sentence for the operator when ``url`` is not one."""
        u = urlsplit(url)
        if u.scheme not in ("tcp", "tls") or not u.hostname:
            raise ValueError(f"{url!r} is not a syslog address (tcp://host:port or tls://host:port)")
        try:
            port = u.port or (6514 if u.scheme == "tls" else 601)  # RFC 5425 / RFC 3195 registered ports
        except ValueError as exc:
            raise ValueError(f"{url!r}: bad port") from exc
        if (cert_file is None) != (key_file is None):
            raise ValueError("a client certificate needs both its certificate and its key file")
        if u.scheme == "tcp" and (ca_file or cert_file):
            raise ValueError(f"{url!r}: a CA or client certificate is for tls:// only")
        return cls(u.hostname, port, u.scheme == "tls", Path(ca_file) if ca_file else None, Path(cert_file) if cert_file else None, Path(key_file) if key_file else None)

    def __str__(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    async def open(self, timeout_s: float, unacked_s: float = 20.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ctx = self.ssl_context()
        async with asyncio.timeout(timeout_s):  # not wait_for: on 3.11 a cancel meeting a finished connect leaks the connection
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=ctx, server_hostname=self.host if ctx else None)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            dead_peer_options(sock, unacked_s)
        return reader, writer


def dead_peer_options(sock: socket.socket, unacked_s: float) -> None:
    """A receiver that vanishes without a word (a cable pulled, a host powered off) would leave writes
    "succeeding" into the kernel for many minutes: the connection fails once data went unacknowledged
    for ``unacked_s`` (TCP_USER_TIMEOUT) and, idle, after keepalive probes of about as long (Linux)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", max(1, int(unacked_s / 2))), ("TCP_KEEPINTVL", max(1, int(unacked_s / 4))), ("TCP_KEEPCNT", 2),
                            ("TCP_USER_TIMEOUT", int(unacked_s * 1000))):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


@dataclass(frozen=True)
class SyslogSettings:
    target: SyslogTarget
    queue_max: int = 10_000  # records waiting to be sent; more are dropped, counted and read again from the log
    # Records sent this long before a break was noticed are sent again: longer than a silent peer takes to
    # be noticed (``unacked_s``), since TCP syslog has no acknowledgement of its own.
    rewind_s: float = 30.0
    unacked_s: float = 20.0
    catchup_margin_s: float = 60.0  # read the log from this long before the first record needed (records are timed before they are chained)
    first_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    connect_timeout_s: float = 5.0
    send_timeout_s: float = 10.0  # a receiver that takes nothing for this long is treated as gone
    drain_s: float = 2.0  # at close: how long to keep sending what is queued
    # Where a replica notes what it still owes the receiver (per instance: the records after which seq),
    # so the next process on the same data directory sends what the last one could not; None: not kept.
    cursor: Path | None = None
    cursor_every_s: float = 2.0


# ---------------------------------------------------------------- the message (pure)


def _ascii(text: str | None, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit``; ``-`` when empty."""
    out = "".join(c for c in (text or "") if 33 <= ord(c) <= 126)[:limit]
    return out or "-"


def _sd_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _timestamp(recorded: str) -> str:
    try:
        return datetime.fromtimestamp(to_ms(recorded) / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return "-"


def format_message(rec: AuditRecord, chain: str, *, hostname: str, procid: str) -> bytes:
    """One chained record as an RFC 5424 message (without framing)."""
    sd = f'[{SD_ID} chain="{_sd_value(chain)}" seq="{rec.seq}" hash="{_sd_value(rec.hash)}" prevHash="{_sd_value(rec.prevHash)}"]'
    header = f"<{PRI}>1 {_timestamp(rec.recorded)} {_ascii(hostname, 255)} {APP_NAME} {_ascii(procid, 128)} {MSGID} {sd} "
    return header.encode("ascii") + BOM + audit_event_json(rec, chain).encode()


def frame(msg: bytes) -> bytes:
    """Octet-counted framing (RFC 6587 3.4.1, RFC 5425 4.3): ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %s" % (len(msg), msg)


# ---------------------------------------------------------------- streaming


class _Broken(Exception):
    """The receiver closed the connection, reset it, or stopped taking data."""


@dataclass
class _Sent:
    seq: int
    at_ms: int
    mono: float
    instance: str


class SyslogStream:
    """One replica's stream of its audit records to a syslog receiver (see the module's guarantee)."""

    TASK = "audit-syslog"

    def __init__(self, audit: AuditLog, settings: SyslogSettings, *, instance: str, hostname: str | None = None) -> None:
        self.audit, self.settings, self.instance = audit, settings, instance
        self.hostname = hostname or socket.gethostname()
        self._queue: deque[AuditRecord] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while connected with nothing left to send
        self._recent: deque[_Sent] = deque()  # sent in the last ``rewind_s`` (and the one before)
        self._gap: tuple[int, int] | None = None  # (seq after which, time from which) the log must be read again
        self._last_sent = 0  # highest seq written to a connection
        self._supervisor: Supervisor | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.sent = self.dropped = self.resent = self.connects = self.failures = self.unsendable = 0
        self._started_ms = int(time.time() * 1000)
        self._last_at = self._started_ms  # the time of the record ``_last_sent``
        self._cursor_at = 0.0
        # Earlier processes' instances and what of theirs is not known sent: (seq after which, time from which).
        self._owed: dict[str, tuple[int, int]] = self._read_cursor()

    # ------------------------------------------------------------ the request path side

    def offer(self, rec: AuditRecord) -> None:
        """Called by the audit log after an append committed (in chain order); never blocks or raises."""
        if rec.instance != self.instance:  # not this replica's to send (as in a catch-up)
            return
        if len(self._queue) >= self.settings.queue_max:
            self.dropped += 1
            self._need(rec.seq - 1, _at(rec))
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("audit_syslog_queue_full", dropped=self.dropped, queue_max=self.settings.queue_max)
        else:
            self._queue.append(rec)
        self._idle.clear()
        self._wake.set()

    def attach(self) -> None:
        self.audit.on_append = self.offer

    # ------------------------------------------------------------ what is owed, across restarts

    def _read_cursor(self) -> dict[str, tuple[int, int]]:
        path = self.settings.cursor
        if path is None or not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            owed = {str(k): (int(v[0]), int(v[1])) for k, v in data["owed"].items() if k != self.instance}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            log.warning("audit_syslog_cursor_unreadable", path=str(path), error=str(exc)[:200])
            return {}
        if owed:
            log.info("audit_syslog_owed_from_before", instances=sorted(owed))
        return owed

    def position(self, *, clean: bool = False) -> tuple[int, int]:
        """This replica's records after which seq are not known to have reached the receiver (and from
        which time): queued, behind, or (unless ``clean``: stopped connected with nothing left) sent in
        the rewind window."""
        options = [(self._last_sent, self._last_at)]
        if self._gap is not None:
            options.append(self._gap)
        if self._queue:
            options.append((self._queue[0].seq - 1, _at(self._queue[0])))
        if not clean:
            cutoff = time.monotonic() - self.settings.rewind_s
            first = next((x for x in self._recent if x.mono >= cutoff and x.instance == self.instance), None)
            if first is not None:
                options.append((first.seq - 1, first.at_ms))
        return min(options)

    def _write_cursor(self, *, clean: bool = False) -> None:
        path = self.settings.cursor
        if path is None:
            return
        self._cursor_at = time.monotonic()
        owed = {**self._owed, self.instance: self.position(clean=clean)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps({"target": str(self.settings.target), "owed": owed}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("audit_syslog_cursor_unwritable", path=str(path), error=exc.strerror)

    def _need(self, seq: int, at_ms: int) -> None:
        if self._gap is None or seq < self._gap[0]:
            self._gap = (seq, at_ms)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------ the sender

    def start(self, supervisor: Supervisor | None = None) -> None:
        self.attach()
        self._write_cursor()  # from now on this process's records are owed too, should it die before sending
        if supervisor is not None:
            self._supervisor = supervisor
            supervisor.start(self.TASK, self.run)
        elif self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.TASK)

    async def close(self) -> None:
        """Send what is queued for up to ``drain_s`` (while connected), then stop."""
        if self.connected and (self._queue or self._gap is not None or self._owed):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.settings.drain_s)
        clean = self._idle.is_set() and not self._owed  # connected with nothing left (stopping the task clears it)
        if self.audit.on_append == self.offer:
            self.audit.on_append = None
        if self._supervisor is not None:
            await self._supervisor.stop(self.TASK)
            self._supervisor = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._write_cursor(clean=clean)
        if not clean:
            log.warning("audit_syslog_unsent_at_close", queued=len(self._queue), behind=self._gap is not None or bool(self._owed),
                        kept_for_next_start=self.settings.cursor is not None)

    async def run(self) -> None:
        """Connect, send, reconnect with backoff: no receiver failure ends it."""
        backoff = self.settings.first_backoff_s
        down_logged = False
        while True:
            _still_wanted()
            try:
                reader, writer = await self.settings.target.open(self.settings.connect_timeout_s, self.settings.unacked_s)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                _still_wanted()
                self.failures += 1
                if not down_logged:  # once per outage, not once per attempt
                    log.warning("audit_syslog_unreachable", target=str(self.settings.target), error=str(exc) or type(exc).__name__)
                    down_logged = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_s)
                continue
            self.connected, self.connects = True, self.connects + 1
            log.info("audit_syslog_connected", target=str(self.settings.target), behind=self._gap is not None, queued=len(self._queue))
            down_logged = False
            backoff = self.settings.first_backoff_s
            closed = asyncio.Event()
            watch = asyncio.create_task(_watch(reader, closed), name="audit-syslog-watch")
            try:
                await self._pump(writer, closed)
            except (_Broken, OSError, ssl.SSLError, TimeoutError) as exc:
                self.failures += 1
                self._rewind()
                self._write_cursor()
                log.warning("audit_syslog_disconnected", target=str(self.settings.target), error=str(exc) or type(exc).__name__, resend_from=self._gap[0] + 1 if self._gap else None)
            except BusError as exc:  # the audit log could not be read: the gap stays, try again after a pause
                log.warning("audit_syslog_log_unreadable", error=str(exc))
                await asyncio.sleep(backoff)
            finally:
                self.connected = False
                self._idle.clear()
                writer.close()  # before any await: a cancellation there must not leave the connection open
                watch.cancel()
                await asyncio.wait([watch])  # never raises the watcher's end; our own cancellation goes on
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _pump(self, writer: asyncio.StreamWriter, closed: asyncio.Event) -> None:
        while True:
            if self._gap is not None or self._owed:
                await self._catch_up(writer, closed)
                continue
            if not self._queue:
                self._wake.clear()
                self._idle.set()
                waiter = asyncio.create_task(self._wake.wait())
                gone = asyncio.create_task(closed.wait())
                try:
                    await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    gone.cancel()
                if closed.is_set():
                    raise _Broken("the receiver closed the connection")
                continue
            batch: list[AuditRecord] = []
            while self._queue and len(batch) < 500:
                rec = self._queue.popleft()
                if rec.seq > self._last_sent:  # else: already sent from the log by a catch-up
                    batch.append(rec)
            await self._send(writer, closed, batch)

    async def _catch_up(self, writer: asyncio.StreamWriter, closed: asyncio.Event) -> None:
        """Send again, from the audit log, this replica's records after the gap's seq (and those queued),
        and what earlier processes on this data directory still owed (``_owed``)."""
        gap, owed = self._gap, dict(self._owed)
        floors = dict(owed)
        if gap is not None:
            floor, at_ms = gap
            if self._queue and self._queue[0].seq - 1 < floor:
                floor, at_ms = self._queue[0].seq - 1, _at(self._queue[0])
            floors[self.instance] = (floor, at_ms)
            self._last_sent = floor  # a rewind goes back: everything after ``floor`` is sent again, in order
        self._gap = None
        since = min(at for _seq, at in floors.values()) - int(self.settings.catchup_margin_s * 1000)
        n = 0
        try:
            async for page in self.audit.pages(since=since):
                due = sorted((r for r in page.records if r.instance in floors and r.seq > floors[r.instance][0]), key=lambda r: r.seq)
                if due:
                    await self._send(writer, closed, due)
                    n += len(due)
        except BaseException:
            if gap is not None:
                self._need(*floors[self.instance])  # not done: the whole gap again next time
            raise
        for name in owed:
            self._owed.pop(name, None)
        self._write_cursor()
        self.resent += n
        # What is queued and was read from the log just now needs no second send.
        while self._queue and self._queue[0].seq <= self._last_sent:
            self._queue.popleft()
        log.info("audit_syslog_caught_up", after_seq=min(seq for seq, _at in floors.values()), sent=n, earlier_instances=sorted(owed))

    async def _send(self, writer: asyncio.StreamWriter, closed: asyncio.Event, recs: Iterable[AuditRecord]) -> None:
        if closed.is_set():
            raise _Broken("the receiver closed the connection")
        now = time.monotonic()
        chunk = []
        for i, rec in enumerate(recs):
            if i and i % 16 == 0:
                await asyncio.sleep(0)  # ~0.5 ms of FHIR validation per record: a catch-up of thousands must not stall the requests
            try:
                msg = format_message(rec, self.audit.name, hostname=self.hostname, procid=self.instance)
            except ValueError as exc:  # no valid AuditEvent (e.g. a record edited in Redis): skipped, never a dead sender
                self.unsendable += 1
                log.error("audit_syslog_unsendable", seq=rec.seq, error=str(exc)[:200])
                continue
            chunk.append(frame(msg))
            # Noted before the write: a write that fails is inside the rewind window.
            self._recent.append(_Sent(rec.seq, _at(rec), now, rec.instance))
            if rec.instance == self.instance and rec.seq > self._last_sent:
                self._last_sent, self._last_at = rec.seq, _at(rec)
        while len(self._recent) > 1 and self._recent[1].mono < now - self.settings.rewind_s:
            self._recent.popleft()
        if not chunk:
            return
        writer.write(b"".join(chunk))
        try:
            await asyncio.wait_for(writer.drain(), self.settings.send_timeout_s)
        except TimeoutError as exc:
            raise _Broken(f"the receiver took nothing for {self.settings.send_timeout_s} s") from exc
        self.sent += len(chunk)
        if time.monotonic() - self._cursor_at >= self.settings.cursor_every_s:
            self._write_cursor()

    def _rewind(self) -> None:
        """After a break: everything written in the last ``rewind_s`` is to be sent again (an earlier
        process's records too: owed again)."""
        cutoff = time.monotonic() - self.settings.rewind_s
        first: dict[str, _Sent] = {}
        for x in self._recent:
            if x.mono >= cutoff and (x.instance not in first or x.seq < first[x.instance].seq):
                first[x.instance] = x
        for name, x in first.items():
            if name == self.instance:
                self._need(x.seq - 1, x.at_ms)
            else:
                self._owed[name] = min(self._owed.get(name, (x.seq - 1, x.at_ms)), (x.seq - 1, x.at_ms))
        self._recent.clear()

    def collector(self) -> Collector:
        return _SyslogCollector(self)


def _still_wanted() -> None:
    """Raise the cancellation of the running task if one is pending: a cancellation that meets a connect
    attempt failing at the same moment must not be lost to the retry loop (the sender must still stop)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _at(rec: AuditRecord) -> int:
    try:
        return rec.at_ms()
    except ValueError:
        return 0


async def _watch(reader: asyncio.StreamReader, closed: asyncio.Event) -> None:
    """A syslog receiver sends nothing: end of stream (or a reset) means it closed the connection."""
    try:
        while await reader.read(4096):
            pass
    except (OSError, ssl.SSLError):
        pass
    finally:
        closed.set()


class _SyslogCollector(Collector):
    def __init__(self, stream: SyslogStream) -> None:
        self.s = stream

    def collect(self):
        s = self.s
        yield CounterMetricFamily("nhigw_gateway_audit_syslog_sent", "audit records sent as syslog messages (resent ones included)", value=s.sent)
        yield CounterMetricFamily("nhigw_gateway_audit_syslog_resent", "audit records sent again from the audit log after a break or a full queue", value=s.resent)
        yield CounterMetricFamily("nhigw_gateway_audit_syslog_dropped", "audit records that did not fit in the syslog queue (read again from the log later)", value=s.dropped)
        yield CounterMetricFamily("nhigw_gateway_audit_syslog_unsendable", "audit records that make no valid AuditEvent (skipped; see the log and nhigw audit verify)", value=s.unsendable)
        yield CounterMetricFamily("nhigw_gateway_audit_syslog_failures", "syslog connections that failed or broke", value=s.failures)
        yield GaugeMetricFamily("nhigw_gateway_audit_syslog_connected", "1 while connected to the syslog receiver", value=1 if s.connected else 0)
        yield GaugeMetricFamily("nhigw_gateway_audit_syslog_queued", "audit records waiting to be sent", value=s.pending)


# ---------------------------------------------------------------- replay


async def replay(audit: AuditLog, target: SyslogTarget, *, since: int | None, until: int | None, hospital: str | None = None,
                 hostname: str | None = None, procid: str = "nhigw-replay", timeout_s: float = 10.0) -> tuple[int, int]:
    """Send every readable record recorded in [since, until) (ms) once, in time order; (sent, unreadable).
    Connection errors raise (``OSError``, ``ssl.SSLError``, ``TimeoutError``)."""
    host = hostname or socket.gethostname()
    _reader, writer = await target.open(timeout_s)
    sent = unreadable = 0
    try:
        async for page in audit.pages(since=since, until=until, hospital=hospital):
            unreadable += page.unreadable
            if page.records:
                writer.write(b"".join(frame(format_message(r, audit.name, hostname=host, procid=procid)) for r in page.records))
                await asyncio.wait_for(writer.drain(), timeout_s)
                sent += len(page.records)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), timeout_s)
    return sent, unreadable
