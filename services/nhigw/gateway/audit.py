"""Tamper-evident, append-only audit trail of business requests (IHE ATNA / FHIR AuditEvent core).

One ``AuditRecord`` per business request the gateway ran, written by the worker after
the upstream call and before the answer is stored, published or acknowledged (XACK):
an HIS never holds an answer that has no audit record. Each record carries its upstream
attempts (number, outcome, latency) inside, so "one record per attempt" is kept without
a second chain write per attempt.

Chain: ``hash = HMAC-SHA256(audit key, prevHash || canonical JSON of the record without hash)``,
``seq`` counts from 1, and the store keeps a head (``seq hash`` of the last record).
The audit key is never in Redis: it is derived from the gateway key (``audit_key``; the
replicas and ``nhigw audit verify`` hold it, Redis and the agents do not), or, for a gateway
without one (``nhigw up``), kept sealed in ``audit.key`` (0600) beside the audit file. So someone
who can write to Redis can edit, reorder or remove records but cannot re-chain them.

Against truncation and deletion (dropping the tail and moving the head back, or deleting
the log and its head), each gateway process writes signed **checkpoints** outside Redis
(``Checkpoints``): its last head every few seconds and at shutdown, appended to a file
(``<data-dir>/gateway/audit-checkpoints.jsonl``) and logged (``audit_checkpoint``). A
replica that finds the head behind the head it wrote itself checkpoints at once and logs
``audit_head_moved_back``. ``verify`` checks the chain and every checkpoint against it:
a checkpointed record that is missing or differs fails. What was appended after the last
checkpoint (at most ``every_s`` seconds' worth) can be dropped unseen.

Reading: ``query`` pages by time through an index per hospital (and one of all records), so
its cost grows with the answer, not the log; each record it returns is checked against its
own MAC, hospital and time, and what cannot be read is counted (``unreadable``), never raised.

Personal data: the patient appears only as a masked national ID (``Z29*****29``), the HPC
as a masked card number; no signature, no PIN, no body is stored.

Stores: ``RedisAudit`` (a list, a head key and sorted-set indexes, appended by a
compare-and-append script so replicas share one chain) and ``FileAudit`` (JSON lines, for
the single-process deployment; its index is built in memory when it is opened).
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import contextlib
import functools
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from nhigw.bus.batch import GroupCommit
from nhigw.bus.resp import ReplicaTimeout, ReplicaWait, lean_script
from nhigw.common.logging import get_logger, mask_id
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.codes import Code
from nhigw.gateway.queue import MARK_STORED_LUA
from nhigw.gateway.store import REDIS_ERRORS, redis_errors

if TYPE_CHECKING:
    from nhigw.bus.guard import Supervisor

log = get_logger("nhigw.gateway.audit")

GENESIS = "0" * 64
KEY_LABEL = b"nhigw audit chain v1"
PAGE_MAX = 1000  # records per page of ``query`` (and ``GET /api/audit``)


def audit_key(gateway_key: bytes | None, key_file: Path | None = None, *, create: bool = True) -> bytes:
    """The chain's HMAC key: derived from the gateway key when there is one; else the key file,
    32 random bytes sealed at rest like the services' other keys (``nhigw.common.secretbox``: this
    machine and user, or ``NHIGW_MASTER_KEY``), made when ``create``; else (in-process tests) a random key."""
    if gateway_key:
        return hmac.new(gateway_key, KEY_LABEL, hashlib.sha256).digest()
    if key_file is None:
        return os.urandom(32)
    from nhigw.common.secretbox import SecretBox

    key_file = Path(key_file)
    box = SecretBox(key_file.parent, "audit key")
    if not key_file.exists():
        if not create:
            raise FileNotFoundError(f"audit key {key_file} not found (give the gateway key with --bus-key if the gateway had one)")
        box.write(key_file, os.urandom(32))
    return box.read(key_file)


def _mac(key: bytes, data: str) -> str:
    return hmac.digest(key, data.encode(), "sha256").hex()  # hmac.new(...).hexdigest()'s value, in one C call


# The chain's canonical form of a record: sorted keys, no spaces, UTF-8 as is. Built once: ``json.dumps``
# with these options makes a new encoder on every call (half its time for a record).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class AuditAttempt(BaseModel):
    n: int
    outcome: str
    latency_ms: float


class AuditRecord(BaseModel):
    """FHIR AuditEvent core: type/action, recorded, outcome, agents (who), source, entity (what)."""

    seq: int = 0
    recorded: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    eventType: str = "rest"  # DICOM "110112 Query"-like; here: the REST operation on the NHI cloud
    action: str  # C create / R read / U update / E execute (FHIR AuditEvent.action)
    route: str
    outcome: int  # FHIR: 0 success, 4 minor failure, 8 serious failure, 12 major failure
    statusCode: int
    httpStatus: int
    client: str
    hospitalId: str | None = None
    workstation: str | None = None
    agentId: str | None = None
    deviceSession: str | None = None  # the device session (nhigw.gateway.sessions) a request ran for
    hpc: str | None = None
    patient: str | None = None
    patientKey: str | None = None  # the keyed hash of the patient's full ID (``patient_key``): found by ID, never shown as one
    instance: str
    site: str
    requestId: str
    idempotencyKey: str
    attempts: list[AuditAttempt] = Field(default_factory=list)
    latency_ms: float = 0.0
    note: str | None = None  # an operator's action: what it rests on (e.g. a resend's reconciliation hint and note)
    prevHash: str = GENESIS
    hash: str = ""

    def compute_hash(self, key: bytes) -> str:
        # Fields added later are left out while unset, so records written before they existed keep their hashes.
        late = {k for k in ("deviceSession", "note", "patientKey") if getattr(self, k) is None}
        body = self.model_dump(mode="json", exclude={"hash", *late})
        return _mac(key, self.prevHash + _CANONICAL.encode(body))

    def at_ms(self) -> int:
        """``recorded`` in ms since the epoch: the record's score in the time indexes."""
        return to_ms(self.recorded)


def ops_record(
    client: Any, what: str, action: str, *, instance: str, site: str, hospital: str | None = None, workstation: str | None = None,
    request_id: str | None = None, idempotency_key: str = "", note: str | None = None, status_code: int = 0, patient: str | None = None, patient_key: str | None = None,
) -> AuditRecord:
    """An operator's action as an audit record (eventType ``ops``, route ``ops/<what>``): who (the key's
    name), for which hospital, and what it rests on (``note``). ``client``: a ``nhigw.gateway.auth.Client``."""
    return AuditRecord(
        eventType="ops", action=action, route=f"ops/{what}", outcome=outcome_of(status_code), statusCode=status_code, httpStatus=200,
        client=client.name, hospitalId=hospital, workstation=workstation, instance=instance, site=site,
        requestId=request_id or uuid.uuid4().hex, idempotencyKey=idempotency_key, note=note, patient=patient, patientKey=patient_key,
    )


def to_ms(when: str) -> int:
    """An ISO date or date-time (no zone: UTC) in ms since the epoch; ``ValueError`` if it is none."""
    if not isinstance(when, str) or len(when) > 40:
        raise ValueError("not an ISO date/time")
    t = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


PATIENT_LABEL = b"nhigw patient index v1"


def patient_key(chain_key: bytes, id_no: str | None) -> str | None:
    """The keyed hash stored with each audit record of a patient: HMAC-SHA256 under a key derived from
    the audit chain's key (never in Redis, sealed at rest like it), of the ID as typed (trimmed, upper
    case). Without the gateway's key a full ID cannot be tried against it."""
    if not id_no or not id_no.strip():
        return None
    return hmac.digest(_patient_subkey(chain_key), id_no.strip().upper().encode(), "sha256").hex()[:32]


@functools.lru_cache(maxsize=8)  # one chain key per gateway: derived once, not for every record
def _patient_subkey(chain_key: bytes) -> bytes:
    return hmac.new(chain_key, PATIENT_LABEL, hashlib.sha256).digest()


def mask_card(card: str | None) -> str | None:
    return f"{card[:4]}****{card[-4:]}" if card and len(card) > 8 else card


def mask_patient(id_no: str | None) -> str | None:
    if not id_no:
        return None
    masked = mask_id(id_no)
    return masked if masked != id_no else (id_no[:3] + "*" * max(0, len(id_no) - 5) + id_no[-2:] if len(id_no) > 5 else "***")


# The gateway, its Redis or the cloud failed (rather than the request or a business rule).
SERIOUS = frozenset({Code.WORKSTATION_OFFLINE, Code.WORKSTATION_TIMEOUT, Code.UPSTREAM_UNAVAILABLE, Code.OUTCOME_UNKNOWN, Code.DC_HTTP, Code.INTERNAL})


def outcome_of(status_code: int, http_status: int = 200) -> int:
    """FHIR outcome of an answer: 0 its statusCode is 0, 8 the gateway or the cloud failed, else 4.

    By the code, not the HTTP status: every 6.0-coded answer is HTTP 200 (``nhigw.contracts.codes``).
    """
    if http_status >= 500 or status_code in SERIOUS:
        return 8
    return 0 if status_code == 0 and http_status < 400 else 4


def _parse(line: bytes | str) -> AuditRecord | None:
    """One stored record, or None when it is not one (bad JSON, wrong shape, absurd nesting)."""
    try:
        return AuditRecord.model_validate_json(line)
    except (ValueError, RecursionError):
        return None


# ---------------------------------------------------------------- checkpoints (kept outside Redis)


class Checkpoint(BaseModel):
    """A gateway's signed statement "the chain ``log`` had record ``seq`` with ``hash``"."""

    event: str = "audit_checkpoint"
    log: str  # which chain: the Redis list's key, or the audit file's name
    seq: int
    hash: str
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    instance: str = ""
    mac: str = ""

    def _signed(self) -> str:
        return f"checkpoint|{self.log}|{self.seq}|{self.hash}|{self.at}|{self.instance}"

    def sign(self, key: bytes) -> Checkpoint:
        self.mac = _mac(key, self._signed())
        return self

    def valid(self, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, _mac(key, self._signed()))


def read_checkpoints(paths: Iterable[Path]) -> tuple[list[Checkpoint], list[str]]:
    """Checkpoints from checkpoint files or gateway logs (JSON lines; other lines are skipped)."""
    out: list[Checkpoint] = []
    problems: list[str] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            problems.append(f"checkpoints {path}: cannot be read ({exc.strerror})")
            continue
        for line in data.splitlines():
            if b"audit_checkpoint" not in line:
                continue
            try:
                out.append(Checkpoint.model_validate_json(line[line.index(b"{"):]))
            except (ValueError, RecursionError):
                continue
    return out, problems


class Checkpoints:
    """One process's checkpoints of a chain: the head it last wrote, every ``every_s`` and at close."""

    def __init__(self, key: bytes, log_name: str, path: Path | None, instance: str, every_s: float = 5.0) -> None:
        self.key, self.log_name, self.path, self.instance, self.every_s = key, log_name, path, instance, every_s
        self.mine: tuple[int, str] | None = None  # (seq, hash) of the last record this process wrote
        self._written: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None
        self._unwritable = False

    def wrote(self, head: str | None) -> None:
        if head:
            s, _, h = head.partition(" ")
            self.mine = (int(s), h)

    def check_current(self, current: str | None) -> None:
        """The store's head as another append found it: behind ours means records were removed."""
        if self.mine is None:
            return
        s, _, _h = (current or "0 ").partition(" ")
        try:
            seq = int(s)
        except ValueError:
            seq = -1
        if seq < self.mine[0]:
            log.error("audit_head_moved_back", log=self.log_name, wrote=self.mine[0], head=seq)
            self.write()

    def write(self) -> None:
        if self.mine is None or self.mine == self._written:
            return
        cp = Checkpoint(log=self.log_name, seq=self.mine[0], hash=self.mine[1], instance=self.instance).sign(self.key)
        log.info("audit_checkpoint", **cp.model_dump(exclude={"event"}))  # a gateway log is a checkpoint file too (read_checkpoints)
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(cp.model_dump_json() + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                if not self._unwritable:  # once: the log line above still carries every checkpoint
                    log.error("audit_checkpoint_unwritable", path=str(self.path), error=exc.strerror)
                self._unwritable = True
        self._written = self.mine

    TASK = "audit-checkpoints"

    def start(self, supervisor: Supervisor | None = None) -> None:
        """The periodic writer: supervised (restarted, a readiness check) in a gateway; a plain task otherwise."""
        if supervisor is not None:
            self._supervisor = supervisor
            supervisor.start(self.TASK, self._run)
        elif self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.TASK)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.write()

    async def close(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.stop(self.TASK)
            self._supervisor = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.write()


# ---------------------------------------------------------------- verification (pure)


class VerifyResult(BaseModel):
    ok: bool
    count: int
    head: str
    unreadable: int = 0  # stored entries that are not audit records
    checkpoints: int = 0  # signed checkpoints of this chain that were checked
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # what could not be checked (not a failure)


def verify_records(lines: Sequence[bytes | str], head: str | None, key: bytes, checkpoints: Iterable[Checkpoint] = (), *, log_name: str | None = None) -> VerifyResult:
    """Pure: check a stored chain (JSON lines), its head (``seq hash``; None = not kept) and the
    checkpoints of ``log_name`` (others are ignored) against it."""
    problems: list[str] = []
    wanted: dict[int, list[Checkpoint]] = {}
    n_cp = 0
    for cp in checkpoints:
        if log_name is not None and cp.log != log_name:
            continue
        if not cp.valid(key):
            problems.append(f"checkpoint seq {cp.seq} ({cp.at}): bad signature (not written with this key)")
            continue
        n_cp += 1
        wanted.setdefault(cp.seq, []).append(cp)
    prev, last_seq, unreadable = GENESIS, 0, 0
    for i, line in enumerate(lines, 1):
        rec = _parse(line)
        if rec is None:
            unreadable += 1
            problems.append(f"line {i}: not an audit record")
            continue
        if rec.seq != last_seq + 1:
            problems.append(f"line {i}: seq {rec.seq} follows {last_seq} (record removed or reordered)")
        if rec.prevHash != prev:
            problems.append(f"line {i} (seq {rec.seq}): prevHash does not match the previous record")
        if not hmac.compare_digest(rec.compute_hash(key), rec.hash):
            problems.append(f"line {i} (seq {rec.seq}): hash mismatch (record edited, or not chained with this key)")
        for cp in wanted.pop(rec.seq, []):
            if cp.hash != rec.hash:
                problems.append(f"seq {rec.seq}: differs from the checkpoint of {cp.at} by {cp.instance or '?'} (record rewritten or chain replaced)")
        prev, last_seq = rec.hash, rec.seq
    for seq, cps in sorted(wanted.items()):
        cp = cps[0]
        problems.append(f"checkpoint of {cp.at} by {cp.instance or '?'} has seq {seq}, the chain ends at {last_seq} (records removed at the end, or the log deleted)")
    tip = f"{last_seq} {prev}"
    if head is not None and head != tip and head != "":
        problems.append(f"head is {head!r} but the chain ends at {tip!r} (records removed at the end)")
    return VerifyResult(ok=not problems, count=len(lines), head=tip, unreadable=unreadable, checkpoints=n_cp, problems=problems)


# ---------------------------------------------------------------- queries


class AuditPage(BaseModel):
    """One page of ``query``: records in time order, the cursor of the next page, and how many
    index entries led to nothing readable (bad JSON, a MAC that does not match, another hospital)."""

    records: list[AuditRecord] = Field(default_factory=list)
    next: str | None = None
    unreadable: int = 0
    statusCode: int = 0


@dataclass(frozen=True)
class Window:
    """A page of an index, as Redis ``ZRANGE ... BYSCORE [REV] LIMIT`` takes it: scores from ``lo``
    to ``hi`` (None: open), each bound inclusive or not; ``skip`` entries left out at the start."""

    lo: int | None
    lo_incl: bool
    hi: int | None
    hi_incl: bool
    skip: int
    count: int
    rev: bool

    @staticmethod
    def of(since: int | None, until: int | None, cursor: str | None, limit: int, rev: bool) -> Window:
        """``since`` inclusive, ``until`` exclusive; ``cursor`` (``score:skip``, from ``AuditPage.next``)
        moves the start (or, reversed, the end) to the last page's last score, inclusive."""
        if cursor is None:
            return Window(since, True, until, False, 0, limit, rev)
        score, skip = parse_cursor(cursor)
        if rev:
            return Window(since, True, score, True, skip, limit, rev)
        return Window(score, True, until, False, skip, limit, rev)

    def redis_args(self) -> list[str]:
        lo = "-inf" if self.lo is None else f"{'' if self.lo_incl else '('}{self.lo}"
        hi = "+inf" if self.hi is None else f"{'' if self.hi_incl else '('}{self.hi}"
        return [lo, hi, str(self.skip), str(self.count), "1" if self.rev else "0"]

    def next_cursor(self, scores: list[int]) -> str | None:
        """The cursor after a page that returned entries with these scores (None: it was the last)."""
        if len(scores) < self.count or not scores:
            return None
        last = scores[-1]
        same = len(scores) - next((i for i in range(len(scores) - 1, -1, -1) if scores[i] != last), -1) - 1
        at_bound = (self.hi if self.rev else self.lo) == last and (self.hi_incl if self.rev else self.lo_incl)
        return f"{last}:{same + (self.skip if at_bound and same == len(scores) else 0)}"


def parse_cursor(cursor: str) -> tuple[int, int]:
    s, sep, k = cursor.partition(":")
    if not sep or not s.lstrip("-").isdigit() or not k.isdigit() or len(s) > 16 or len(k) > 7:
        raise ValueError("not a cursor from this audit")
    return int(s), int(k)


class AuditLog(abc.ABC):
    name: str = "audit"  # the chain's name in checkpoints
    key: bytes
    checkpoints: Checkpoints | None = None
    # Called with each record once its append committed, in chain order (the syslog stream,
    # ``nhigw.gateway.auditsyslog``); it must not block or raise: it runs on the request path.
    on_append: Callable[[AuditRecord], None] | None = None
    reads = 0  # records fetched by ``query`` (tests: a query's cost is its answer)

    @abc.abstractmethod
    async def append(self, rec: AuditRecord) -> AuditRecord:
        """Chain and store; returns the stored record (with seq, prevHash, hash)."""

    @abc.abstractmethod
    async def lines(self) -> list[bytes]: ...

    @abc.abstractmethod
    async def head(self) -> str | None: ...

    @abc.abstractmethod
    async def _page(self, hospital: str | None, w: Window) -> list[tuple[int, bytes]]:
        """(score, stored record) of the index entries in ``w``, in the window's order."""

    def keep_checkpoints(self, path: Path | None, instance: str, every_s: float = 5.0) -> None:
        self.checkpoints = Checkpoints(self.key, self.name, path, instance, every_s)

    def _wrote(self, head: str | None) -> None:
        if self.checkpoints is not None:
            self.checkpoints.wrote(head)

    def _appended(self, *recs: AuditRecord | None) -> None:
        if self.on_append is None:
            return
        for rec in recs:
            if rec is not None:
                try:
                    self.on_append(rec)
                except Exception:  # noqa: BLE001 -- an export's bug must never fail a request whose record is stored
                    log.exception("audit_on_append_failed", seq=rec.seq)

    async def start(self, supervisor: Supervisor | None = None) -> None:
        if self.checkpoints is not None:
            self.checkpoints.start(supervisor)

    async def close(self) -> None:
        if self.checkpoints is not None:
            await self.checkpoints.close()

    async def verify(self, checkpoint_files: Iterable[Path] = ()) -> VerifyResult:
        """The chain, its head, and the checkpoints in ``checkpoint_files`` and this process's own file."""
        files = list(checkpoint_files)
        own = self.checkpoints.path if self.checkpoints is not None else None
        if own is not None and own.exists() and own not in files:
            files.append(own)
        cps, problems = read_checkpoints(files)
        # The whole log is checked (ops, not the hot path): in a thread, so the event loop keeps serving meanwhile.
        res = await asyncio.to_thread(verify_records, await self.lines(), await self.head(), self.key, cps, log_name=self.name)
        if problems:
            res.problems[:0] = problems
            res.ok = False
        return res

    async def records(self) -> list[AuditRecord]:
        """Every readable record in chain order (reads the whole log: tools and tests; HTTP uses ``query``)."""
        return [r for r in map(_parse, await self.lines()) if r is not None]

    async def query(self, *, since: int | None = None, until: int | None = None, hospital: str | None = None, limit: int = PAGE_MAX, cursor: str | None = None, newest_first: bool = False) -> AuditPage:
        """One page of the records of ``hospital`` (None: all) recorded in [since, until) (ms), oldest
        first (or newest first); reads the index entries of the page and their records, nothing else."""
        w = Window.of(since, until, cursor, max(1, min(limit, PAGE_MAX)), newest_first)
        entries = await self._page(hospital, w)
        self.reads += len(entries)
        page = AuditPage(next=w.next_cursor([s for s, _ in entries]))
        for _score, raw in entries:
            rec = _parse(raw)
            # Each record is checked on its own: its MAC (an edit in place), and that it is what the index says
            # (an index entry moved to another hospital's set must not show that hospital's records here).
            if rec is None or not hmac.compare_digest(rec.compute_hash(self.key), rec.hash) or (hospital is not None and rec.hospitalId != hospital):
                page.unreadable += 1
                continue
            try:
                at = rec.at_ms()
            except ValueError:
                page.unreadable += 1
                continue
            if (since is not None and at < since) or (until is not None and at >= until):
                page.unreadable += 1
                continue
            page.records.append(rec)
        if page.unreadable:
            log.warning("audit_unreadable", count=page.unreadable, hospital=hospital)
        return page

    async def pages(self, **kw: Any) -> AsyncGenerator[AuditPage]:
        """Every page of ``query(**kw)``."""
        cursor = None
        while True:
            page = await self.query(cursor=cursor, **kw)
            yield page
            if page.next is None:
                return
            cursor = page.next


def _chain(rec: AuditRecord, head: str | None, key: bytes) -> AuditRecord:
    seq, prev = (0, GENESIS)
    if head:
        s, _, h = head.partition(" ")
        seq, prev = int(s), h
    rec.seq, rec.prevHash = seq + 1, prev  # the caller's fresh record, chained in place (a retry re-chains it)
    rec.hash = rec.compute_hash(key)
    return rec


class _LocalIndex:
    """The time indexes of a store kept by one process: per hospital (and None: all), a sorted
    list of (score, position); positions are the records' places in the store."""

    def __init__(self) -> None:
        self._idx: dict[str | None, list[tuple[int, int]]] = {}

    def add(self, rec: AuditRecord, pos: int) -> None:
        try:
            score = rec.at_ms()
        except ValueError:
            return
        for h in {None, rec.hospitalId}:
            bisect.insort(self._idx.setdefault(h, []), (score, pos))

    def page(self, hospital: str | None, w: Window) -> list[tuple[int, int]]:
        e = self._idx.get(hospital, [])
        lo = 0 if w.lo is None else bisect.bisect_left(e, (w.lo, -1) if w.lo_incl else (w.lo + 1, -1))
        hi = len(e) if w.hi is None else bisect.bisect_left(e, (w.hi + 1, -1) if w.hi_incl else (w.hi, -1))
        if w.rev:
            start = hi - w.skip
            return [e[i] for i in range(start - 1, max(lo, start - w.count) - 1, -1)] if start > lo else []
        return e[lo + w.skip:min(hi, lo + w.skip + w.count)]


class FileAudit(AuditLog):
    def __init__(self, path: Path, key: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.name = self.path.name
        self.key = key if key is not None else audit_key(None, self.path.with_name("audit.key"))
        self._head_path = self.path.with_suffix(".head")
        self._lock = asyncio.Lock()
        # The index, built once when the file is opened: where each record starts and its length.
        self._where: list[tuple[int, int]] = []
        self._index = _LocalIndex()
        if self.path.exists():
            with open(self.path, "rb") as f:
                at = 0
                for line in f:
                    if line.strip():
                        rec = _parse(line)
                        if rec is not None:
                            self._index.add(rec, len(self._where))
                        self._where.append((at, len(line)))
                    at += len(line)

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            rec = _chain(rec, await self.head(), self.key)
            self._write(rec)
            self._wrote(f"{rec.seq} {rec.hash}")
            self._appended(rec)
            return rec

    def _write(self, rec: AuditRecord) -> None:
        line = (rec.model_dump_json() + "\n").encode()
        with open(self.path, "ab") as f:
            start = f.tell()
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._head_path.write_text(f"{rec.seq} {rec.hash}")
        self._index.add(rec, len(self._where))
        self._where.append((start, len(line)))

    async def _page(self, hospital: str | None, w: Window) -> list[tuple[int, bytes]]:
        out = []
        with open(self.path, "rb") as f:  # noqa: ASYNC230 - one page of local reads (nhigw up's file backend; its appends are synchronous too)
            for score, pos in self._index.page(hospital, w):
                off, n = self._where[pos]
                f.seek(off)
                out.append((score, f.read(n)))
        return out

    async def lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        return [ln for ln in self.path.read_bytes().splitlines() if ln.strip()]

    async def head(self) -> str | None:
        return self._head_path.read_text().strip() if self._head_path.exists() else None


class RedisAudit(AuditLog):
    # Compare-and-append on the server: the record is chained in Python onto the head this
    # replica last saw; the script appends it only if that is still the head, else returns the
    # current head and the record is chained again. One round trip when no other replica
    # appended in between (WATCH + GET + MULTI/EXEC took three). The record goes into the time
    # index of all records and of its hospital (member: its position in the list).
    # KEYS: log, head, index of all, index of the record's hospital (= index of all: none).
    # ARGV: head, record, new head, score.
    _CAS = """
    local h = redis.call('GET', KEYS[2]) or ''
    if h ~= ARGV[1] then return {0, h} end
    local at = string.format('%012d', redis.call('RPUSH', KEYS[1], ARGV[2]) - 1)
    redis.call('ZADD', KEYS[3], ARGV[4], at)
    if KEYS[4] ~= KEYS[3] then redis.call('ZADD', KEYS[4], ARGV[4], at) end
    redis.call('SET', KEYS[2], ARGV[3])
    return {1, ''}
    """

    # Gateway jobs' ends, group-committed (``nhigw.bus.batch``): the audit records of every job
    # that finished while the previous batch was in flight, chained in order onto the head this
    # replica last saw (and indexed as in ``_CAS``), and after each record its job's end, in one
    # script (so one round trip, and atomically after its audit record): the answer stored for
    # the idempotency window, never over one already stored (or the key released: in-flight and
    # attempted markers deleted), ``done`` published to the replicas that wait for it (those that
    # joined the run, and the one that admitted it when that is not this one), XACK + XDEL.
    # With replica waiting, ``done`` is not published here but returned (channel, job number):
    # the caller publishes it once ``WAIT`` confirmed the batch, so no replica answers an HIS with
    # a job's end that a failover could still take back.
    # The worker slots these jobs free (``JobEnd.take``) are handed their next entries in the same step:
    # XREADGROUP of that many new entries for this replica, returned in place of the head (each with
    # ``x``, whether its answer is stored, as the admission script does), instead of a read of their own.
    # KEYS: log, head, stream, index of all, then per job: answer, inflight, attempted, waiters, hospital index.
    # ARGV: head, new head, group, ttl ms, done-channel prefix, this replica, defer done (1/0),
    #       entries to hand over, answer key prefix, then per job:
    #       record ('' = none), store (1/0), sealed answer, entry id, answer key (``done`` is it, a space and the
    #       sealed answer: built here, not sent twice), admitting replica, score,
    #       the attempted marker this delivery placed ('' = none: a marker there is another delivery's).
    _CAS_FINISH = MARK_STORED_LUA + """
    local h = redis.call('GET', KEYS[2]) or ''
    if h ~= ARGV[1] then return {0, h} end
    local n = (#KEYS - 4) / 5
    local out = {1, ''}
    for i = 1, n do
        local k, a = 5 + (i - 1) * 5, 10 + (i - 1) * 8
        if ARGV[a] ~= '' then
            local at = string.format('%012d', redis.call('RPUSH', KEYS[1], ARGV[a]) - 1)
            redis.call('ZADD', KEYS[4], ARGV[a + 6], at)
            if KEYS[k + 4] ~= KEYS[4] then redis.call('ZADD', KEYS[k + 4], ARGV[a + 6], at) end
        end
        if ARGV[a + 1] == '1' then
            redis.call('SET', KEYS[k], ARGV[a + 2], 'PX', ARGV[4], 'NX')  -- never over a stored answer (a replayed job)
        else
            redis.call('DEL', KEYS[k + 1])
            if ARGV[a + 7] ~= '' and redis.call('GET', KEYS[k + 2]) == ARGV[a + 7] then redis.call('DEL', KEYS[k + 2]) end
        end
        local to = redis.call('SMEMBERS', KEYS[k + 3])
        if #to > 0 then redis.call('DEL', KEYS[k + 3]) end
        to[#to + 1] = ARGV[a + 5]
        local sent = {}
        for _, r in ipairs(to) do
            if r ~= '' and r ~= ARGV[6] and not sent[r] then
                if ARGV[7] == '1' then
                    out[#out + 1] = ARGV[5] .. r
                    out[#out + 1] = i
                else
                    redis.call('PUBLISH', ARGV[5] .. r, ARGV[a + 4] .. ' ' .. ARGV[a + 2])
                end
                sent[r] = true
            end
        end
        redis.call('XACK', KEYS[3], ARGV[3], ARGV[a + 3])
        redis.call('XDEL', KEYS[3], ARGV[a + 3])
    end
    redis.call('SET', KEYS[2], ARGV[2])
    if ARGV[8] ~= '0' then
        -- after every write above: an error here (no group: Redis lost its data) hands over nothing
        local ok, res = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[3], ARGV[6], 'COUNT', ARGV[8], 'STREAMS', KEYS[3], '>')
        if ok and res then
            for _, st in ipairs(res) do
                for _, e in ipairs(st[2]) do mark_stored(e[2], ARGV[9]) end
            end
            out[2] = res
        end
    end
    return out
    """

    # One page of an index and the records it points to, in one round trip.
    # KEYS: index, log. ARGV: min, max, skip, count, reversed (1/0) — see ``Window.redis_args``.
    _PAGE = """
    local ids
    if ARGV[5] == '1' then
        ids = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[1], 'BYSCORE', 'REV', 'LIMIT', ARGV[3], ARGV[4], 'WITHSCORES')
    else
        ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', ARGV[3], ARGV[4], 'WITHSCORES')
    end
    local out = {}
    for i = 1, #ids, 2 do
        out[#out + 1] = ids[i + 1]
        out[#out + 1] = redis.call('LINDEX', KEYS[2], tonumber(ids[i])) or ''
    end
    return out
    """

    def __init__(self, client: aioredis.Redis, keys: BusKeys, key: bytes, jobs: JobStream | None = None, wait: ReplicaWait | None = None) -> None:
        self.client, self.keys, self.key = client, keys, key
        self.log_key, self.head_key = keys.audit_log, keys.audit_head
        self.name = self.log_key
        self.jobs = jobs  # the gateway's stream and channels, for ``finish_job`` (None: audit only, e.g. ``nhigw audit``)
        # One append at a time per replica: the compare-and-append then only retries when *another
        # replica* appended in between (optimistic retries among a replica's own workers grew as n²).
        self._lock = asyncio.Lock()
        self._cas = client.register_script(self._CAS)
        self._page_script = client.register_script(self._PAGE)
        self._cas_finish = lean_script(client, self._CAS_FINISH, wait)  # on the hot path: a lean connection of its own (nhigw.bus.resp)
        self._defer_done = wait is not None  # ``done`` only after WAIT confirmed the job's end (see ``_CAS_FINISH``)
        self._finishing: GroupCommit[tuple[AuditRecord | None, JobEnd], Handed | None] = GroupCommit(self._finish_batch)
        self._head: str | None = None  # the head after this replica's last append (a guess; the script checks it)

    async def close(self) -> None:
        await super().close()
        if hasattr(self._cas_finish, "aclose"):
            await self._cas_finish.aclose()

    def _forget_head(self) -> None:
        self._head = None  # a failed append may or may not have moved it: the next one reads it

    def _moved(self, current: Any) -> str | None:
        """The head another append found: chain onto it (and notice if it went back)."""
        head = _text(current) or None
        if self.checkpoints is not None:
            self.checkpoints.check_current(head)
        return head

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            head = self._head
            idx_all = self.keys.audit_index()
            idx = self.keys.audit_index(rec.hospitalId) if rec.hospitalId is not None else idx_all
            with redis_errors("audit append", on_error=self._forget_head):
                while True:
                    chained = _chain(rec, head, self.key)
                    new_head = f"{chained.seq} {chained.hash}"
                    ok, current = await self._cas(keys=[self.log_key, self.head_key, idx_all, idx], args=[head or "", chained.model_dump_json(), new_head, _score(chained)])
                    if int(ok) == 1:
                        self._head = new_head
                        self._wrote(new_head)
                        self._appended(chained)
                        return chained
                    head = self._moved(current)  # another replica appended first: chain onto its record

    async def finish_job(self, rec: AuditRecord | None, end: JobEnd) -> Handed | None:
        """Append ``rec`` (if any), then end a gateway job (see ``_CAS_FINISH``); batched with other jobs' ends.
        Returns the entry handed to the job's slot (``end.take``), if there was one."""
        return await self._finishing.submit((rec, end))

    async def _finish_batch(self, items: list[tuple[AuditRecord | None, JobEnd]]) -> list[Handed | None]:
        jobs = self.jobs
        if jobs is None:
            raise RuntimeError("RedisAudit.finish_job needs the gateway's JobStream")
        idx_all = self.keys.audit_index()
        keys = [self.log_key, self.head_key, jobs.stream, idx_all]
        for rec, e in items:
            keys += [e.answer, e.inflight, e.attempted, e.waiters, self.keys.audit_index(rec.hospitalId) if rec is not None and rec.hospitalId is not None else idx_all]
        takes = sum(1 for _, e in items if e.take)
        async with self._lock:
            head = self._head
            with redis_errors("audit append", on_error=self._forget_head):
                while True:
                    chained: list[AuditRecord | None] = []
                    tip = head
                    tail: list[object] = []
                    for rec, e in items:
                        c = _chain(rec, tip, self.key) if rec is not None else None
                        if c is not None:
                            tip = f"{c.seq} {c.hash}"
                        chained.append(c)
                        tail += [c.model_dump_json() if c is not None else "", "1" if e.store else "0", e.sealed, e.entry_id, e.key, e.origin or "", _score(c) if c is not None else "0", e.marker]
                    args: list[object] = [head or "", tip or "", jobs.group, jobs.ttl_ms, jobs.channel_prefix, jobs.me, "1" if self._defer_done else "0", takes, jobs.answer_prefix, *tail]
                    try:
                        ok, current, *deferred = await self._cas_finish(keys=keys, args=args)
                    except ReplicaTimeout as exc:
                        # Another replica moved the head first: the script wrote nothing, so there was
                        # nothing to confirm; chain onto the new head (the next try's WAIT is the real one).
                        if not (isinstance(exc.reply, list) and int(exc.reply[0]) == 0):
                            raise
                        ok, current, deferred = 0, exc.reply[1], []
                    if int(ok) == 1:
                        self._head = tip
                        self._wrote(tip)
                        self._appended(*chained)
                        break
                    head = self._moved(current)
        if deferred:
            await self._publish_done([(_text(deferred[j]), items[int(deferred[j + 1]) - 1][1].message) for j in range(0, len(deferred), 2)])
        handed = iter([Handed(eid.decode(), dict(zip(flat[::2], flat[1::2], strict=False))) for _stream, entries in (current or []) for eid, flat in entries])
        return [next(handed, None) if e.take else None for _, e in items]  # in order, to the jobs that asked

    async def _publish_done(self, messages: list[tuple[str, bytes]]) -> None:
        """The deferred ``done`` messages, after the replicas confirmed the job's end. The job is over
        whatever happens here: a message lost is made up for by the waiting replica's poll."""
        try:
            async with self.client.pipeline(transaction=False) as p:
                for channel, message in messages:
                    p.publish(channel, message)
                await p.execute()
        except REDIS_ERRORS as exc:
            log.warning("done_not_published", error=str(exc), messages=len(messages))

    async def _page(self, hospital: str | None, w: Window) -> list[tuple[int, bytes]]:
        with redis_errors("audit read"):
            flat = await self._page_script(keys=[self.keys.audit_index(hospital), self.log_key], args=w.redis_args())
        return [(int(float(flat[i])), flat[i + 1] if isinstance(flat[i + 1], bytes) else str(flat[i + 1]).encode()) for i in range(0, len(flat), 2)]

    async def lines(self) -> list[bytes]:
        # redis-py types every reply as bytes | str; this client never decodes (decode_responses off): bytes.
        lines = cast("list[bytes]", await self.client.lrange(self.log_key, 0, -1))
        return lines

    async def head(self) -> str | None:
        h = cast("bytes | None", await self.client.get(self.head_key))
        return h.decode() if h else None


def _score(rec: AuditRecord) -> str:
    try:
        return str(rec.at_ms())
    except ValueError:  # a record the gateway made always has a good time; 0 keeps the append going
        return "0"


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class JobStream:
    """A gateway replica's side of its jobs' ends (``RedisAudit.finish_job``): its work stream and
    consumer group, how long answers are kept, its replicas' ``done`` channels and its own name."""

    stream: str
    group: str
    ttl_ms: int
    channel_prefix: str  # + a replica's name = that replica's done channel
    me: str
    answer_prefix: str = ""  # + an answer key = its stored answer's key (the ``x`` flag of an entry handed over)


@dataclass(frozen=True)
class Handed:
    """A stream entry a job's end handed to the job's worker slot: its id and fields (``job``, ``a``, ``x``)."""

    id: str
    fields: dict[bytes, bytes]


@dataclass
class JobEnd:
    """What ends one gateway job on Redis after its audit record (``RedisAudit.finish_job``)."""

    answer: str  # the answer key: set when ``store``
    inflight: str  # the in-flight and attempted markers: deleted when not ``store``
    attempted: str
    waiters: str  # replicas that joined the run: each gets ``done``
    store: bool
    sealed: bytes
    entry_id: str
    key: str  # the answer key (``Gateway.answer_key``): what ``done`` names
    origin: str | None  # the replica that admitted the job: gets ``done`` unless it is this one
    marker: bytes = b""  # the attempted marker this delivery placed: removed with the key only if still that one
    take: bool = False  # the job's worker slot takes the next new entry for this replica (``Handed``)

    @property
    def message(self) -> bytes:
        """The ``done`` message: the answer key, a space, the sealed answer (``Gateway._on_done``)."""
        return self.key.encode() + b" " + self.sealed


class MemoryAudit(AuditLog):
    """A list in memory (tests)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else audit_key(None)
        self._lines: list[bytes] = []
        self._head: str | None = None
        self._index = _LocalIndex()
        self._lock = asyncio.Lock()

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            rec = _chain(rec, self._head, self.key)
            self._index.add(rec, len(self._lines))
            self._lines.append(rec.model_dump_json().encode())
            self._head = f"{rec.seq} {rec.hash}"
            self._wrote(self._head)
            self._appended(rec)
            return rec

    async def _page(self, hospital: str | None, w: Window) -> list[tuple[int, bytes]]:
        return [(score, self._lines[pos]) for score, pos in self._index.page(hospital, w)]

    async def lines(self) -> list[bytes]:
        return list(self._lines)

    async def head(self) -> str | None:
        return self._head
