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

Stores: ``RedisAudit`` (a list plus a head key, appended under WATCH/MULTI so replicas
share one chain) and ``FileAudit`` (JSON lines, for the single-process deployment).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from nhigw.bus.base import BusError
from nhigw.common.logging import mask_id

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


def outcome_of(http_status: int) -> int:
    return 0 if http_status < 400 else 4 if http_status < 500 else 8


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
    rec = rec.model_copy(update={"seq": seq + 1, "prevHash": prev})
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

    # The same, then a gateway job's end in the same script (so in the same round trip, and
    # atomically after its audit record): the answer stored for the idempotency window (or the
    # key released: in-flight and attempted markers deleted), ``done`` published, XACK + XDEL.
    # KEYS: log, head, answer, inflight, attempted, stream.
    # ARGV: head, record, new head, store (1/0), sealed answer, ttl ms, channel, message, group, entry id.
    _CAS_FINISH = """
    local h = redis.call('GET', KEYS[2]) or ''
    if h ~= ARGV[1] then return {0, h} end
    redis.call('RPUSH', KEYS[1], ARGV[2])
    redis.call('SET', KEYS[2], ARGV[3])
    if ARGV[4] == '1' then
        redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
    else
        redis.call('DEL', KEYS[4], KEYS[5])
    end
    redis.call('PUBLISH', ARGV[7], ARGV[8])
    redis.call('XACK', KEYS[6], ARGV[9], ARGV[10])
    redis.call('XDEL', KEYS[6], ARGV[10])
    return {1, ''}
    """

    def __init__(self, client: aioredis.Redis, log_key: str, head_key: str) -> None:
        self.client, self.log_key, self.head_key = client, log_key, head_key
        # One append at a time per replica: the compare-and-append then only retries when *another
        # replica* appended in between (optimistic retries among a replica's own workers grew as n²).
        self._lock = asyncio.Lock()
        self._cas = client.register_script(self._CAS)
        self._cas_finish = client.register_script(self._CAS_FINISH)
        self._head: str | None = None  # the head after this replica's last append (a guess; the script checks it)

    async def append(self, rec: AuditRecord) -> AuditRecord:
        async with self._lock:
            return await self._append(rec)

    async def append_finishing_job(self, rec: AuditRecord, keys: list[str], args: list[object]) -> AuditRecord:
        """Append ``rec``, then end a gateway job in the same script (see ``_CAS_FINISH``)."""
        async with self._lock:
            return await self._append(rec, self._cas_finish, keys, args)

    async def _append(self, rec: AuditRecord, script: Any = None, keys: list[str] | None = None, args: list[object] | None = None) -> AuditRecord:
        head = self._head
        script = script or self._cas
        try:
            while True:
                chained = _chain(rec, head)
                new_head = f"{chained.seq} {chained.hash}"
                ok, current = await script(keys=[self.log_key, self.head_key, *(keys or [])], args=[head or "", chained.model_dump_json(), new_head, *(args or [])])
                if int(ok) == 1:
                    self._head = new_head
                    return chained
                head = (current.decode() if isinstance(current, bytes) else str(current)) or None  # another replica appended first: chain onto its record
        except (RedisError, OSError) as exc:
            self._head = None
            raise BusError(f"audit append failed: {exc}") from exc

    async def lines(self) -> list[bytes]:
        return list(await self.client.lrange(self.log_key, 0, -1))

    async def head(self) -> str | None:
        h = await self.client.get(self.head_key)
        return h.decode() if h else None


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
