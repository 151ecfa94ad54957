"""The work queue of business requests: a Redis Stream with a consumer group, or its in-process twin.

Semantics (both implementations, one contract test suite ``tests/test_gateway_queue.py``):
- ``add`` appends a ``QueuedJob``; ``admit`` adds it once per idempotency key and may
  deliver it (or an older entry) to the admitting consumer at once; ``read`` delivers new entries to one consumer
  (delivery count 1); an entry stays *pending* on that consumer until ``ack``.
- ``touch`` resets the idle time of entries a live consumer is still working on
  (XCLAIM ... JUSTID, which does not count a delivery), so only a dead or stuck
  consumer's entries go idle.
- ``claim_stale`` takes entries idle for ``min_idle_s`` (XAUTOCLAIM), counting a
  delivery each time; an entry delivered more than ``max_deliveries`` times is moved
  to the dead-letter stream instead (XADD dead + XACK + XDEL).
- dead letters: ``dead`` lists them, ``dead_one`` reads one; ``retry`` puts one back as a new
  entry; ``discard`` drops it. A ``DeadHook`` (the gateway's ``DeadLetters``) gives each
  dead-lettered job its final answer *in the same step* (Redis: one MULTI with the move): a
  dead-lettered request is answered (9403 if it may have reached the cloud), never left at
  9408 "still queued"; the entry records whether it may have been sent (``maybeSent``).

In Redis a job (a body with signatures and national IDs) is stored sealed with the gateway
key (AES-GCM, ``Sealer``); an entry that does not open (tampered) is handed out empty and so
ends in the dead-letter stream like any poison entry.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from nhigw.bus.batch import GroupCommit
from nhigw.bus.resp import ReplicaWait, lean_script
from nhigw.bus.seal import Sealer, SealError
from nhigw.contracts.models import QueuedJob
from nhigw.gateway.store import KV, redis_errors


@dataclass
class Delivery:
    id: str
    raw: bytes
    deliveries: int
    known: QueuedJob | None = None  # the job itself, when this process queued it (nothing to open or parse)
    # Whether its answer was already stored when it was read, for the replay check (``Gateway._work_loop``
    # asks for a whole read at once; the admission script for the older entries it delivers); None: not asked.
    answered: bool | None = None
    _parsed: QueuedJob | None = field(default=None, repr=False, compare=False)

    def job(self) -> QueuedJob:
        if self.known is not None:
            return self.known
        if self._parsed is None:
            self._parsed = QueuedJob.model_validate_json(self.raw)
        return self._parsed


@dataclass
class Admission:
    """One business request to queue once per idempotency key (see ``WorkQueue.admit``)."""

    job: QueuedJob
    marker: str  # the in-flight marker of its answer key (SET NX, value = fingerprint)
    waiters: str  # the set of replicas waiting for a run that another request queued
    fingerprint: bytes
    ttl_s: float
    take: bool = False  # the caller holds a free worker slot: deliver an entry to it now
    wait_s: float = 30.0  # how long the caller waits: its place in ``waiters`` is worth no more


@dataclass
class Admitted:
    first: bool  # this request queued the job (False: a run with its key was already queued)
    delivery: Delivery | None = None  # an entry for the caller's slot: usually its own job, or an older one waiting
    entry: str | None = None  # the stream entry of the job it queued (``first``)


@dataclass
class DeadLetter:
    id: str
    raw: bytes
    deliveries: int
    originalId: str
    maybeSent: bool = False  # a write whose earlier delivery may have reached the NHI cloud


@dataclass
class DeadAnswer:
    """A dead-lettered job's final answer: stored under its key (unless one is stored) and announced."""

    key: str  # the answer's KV key
    sealed: bytes
    ttl_s: float
    channel: str | None  # the admitting replica's done channel
    message: bytes
    maybeSent: bool


class DeadHook(Protocol):
    async def answer(self, raw: bytes, entry_id: str, deliveries: int) -> DeadAnswer | None:
        """The final answer for a job about to be dead-lettered (None: unreadable, or already answered)."""

    async def deliver(self, a: DeadAnswer) -> None:
        """Store and announce it (queues with no shared store of their own: ``MemoryQueue``)."""


@dataclass
class Depth:
    length: int
    pending: int
    oldest_pending_age_s: float
    dead: int


MAX_DELIVERIES = 3  # deliveries before an entry goes to the dead-letter stream (``--max-deliveries``)


class WorkQueue(abc.ABC):
    max_deliveries: int = MAX_DELIVERIES
    dead_hook: DeadHook | None = None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abc.abstractmethod
    async def add(self, job: QueuedJob) -> str: ...

    async def admit(self, consumer: str, a: Admission, kv: KV) -> Admitted:
        """Set ``a.marker`` (NX) and add ``a.job`` as one step (first=False if the marker was already
        set); with ``a.take``, also deliver an entry to ``consumer`` in that step.

        One step matters: a replica that dies between the two would leave a marker with no job,
        and every retry of that request would wait for an answer that never comes. Here, for the
        in-process queue, where a crash loses both anyway: two steps, and no delivery (the worker
        loop reads the entry). ``RedisQueue`` does it all in one script, group-committed with the
        other requests admitted meanwhile.
        """
        if not await kv.set(a.marker, a.fingerprint, ttl_s=a.ttl_s, nx=True):
            return Admitted(False)
        return Admitted(True, entry=await self.add(a.job))

    @abc.abstractmethod
    async def read(self, consumer: str, *, count: int = 10, block_s: float = 1.0, known: Mapping[str, QueuedJob] | None = None) -> list[Delivery]:
        """New entries for ``consumer``. ``known``: jobs this process queued, by entry id: those entries are
        delivered with their job (``Delivery.known``: nothing to open, parse or check for a replay: an entry
        id is given once by the server, so the entry is the one this process added)."""

    @abc.abstractmethod
    async def claim_stale(self, consumer: str, *, min_idle_s: float) -> list[Delivery]: ...

    @abc.abstractmethod
    async def touch(self, consumer: str, ids: list[str]) -> None: ...

    @abc.abstractmethod
    async def ack(self, entry_id: str) -> None: ...

    @abc.abstractmethod
    async def dead(self) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def dead_one(self, dead_id: str) -> DeadLetter | None: ...

    @abc.abstractmethod
    async def retry(self, dead_id: str) -> str | None: ...

    @abc.abstractmethod
    async def discard(self, dead_id: str) -> DeadLetter | None: ...

    @abc.abstractmethod
    async def depth(self) -> Depth: ...


def rerun(raw: bytes) -> QueuedJob:
    """A dead letter put back by an operator: the same job under a new ``requestId`` (a new run, which the
    workers' replay check, ``Gateway._replayed``, must not take for the old one published again)."""
    return QueuedJob.model_validate_json(raw).model_copy(update={"requestId": uuid.uuid4().hex})


def _checked(d: Delivery, fields: dict[bytes, bytes]) -> Delivery:
    """An older entry the admission script delivered, with ``answered`` from its ``x`` field when the
    sealed job names the answer key the script asked about (a field outside the seal proves nothing)."""
    x, akey = fields.get(b"x"), fields.get(b"a")
    if x is not None and akey is not None:
        try:
            if d.job().answerKey.encode() == akey:
                d.answered = x == b"1"
        except ValueError:
            pass  # malformed: ``Gateway._run`` drops it
    return d


# Lua, prepended to the scripts that deliver entries to a replica (admission, a job's end): an entry's
# fields ``f`` get ``x``, whether the answer its ``a`` field names is stored (``answer_prefix`` + answer key),
# for the replay check (``_checked``).
MARK_STORED_LUA = """
local function mark_stored(f, answer_prefix)
    for j = 1, #f - 1, 2 do
        if f[j] == 'a' then
            f[#f + 1] = 'x'
            f[#f + 1] = tostring(redis.call('EXISTS', answer_prefix .. f[j + 1]))
            return
        end
    end
end
"""


class RedisQueue(WorkQueue):
    def __init__(self, client: aioredis.Redis, stream: str, group: str, dead_stream: str, *, max_deliveries: int = MAX_DELIVERIES, maxlen: int = 100_000, box: Sealer | None = None, wait: ReplicaWait | None = None, answer_prefix: str = "") -> None:
        self.client, self.stream, self.group, self.dead_stream = client, stream, group, dead_stream
        self.answer_prefix = answer_prefix  # + an answer key = its stored answer's key (``BusKeys.answer``)
        self.max_deliveries, self.maxlen = max_deliveries, maxlen
        self.box = box or Sealer(None)
        self.aad = f"job:{stream}"  # a job is bound to its stream; its answer key and client are inside, sealed
        self._admit_script = lean_script(client, self._ADMIT, wait)  # on the hot path: a lean connection of its own (nhigw.bus.resp)
        self.wait = wait
        self._admitters: dict[str, GroupCommit[Admission, Admitted]] = {}

    def _open(self, sealed: bytes) -> bytes:
        try:
            return self.box.open(sealed, self.aad)
        except SealError:
            return b""

    async def close(self) -> None:
        if hasattr(self._admit_script, "aclose"):
            await self._admit_script.aclose()

    async def start(self) -> None:
        with redis_errors("redis stream operation"):
            try:
                await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):  # every replica creates the group at start
                    raise

    # Admission of a batch of requests (group commit, ``nhigw.bus.batch``), atomic on the server.
    # Per request: the in-flight marker (SET NX) and, if it was free, the job (XADD); if it was
    # taken, this replica joins the waiters of that run (the job's end publishes to them).
    # Then as many entries as the batch holds free worker slots are delivered to this consumer
    # (XREADGROUP, oldest first: normally the jobs just added, so the replica that took the
    # request runs it without another round trip; they are pending on it like any read). The
    # entries of jobs this batch added come back without their fields: the caller has those jobs.
    # An older entry comes back with whether its answer is stored (field ``x``, 1/0, asked of the
    # answer key in its field ``a``), for the workers' replay check (``Gateway._replayed``) without
    # a round trip of its own; the caller trusts it only once the sealed job names that same key.
    # KEYS: stream, then per request: marker, waiters.
    # ARGV: group, consumer, maxlen, waiters ttl ms, answer key prefix, then per request: fingerprint,
    #       ttl ms, sealed job, take (1/0), answer key.
    _ADMIT = MARK_STORED_LUA + """
    local added, take = {}, 0
    local n = (#KEYS - 1) / 2
    for i = 1, n do
        local a = 6 + (i - 1) * 5
        if redis.call('SET', KEYS[2 * i], ARGV[a], 'NX', 'PX', ARGV[a + 1]) then
            added[i] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'job', ARGV[a + 2], 'a', ARGV[a + 4])
            if ARGV[a + 3] == '1' then take = take + 1 end
        else
            redis.call('SADD', KEYS[2 * i + 1], ARGV[2])
            redis.call('PEXPIRE', KEYS[2 * i + 1], ARGV[4])
            added[i] = ''
        end
    end
    local got = false
    if take > 0 then
        local ok, res = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', take, 'STREAMS', KEYS[1], '>')
        if not ok then
            local msg = type(res) == 'table' and res.err or tostring(res)
            if not string.find(msg, 'NOGROUP', 1, true) then return redis.error_reply(msg) end
            -- Redis restarted without its data: the group again, from the stream's start
            redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
            res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', take, 'STREAMS', KEYS[1], '>')
        end
        -- the caller has the jobs it added: their entries come back as ids only (no sealed job read back)
        local mine = {}
        for i = 1, n do
            if added[i] ~= '' then mine[added[i]] = true end
        end
        for _, s in ipairs(res) do
            for _, e in ipairs(s[2]) do
                if mine[e[1]] then
                    e[2] = {}
                else
                    mark_stored(e[2], ARGV[5])
                end
            end
        end
        got = res
    end
    return {added, got}
    """

    async def admit(self, consumer: str, a: Admission, kv: KV) -> Admitted:
        gc = self._admitters.get(consumer)
        if gc is None:
            gc = self._admitters[consumer] = GroupCommit(lambda items: self._admit_batch(consumer, items))
        return await gc.submit(a)

    async def _admit_batch(self, consumer: str, items: list[Admission]) -> list[Admitted]:
        keys: list[str] = [self.stream]
        args: list[object] = [self.group, consumer, self.maxlen, int(max(a.wait_s for a in items) * 1000) + 1000, self.answer_prefix]
        for a in items:
            keys += [a.marker, a.waiters]
            args += [a.fingerprint, int(a.ttl_s * 1000), self.box.seal(a.job.model_dump_json().encode(), self.aad), "1" if a.take else "0", a.job.answerKey]
        with redis_errors("redis stream operation"):
            added, got = await self._admit_script(keys=keys, args=args)
        ids = [x.decode() if x else None for x in added]
        out = [Admitted(first=eid is not None, entry=eid) for eid in ids]
        mine = {eid: i for i, eid in enumerate(ids) if eid}
        holders = [i for i, a in enumerate(items) if a.take and ids[i]]  # slots the script counted
        left: list[Delivery] = []
        for _stream, entries in got or []:
            for eid_b, flat in entries:  # a script's reply: fields as a flat [name, value, ...] list
                eid = eid_b.decode()
                i = mine.get(eid)
                d = Delivery(eid, b"", 1, items[i].job) if i is not None else self.handed(eid, dict(zip(flat[::2], flat[1::2], strict=False)))
                if i is not None and i in holders and out[i].delivery is None:
                    out[i].delivery = d
                else:
                    left.append(d)
        for i in holders:  # older entries delivered first go to the slots whose own job was not
            if out[i].delivery is None and left:  # (COUNT = len(holders): every delivery finds a slot)
                out[i].delivery = left.pop(0)
        return out

    async def add(self, job: QueuedJob) -> str:
        with redis_errors("redis stream operation"):
            sealed = self.box.seal(job.model_dump_json().encode(), self.aad)
            # redis-py types every reply as bytes | str; this client never decodes (decode_responses off): bytes.
            eid = cast("bytes", await self.client.xadd(self.stream, {"job": sealed}, maxlen=self.maxlen, approximate=True))
            return eid.decode()

    async def read(self, consumer: str, *, count: int = 10, block_s: float = 1.0, known: Mapping[str, QueuedJob] | None = None) -> list[Delivery]:
        with redis_errors("redis stream operation"):
            try:
                res = cast("list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None", await self.client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count, block=int(block_s * 1000)))
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.start()  # Redis restarted without persistence: recreate and carry on
                return []
        return [self.handed(eid_b.decode(), fields, known) for _stream, entries in res or [] for eid_b, fields in entries]

    def handed(self, eid: str, fields: dict[bytes, bytes], known: Mapping[str, QueuedJob] | None = None) -> Delivery:
        """A new entry delivered to this replica (a read, or a script that delivered it): its job when
        ``known`` has it (queued by this process), else opened from its sealed ``job`` field, with
        ``answered`` from its ``x`` field when a script set one (``_checked``)."""
        job = known.get(eid) if known else None
        return Delivery(eid, b"", 1, job) if job is not None else _checked(Delivery(eid, self._open(fields.get(b"job", b"")), 1), fields)

    async def claim_stale(self, consumer: str, *, min_idle_s: float) -> list[Delivery]:
        out: list[Delivery] = []
        start = "0-0"
        with redis_errors("redis stream operation"):
            try:
                while True:
                    res = await self.client.xautoclaim(self.stream, self.group, consumer, int(min_idle_s * 1000), start_id=start, count=50)
                    nxt, entries = res[0], res[1]
                    for eid, fields in entries:
                        if fields is None:
                            continue
                        eid_s = eid.decode()
                        info = await self.client.xpending_range(self.stream, self.group, min=eid_s, max=eid_s, count=1)
                        n = int(info[0]["times_delivered"]) if info else self.max_deliveries + 1
                        raw = fields.get(b"job", b"")
                        if n > self.max_deliveries:
                            fa = await self.dead_hook.answer(self._open(raw), eid_s, n - 1) if self.dead_hook else None
                            await self._into_dead_letters(eid_s, raw, n - 1, fa)
                            continue
                        out.append(Delivery(eid_s, self._open(raw), n))
                    nxt_s = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
                    if nxt_s == "0-0":
                        return out
                    start = nxt_s
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.start()  # Redis restarted without persistence: recreate and carry on
                return out

    async def _into_dead_letters(self, eid: str, raw: bytes, deliveries: int, fa: DeadAnswer | None) -> None:
        """Into the dead-letter stream, with its final answer stored and announced to the replica that waits.
        With replica waiting the announcement follows a ``WAIT`` on the same connection, as a job's end
        does: a waiting replica never gives its HIS a dead-letter answer that a failover could take back
        (not confirmed: not announced; the waiting replica's poll reads it once the replicas have it)."""
        channel = fa.channel if fa is not None else None
        async with self.client.client() as one:  # one connection: WAIT counts this transaction's writes
            async with one.pipeline(transaction=True) as p:
                p.xadd(self.dead_stream, {"job": raw, "deliveries": str(deliveries), "originalId": eid, "maybeSent": "1" if fa and fa.maybeSent else "0"})
                p.xack(self.stream, self.group, eid)
                p.xdel(self.stream, eid)
                if fa is not None:
                    p.set(fa.key, fa.sealed, px=int(fa.ttl_s * 1000), nx=True)
                    if channel and self.wait is None:
                        p.publish(channel, fa.message)
                await p.execute()
            if fa is not None and channel and self.wait is not None:
                if int(await one.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)) >= self.wait.replicas:
                    await one.publish(channel, fa.message)

    async def touch(self, consumer: str, ids: list[str]) -> None:
        if not ids:
            return
        with redis_errors("redis stream operation"):
            await self.client.xclaim(self.stream, self.group, consumer, 0, cast("list[int | bytes | str | memoryview[int]]", ids), justid=True)

    async def ack(self, entry_id: str) -> None:
        with redis_errors("redis stream operation"):
            async with self.client.pipeline(transaction=True) as p:
                p.xack(self.stream, self.group, entry_id)
                p.xdel(self.stream, entry_id)
                await p.execute()

    async def dead(self) -> list[DeadLetter]:
        with redis_errors("redis stream operation"):
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await self.client.xrange(self.dead_stream, "-", "+"))
        return [self._dead_letter(eid, f) for eid, f in entries]

    def _dead_letter(self, eid: bytes, f: dict[bytes, bytes]) -> DeadLetter:
        return DeadLetter(eid.decode(), self._open(f.get(b"job", b"")), int(f.get(b"deliveries", b"0")), f.get(b"originalId", b"").decode(), f.get(b"maybeSent") == b"1")

    async def dead_one(self, dead_id: str) -> DeadLetter | None:
        with redis_errors("redis stream operation"):
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await self.client.xrange(self.dead_stream, dead_id, dead_id))
        return self._dead_letter(*entries[0]) if entries else None

    async def _take_dead(self, dead_id: str) -> DeadLetter | None:
        with redis_errors("redis stream operation"):
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await self.client.xrange(self.dead_stream, dead_id, dead_id))
            if not entries or not await self.client.xdel(self.dead_stream, dead_id):
                return None  # unknown, or another operator/replica took it first
        return self._dead_letter(*entries[0])

    async def retry(self, dead_id: str) -> str | None:
        d = await self._take_dead(dead_id)
        if d is None:
            return None
        return await self.add(rerun(d.raw))

    async def discard(self, dead_id: str) -> DeadLetter | None:
        return await self._take_dead(dead_id)

    async def depth(self) -> Depth:
        with redis_errors("redis stream operation"):
            try:
                length = await self.client.xlen(self.stream)
                summary = await self.client.xpending(self.stream, self.group)
                pending = int(summary.get("pending", 0))
                age = 0.0
                if pending:
                    first = summary["min"]
                    first_s = first.decode() if isinstance(first, bytes) else str(first)
                    age = max(0.0, time.time() - int(first_s.split("-")[0]) / 1000)
                dead = await self.client.xlen(self.dead_stream)
            except ResponseError:  # no group yet (a Redis restarted without persistence): nothing queued
                return Depth(0, 0, 0.0, 0)
        return Depth(int(length), pending, age, int(dead))


@dataclass
class _Entry:
    raw: bytes
    added_at: float
    deliveries: int = 0
    owner: str | None = None
    last: float = 0.0


class MemoryQueue(WorkQueue):
    """The same semantics in one process (``nhigw up`` on the in-memory bus)."""

    def __init__(self, *, max_deliveries: int = MAX_DELIVERIES) -> None:
        self.max_deliveries = max_deliveries
        self._ids = itertools.count(1)
        self._entries: dict[str, _Entry] = {}
        self._new: list[str] = []
        self._dead: dict[str, DeadLetter] = {}
        self._cond = asyncio.Condition()

    def _id(self) -> str:
        return f"{int(time.time() * 1000)}-{next(self._ids)}"

    async def add(self, job: QueuedJob) -> str:
        eid = self._id()
        self._entries[eid] = _Entry(job.model_dump_json().encode(), time.time())
        self._new.append(eid)
        async with self._cond:
            self._cond.notify_all()
        return eid

    async def read(self, consumer: str, *, count: int = 10, block_s: float = 1.0, known: Mapping[str, QueuedJob] | None = None) -> list[Delivery]:
        if not self._new:
            async with self._cond:
                try:
                    await asyncio.wait_for(self._cond.wait_for(lambda: bool(self._new)), block_s)
                except TimeoutError:
                    return []
        take, self._new = self._new[:count], self._new[count:]
        out = []
        known = known or {}
        for eid in take:
            e = self._entries[eid]
            e.deliveries, e.owner, e.last = 1, consumer, time.monotonic()
            job = known.get(eid)
            out.append(Delivery(eid, b"", 1, job) if job is not None else Delivery(eid, e.raw, 1))
        return out

    async def claim_stale(self, consumer: str, *, min_idle_s: float) -> list[Delivery]:
        out = []
        now = time.monotonic()
        for eid, e in list(self._entries.items()):
            if e.owner is None or now - e.last < min_idle_s:
                continue
            e.deliveries += 1
            if e.deliveries > self.max_deliveries:
                del self._entries[eid]
                did = self._id()
                fa = await self.dead_hook.answer(e.raw, eid, e.deliveries - 1) if self.dead_hook else None
                self._dead[did] = DeadLetter(did, e.raw, e.deliveries - 1, eid, bool(fa and fa.maybeSent))
                if fa is not None and self.dead_hook is not None:
                    await self.dead_hook.deliver(fa)
                continue
            e.owner, e.last = consumer, now
            out.append(Delivery(eid, e.raw, e.deliveries))
        return out

    async def touch(self, consumer: str, ids: list[str]) -> None:
        for eid in ids:
            e = self._entries.get(eid)
            if e is not None:
                e.owner, e.last = consumer, time.monotonic()

    async def ack(self, entry_id: str) -> None:
        self._entries.pop(entry_id, None)

    async def dead(self) -> list[DeadLetter]:
        return list(self._dead.values())

    async def dead_one(self, dead_id: str) -> DeadLetter | None:
        return self._dead.get(dead_id)

    async def retry(self, dead_id: str) -> str | None:
        d = self._dead.pop(dead_id, None)
        return await self.add(rerun(d.raw)) if d else None

    async def discard(self, dead_id: str) -> DeadLetter | None:
        return self._dead.pop(dead_id, None)

    async def depth(self) -> Depth:
        pend = [e for e in self._entries.values() if e.owner is not None]
        age = max((time.time() - e.added_at for e in pend), default=0.0)
        return Depth(len(self._entries), len(pend), age, len(self._dead))
