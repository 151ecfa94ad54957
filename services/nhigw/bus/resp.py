"""A lean Redis connection for the gateway's two hot-path scripts (admission, job end).

Why not redis-py for these two: every redis-py command checks a connection out of its pool
and first probes it for stray data (a zero-timeout read: a task and extra event-loop turns
per command). ``bench/redis_client.py`` measures the admission-sized script on all three side by
side (docs/benchmarks.md section 9); with redis-py 8.1 on the 2-core benchmark machine, client
CPU per call is about 2.3-2.5× this connection's on redis-py's single-connection client and
2.8-2.9× through its pool (no health checks), and 1.6-1.9× the p50 when calls are 4 ms apart
(as at 200 req/s, where it is on every request's critical path twice). The gateway sends these scripts one
batch at a time (``nhigw.bus.batch.GroupCommit``), so one connection per script is enough.
Everything else keeps using redis-py.

What it is: one asyncio connection; RESP2 requests framed and replies parsed by hiredis
(the C packer and parser redis-py uses too); EVALSHA, with SCRIPT LOAD after NOSCRIPT (Redis restarted
or flushed its scripts); AUTH and SELECT from the redis-py client's own settings. After a
connection error (or a call cancelled before its reply) the connection is dropped and the
next call opens a new one; a connection the server closed while it was idle (Redis restarted)
is seen before the call is sent and replaced at once, so the first request after a Redis
restart does not fail on it (a failure while a call is on the wire is never retried here: the
script may have run). Errors are redis-py's types (``ResponseError``,
``ConnectionError``, both ``RedisError``), so callers handle both clients alike.

Plain TCP or a Unix socket with password or ACL-user authentication; for anything else
(TLS ``rediss://``, a credential provider, Sentinel: ``nhigw.bus.redisurl``) ``lean_script``
returns redis-py's own script.

Replica waiting (``ReplicaWait``): with it, every call is followed by ``WAIT replicas timeout`` on
the same connection (the script's writes are then on that many replicas, or the call fails with
``ReplicaTimeout``, a ``RedisError``: the caller answers as when Redis did not confirm).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError


@dataclass(frozen=True)
class ReplicaWait:
    """After a write: ``WAIT replicas timeout_ms``; fewer replicas confirming -> ``ReplicaTimeout``."""

    replicas: int
    timeout_ms: int = 1000

    def check(self, acked: Any, reply: Any = None) -> None:
        if int(acked) < self.replicas:
            raise ReplicaTimeout(f"the write reached {int(acked)} of {self.replicas} replica(s) in {self.timeout_ms} ms", reply)


class ReplicaTimeout(RedisError):
    """The replicas did not confirm a write in time (it is on the primary, maybe not after a failover).

    ``reply`` is the command's own reply: a script that says it wrote nothing (a compare-and-set
    that lost) had nothing for the replicas to confirm, and its caller may go on as without WAIT."""

    def __init__(self, message: str, reply: Any = None) -> None:
        super().__init__(message)
        self.reply = reply


def pack(args: tuple[Any, ...]) -> bytes:
    """One RESP2 command: an array of bulk strings (str as UTF-8, numbers as decimal text), framed by
    hiredis's C ``pack_command`` (what redis-py uses too): a batch of 64 jobs' ends in 54 µs instead of
    124 µs for the same framing in Python."""
    return hiredis.pack_command(args)


class LeanConnection:
    def __init__(self, *, host: str = "localhost", port: int = 6379, path: str | None = None, username: str | None = None, password: str | None = None, db: int = 0, connect_timeout_s: float | None = 2.0) -> None:
        self.host, self.port, self.path = host, port, path
        self.username, self.password, self.db = username, password, db
        self.connect_timeout_s = connect_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader(replyError=ResponseError)
        self._lock = asyncio.Lock()

    async def _open(self) -> None:
        opening = asyncio.open_unix_connection(self.path) if self.path else asyncio.open_connection(self.host, self.port)
        self._reader, self._writer = await asyncio.wait_for(opening, self.connect_timeout_s)
        self._parser = hiredis.Reader(replyError=ResponseError)
        if self.password:
            await self._roundtrip(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            await self._roundtrip(("SELECT", self.db))

    async def _roundtrip(self, args: tuple[Any, ...]) -> Any:
        assert self._reader is not None and self._writer is not None
        self._writer.write(pack(args))
        while True:
            reply = self._parser.gets()
            if reply is not False:
                if isinstance(reply, ResponseError):
                    raise reply
                return reply
            data = await self._reader.read(65536)
            if not data:
                raise RedisConnectionError("connection closed by the Redis server")
            self._parser.feed(data)

    def _stale(self) -> bool:
        """Closed by the server while idle (Redis restarted): known before anything is sent."""
        return self._writer is not None and (self._writer.is_closing() or (self._reader is not None and self._reader.at_eof()))

    async def execute(self, *args: Any, wait: ReplicaWait | None = None) -> Any:
        """One command; with ``wait``, then ``WAIT`` on the same connection (under the same lock)."""
        async with self._lock:
            if self._stale():
                self.close()  # reopen rather than fail the call: nothing was sent on it, so a restarted Redis costs no error
            try:
                if self._writer is None:
                    await self._open()
                reply = await self._roundtrip(args)
                if wait is not None:
                    wait.check(await self._roundtrip(("WAIT", wait.replicas, wait.timeout_ms)), reply)
                return reply
            except ResponseError:
                raise  # a whole reply (the script's error): the connection is in step
            except (OSError, TimeoutError, RedisConnectionError) as exc:
                self.close()
                raise RedisConnectionError(f"Redis connection failed: {exc}") from exc
            except BaseException:
                self.close()  # cancelled before the reply: it would answer the next call
                raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class LeanScript:
    """``await script(keys=[...], args=[...])``, as redis-py's ``AsyncScript``."""

    def __init__(self, conn: LeanConnection, source: str, wait: ReplicaWait | None = None) -> None:
        self.conn, self.source, self.wait = conn, source, wait
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self.conn.execute("EVALSHA", self.sha, len(keys), *keys, *args, wait=self.wait)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.conn.execute("SCRIPT", "LOAD", self.source)
        return await self.conn.execute("EVALSHA", self.sha, len(keys), *keys, *args, wait=self.wait)

    async def aclose(self) -> None:
        self.conn.close()


class WaitedScript:
    """redis-py's connection (TLS, Sentinel, ...) with replica waiting: EVALSHA and WAIT in one pipeline
    (one connection, so ``WAIT`` counts the script's writes)."""

    def __init__(self, client: aioredis.Redis, source: str, wait: ReplicaWait) -> None:
        self.client, self.source, self.wait = client, source, wait
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        for _ in range(2):
            async with self.client.pipeline(transaction=False) as p:
                p.evalsha(self.sha, len(keys), *keys, *args)
                p.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
                reply, acked = await p.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError) or (isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")):
                await self.client.script_load(self.source)  # nothing ran: load it and send again
                continue
            if isinstance(reply, Exception):
                raise reply
            if isinstance(acked, Exception):
                raise acked
            self.wait.check(acked, reply)
            return reply
        raise NoScriptError("the script could not be loaded")


def lean_script(client: aioredis.Redis, source: str, wait: ReplicaWait | None = None) -> Any:
    """``source`` as a ``LeanScript`` on a connection of its own with ``client``'s settings,
    or redis-py's own where this module does not cover them (TLS, Sentinel, ...); with ``wait``,
    every call waits for that many replicas."""
    pool = client.connection_pool
    kw = pool.connection_kwargs
    if kw.get("credential_provider") is not None or pool.connection_class not in (Connection, UnixDomainSocketConnection):
        return WaitedScript(client, source, wait) if wait is not None else client.register_script(source)
    conn = LeanConnection(
        host=kw.get("host", "localhost"),
        port=int(kw.get("port", 6379)),
        path=kw.get("path") if pool.connection_class is UnixDomainSocketConnection else None,
        username=kw.get("username"),
        password=kw.get("password"),
        db=int(kw.get("db", 0) or 0),
        connect_timeout_s=kw.get("socket_connect_timeout") or 2.0,
    )
    return LeanScript(conn, source, wait)
