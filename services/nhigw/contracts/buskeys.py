"""Every bus channel / key name, built here and nowhere else.

``prefix`` isolates deployments (and tests) sharing one Redis: the default is ``nhigw``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_PLAIN = re.compile(r"[0-9A-Za-z_-]{1,32}")  # a hospital id used as is in a key name; others are hashed


@dataclass(frozen=True)
class BusKeys:
    prefix: str = "nhigw"

    @property
    def presence(self) -> str:
        """Agents publish ``Presence`` here: on start, on each state change, as a heartbeat."""
        return f"{self.prefix}:presence"

    def calls(self, workstation: str) -> str:
        """Gateway -> one agent: ``SignCall`` messages."""
        return f"{self.prefix}:ws:{workstation}:calls"

    def sessions(self, workstation: str) -> str:
        """Gateway -> one agent: ``SessionCall`` messages (device sessions, ``nhigw.agent.sessions``)."""
        return f"{self.prefix}:ws:{workstation}:sessions"

    def replies(self, node_id: str) -> str:
        """Agent -> the gateway replica that asked: ``SignReply`` messages."""
        return f"{self.prefix}:reply:{node_id}"

    # ---------------------------------------------------------------- enrolment and agent keys

    @property
    def enrol(self) -> str:
        """Agents publish ``EnrolRequest`` here (pub/sub)."""
        return f"{self.prefix}:enrol"

    def enrol_reply(self, agent_id: str) -> str:
        """Gateway -> the enrolling agent: ``EnrolReply``."""
        return f"{self.prefix}:enrol:reply:{agent_id}"

    def enrol_token(self, token_id: str) -> str:
        """One-time enrolment token (string: workstation), deleted on use (GETDEL)."""
        return f"{self.prefix}:enrol-token:{token_id}"

    def agent_key(self, workstation: str) -> str:
        """The workstation's agent key, sealed with the gateway key (string)."""
        return f"{self.prefix}:agent-key:{workstation}"

    # ---------------------------------------------------------------- queue, answers, audit

    @property
    def jobs(self) -> str:
        """Redis Stream of ``QueuedJob`` entries; consumer group ``workers``."""
        return f"{self.prefix}:jobs"

    @property
    def jobs_group(self) -> str:
        return "workers"

    @property
    def dead(self) -> str:
        """Dead-letter stream: jobs delivered ``max_deliveries`` times without finishing."""
        return f"{self.prefix}:jobs:dead"

    def answer(self, answer_key: str) -> str:
        """A finished job's ``JobAnswer`` (string with TTL = idempotency window)."""
        return f"{self.prefix}:answer:{answer_key}"

    def inflight(self, answer_key: str) -> str:
        """Set (NX) while a job for this idempotency key is queued; value = request fingerprint."""
        return f"{self.prefix}:inflight:{answer_key}"

    def attempted(self, answer_key: str) -> str:
        """Set (NX) just before a write is sent upstream: a reclaimed write with this set is never re-sent."""
        return f"{self.prefix}:attempted:{answer_key}"

    def trail(self, answer_key: str) -> str:
        """List of ``TrailEntry`` JSON: the deliveries, upstream attempts and operator actions of the
        request under this answer key that did not end in one clean run (TTL = idempotency window)."""
        return f"{self.prefix}:trail:{answer_key}"

    def waiters(self, answer_key: str) -> str:
        """Set of gateway replicas with a request waiting for a run another request queued (TTL = idempotency window)."""
        return f"{self.prefix}:waiters:{answer_key}"

    def done(self, instance: str) -> str:
        """Pub/sub: a gateway replica's own channel; a worker sends it ``answer key + " " + sealed answer``."""
        return f"{self.prefix}:done:{instance}"

    def replica_barrier(self, instance: str) -> str:
        """A replica's scratch key, written before ``WAIT`` so that a stored answer read from the primary
        is known to be on the replicas too (``RedisKV.get_replicated``)."""
        return f"{self.prefix}:replica-barrier:{instance}"

    @property
    def audit_log(self) -> str:
        """Audit records, one JSON per list element, hash-chained."""
        return f"{self.prefix}:audit:log"

    @property
    def audit_head(self) -> str:
        """``seq hash`` of the last audit record (detects removal of the tail)."""
        return f"{self.prefix}:audit:head"

    def audit_index(self, hospital: str | None = None) -> str:
        """Sorted set: the audit records of one hospital (None: of all), score = ``recorded`` in ms
        since the epoch, member = the record's position in ``audit_log`` (12 digits)."""
        if hospital is None:
            return f"{self.prefix}:audit:idx"
        name = hospital if _PLAIN.fullmatch(hospital) else "h-" + hashlib.sha256(hospital.encode()).hexdigest()[:16]
        return f"{self.prefix}:audit:idx:{name}"

    def history(self, minute_ms: int) -> str:
        """Hash: one minute of business requests, ``<route>|n``, ``|err``, ``|us``, ``|b<i>`` (``nhigw.gateway.history``)."""
        return f"{self.prefix}:history:{minute_ms}"

    # ---------------------------------------------------------------- device sessions (gateway KV)

    def device_session(self, session_id: str) -> str:
        """A ``DeviceSessionRecord`` sealed with the gateway key (string, TTL = idle timeout)."""
        return f"{self.prefix}:dsess:{session_id}"

    def device_token(self, token_hash: str) -> str:
        """sha256 of a session token -> its session id (string, TTL = idle timeout)."""
        return f"{self.prefix}:dsess-token:{token_hash}"

    def device_index(self, scope: str) -> str:
        """Sorted set of live session ids (score = expiry) for a bound: ``h:<hospital>``, ``d:<hospital>:<device>``,
        or ``all`` (every live session: the count in /metrics)."""
        return f"{self.prefix}:dsess-index:{scope}"
