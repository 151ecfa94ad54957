"""Hash-chained, append-only audit trail of business requests (IHE ATNA / FHIR AuditEvent core).

One ``AuditRecord`` per business request the gateway ran, written by the worker after
the upstream call and before the answer is stored, published or acknowledged (XACK):
an HIS never holds an answer that has no audit record. Each record carries its upstream
attempts (number, outcome, latency) inside, so "one record per attempt" is kept without
a second chain write per attempt.

Chain: ``hash = sha256(prevHash || canonical JSON of the record without hash)``,
``seq`` counts from 1, and the store keeps a head (``seq hash`` of the last record).
``verify`` recomputes the chain: an edited record breaks its own hash, a removed or
reordered one breaks ``seq`` and ``prevHash``, a removed tail disagrees with the head.
(Someone who can rewrite the whole log *and* the head can forge a consistent chain;
export the head regularly — ``nhigw audit verify`` prints it — to anchor it elsewhere.)

Personal data: the patient appears only as a masked national ID (``Z29*****29``), the HPC
as a masked card number; no signature, no PIN, no body is stored.

Stores: ``RedisAudit`` (a list plus a head key, appended by a compare-and-append script so
replicas share one chain) and ``FileAudit`` (JSON lines, for the single-process deployment).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from nhigw.bus.base import BusError
from nhigw.bus.batch import GroupCommit
from nhigw.bus.resp import lean_script
from nhigw.common.logging import mask_id
from nhigw.contracts.codes import Code

GENESIS = "0" * 64


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
    instance: str
    site: str
    requestId: str
    idempotencyKey: str
    attempts: list[AuditAttempt] = Field(default_factory=list)
    latency_ms: float = 0.0
    prevHash: str = GENESIS
    hash: str = ""

    def compute_hash(self) -> str:
        # deviceSession is left out while unset, so records written before it existed keep their hashes.
        body = self.model_dump(mode="json", exclude={"hash"} if self.deviceSession is not None else {"hash", "deviceSession"})
        return hashlib.sha256((self.prevHash + json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))).encode()).hexdigest()


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


class VerifyResult(BaseModel):
    ok: bool
    count: int
    head: str
    problems: list[str] = Field(default_factory=list)


def verify_records(lines: list[bytes | str], head: str | None) -> VerifyResult:
    """Pure: check a stored chain (JSON lines) and its head (``seq hash``; None = not kept)."""
    problems: list[str] = []
    prev, last_seq = GENESIS, 0
    for i, line in enumerate(lines, 1):
        try:
            rec = AuditRecord.model_validate_json(line)
        except ValueError:
            problems.append(f"line {i}: not an audit record")
            continue
        if rec.seq != last_seq + 1:
            problems.append(f"line {i}: seq {rec.seq} follows {last_seq} (record removed or reordered)")
        if rec.prevHash != prev:
            problems.append(f"line {i} (seq {rec.seq}): prevHash does not match the previous record")
        if rec.compute_hash() != rec.hash:
            problems.append(f"line {i} (seq {rec.seq}): hash mismatch (record edited)")
        prev, last_seq = rec.hash, rec.seq
    tip = f"{last_seq} {prev}"
    if head is not None and head != tip and head != "":
        problems.append(f"head is {head!r} but the chain ends at {tip!r} (records removed at the end)")
    return VerifyResult(ok=not problems, count=len(lines), head=tip, problems=problems)


class AuditLog(abc.ABC):
    @abc.abstractmethod
    async def append(self, rec: AuditRecord) -> AuditRecord:
        """Chain and store; returns the stored record (with seq, prevHash, hash)."""

    @abc.abstractmethod
    async def lines(self) -> list[bytes]: ...

    @abc.abstractmethod
    async def head(self) -> str | None: ...

    async def close(self) -> None:
        return None

    async def verify(self) -> VerifyResult:
        return verify_records(await self.lines(), await self.head())

    async def records(self, *, since: str | None = None, until: str | None = None, hospital: str | None = None) -> list[AuditRecord]:
        out = []
        for line in await self.lines():
            r = AuditRecord.model_validate_json(line)
            if (since and r.recorded < since) or (until and r.recorded >= until) or (hospital and r.hospitalId != hospital):
                continue
            out.append(r)
        return out


def _chain(rec: AuditRecord, head: str | None) -> AuditRecord:
    seq, prev = (0, GENESIS)
    if head:
        s, _, h = head.partition(" ")
        seq, prev = int(s), h
    rec.seq, rec.prevHash = seq + 1, prev  # the caller's fresh record, chained in place (a retry re-chains it)
    rec.hash = rec.compute_hash()
    return rec


class FileAudit(AuditLog):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._head_path = self.path.with_suffix(".head")
        self._lock = asyncio.Lock()

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            rec = _chain(rec, await self.head())
            self._write(rec)
            return rec

    def _write(self, rec: AuditRecord) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(rec.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._head_path.write_text(f"{rec.seq} {rec.hash}")

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
    # appended in between (WATCH + GET + MULTI/EXEC took three).
    _CAS = """
    local h = redis.call('GET', KEYS[2]) or ''
    if h ~= ARGV[1] then return {0, h} end
    redis.call('RPUSH', KEYS[1], ARGV[2])
    redis.call('SET', KEYS[2], ARGV[3])
    return {1, ''}
    """

    # Gateway jobs' ends, group-committed (``nhigw.bus.batch``): the audit records of every job
    # that finished while the previous batch was in flight, chained in order onto the head this
    # replica last saw, and after each record its job's end, in one script (so one round trip,
    # and atomically after its audit record): the answer stored for the idempotency window, never over one already
    # stored (or
    # the key released: in-flight and attempted markers deleted), ``done`` published to the
    # replicas that wait for it (those that joined the run, and the one that admitted it when
    # that is not this one), XACK + XDEL.
    # KEYS: log, head, stream, then per job: answer, inflight, attempted, waiters.
    # ARGV: head, new head, group, ttl ms, done-channel prefix, this replica, then per job:
    #       record ('' = none), store (1/0), sealed answer, entry id, done message, admitting replica.
    _CAS_FINISH = """
    local h = redis.call('GET', KEYS[2]) or ''
    if h ~= ARGV[1] then return {0, h} end
    local n = (#KEYS - 3) / 4
    for i = 1, n do
        local k, a = 4 + (i - 1) * 4, 7 + (i - 1) * 6
        if ARGV[a] ~= '' then redis.call('RPUSH', KEYS[1], ARGV[a]) end
        if ARGV[a + 1] == '1' then
            redis.call('SET', KEYS[k], ARGV[a + 2], 'PX', ARGV[4], 'NX')  -- never over a stored answer (a replayed job)
        else
            redis.call('DEL', KEYS[k + 1], KEYS[k + 2])
        end
        local to = redis.call('SMEMBERS', KEYS[k + 3])
        if #to > 0 then redis.call('DEL', KEYS[k + 3]) end
        to[#to + 1] = ARGV[a + 5]
        local sent = {}
        for _, r in ipairs(to) do
            if r ~= '' and r ~= ARGV[6] and not sent[r] then
                redis.call('PUBLISH', ARGV[5] .. r, ARGV[a + 4])
                sent[r] = true
            end
        end
        redis.call('XACK', KEYS[3], ARGV[3], ARGV[a + 3])
        redis.call('XDEL', KEYS[3], ARGV[a + 3])
    end
    redis.call('SET', KEYS[2], ARGV[2])
    return {1, ''}
    """

    def __init__(self, client: aioredis.Redis, log_key: str, head_key: str, jobs: JobStream | None = None) -> None:
        self.client, self.log_key, self.head_key = client, log_key, head_key
        self.jobs = jobs  # the gateway's stream and channels, for ``finish_job`` (None: audit only, e.g. ``nhigw audit``)
        # One append at a time per replica: the compare-and-append then only retries when *another
        # replica* appended in between (optimistic retries among a replica's own workers grew as n²).
        self._lock = asyncio.Lock()
        self._cas = client.register_script(self._CAS)
        self._cas_finish = lean_script(client, self._CAS_FINISH)  # on the hot path: a lean connection of its own (nhigw.bus.resp)
        self._finishing: GroupCommit[tuple[AuditRecord | None, JobEnd], AuditRecord | None] = GroupCommit(self._finish_batch)
        self._head: str | None = None  # the head after this replica's last append (a guess; the script checks it)

    async def close(self) -> None:
        if hasattr(self._cas_finish, "aclose"):
            await self._cas_finish.aclose()

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            head = self._head
            try:
                while True:
                    chained = _chain(rec, head)
                    new_head = f"{chained.seq} {chained.hash}"
                    ok, current = await self._cas(keys=[self.log_key, self.head_key], args=[head or "", chained.model_dump_json(), new_head])
                    if int(ok) == 1:
                        self._head = new_head
                        return chained
                    head = _text(current) or None  # another replica appended first: chain onto its record
            except (RedisError, OSError) as exc:
                self._head = None
                raise BusError(f"audit append failed: {exc}") from exc

    async def finish_job(self, rec: AuditRecord | None, end: JobEnd) -> AuditRecord | None:
        """Append ``rec`` (if any), then end a gateway job (see ``_CAS_FINISH``); batched with other jobs' ends."""
        return await self._finishing.submit((rec, end))

    async def _finish_batch(self, items: list[tuple[AuditRecord | None, JobEnd]]) -> list[AuditRecord | None]:
        jobs = self.jobs
        if jobs is None:
            raise RuntimeError("RedisAudit.finish_job needs the gateway's JobStream")
        keys = [self.log_key, self.head_key, jobs.stream]
        for _rec, e in items:
            keys += [e.answer, e.inflight, e.attempted, e.waiters]
        async with self._lock:
            head = self._head
            try:
                while True:
                    chained: list[AuditRecord | None] = []
                    tip = head
                    tail: list[object] = []
                    for rec, e in items:
                        c = _chain(rec, tip) if rec is not None else None
                        if c is not None:
                            tip = f"{c.seq} {c.hash}"
                        chained.append(c)
                        tail += [c.model_dump_json() if c is not None else "", "1" if e.store else "0", e.sealed, e.entry_id, e.message, e.origin or ""]
                    args: list[object] = [head or "", tip or "", jobs.group, jobs.ttl_ms, jobs.channel_prefix, jobs.me, *tail]
                    ok, current = await self._cas_finish(keys=keys, args=args)
                    if int(ok) == 1:
                        self._head = tip
                        return chained
                    head = _text(current) or None
            except (RedisError, OSError) as exc:
                self._head = None
                raise BusError(f"audit append failed: {exc}") from exc

    async def lines(self) -> list[bytes]:
        return list(await self.client.lrange(self.log_key, 0, -1))

    async def head(self) -> str | None:
        h = await self.client.get(self.head_key)
        return h.decode() if h else None


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
    message: bytes
    origin: str | None  # the replica that admitted the job: gets ``done`` unless it is this one


class MemoryAudit(AuditLog):
    """A list in memory (tests)."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._head: str | None = None
        self._lock = asyncio.Lock()

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            rec = _chain(rec, self._head)
            self._lines.append(rec.model_dump_json().encode())
            self._head = f"{rec.seq} {rec.hash}"
            return rec

    async def lines(self) -> list[bytes]:
        return list(self._lines)

    async def head(self) -> str | None:
        return self._head
