"""The gateway's lean hot-path Redis connection (``nhigw.bus.resp``) against real redis-servers:
scripts, NOSCRIPT, script errors, ACL users and databases, a Redis restart, a call cancelled
before its reply, and the fallback to redis-py where it does not apply."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from nhigw.bus.resp import LeanScript, lean_script, pack
from tests.conftest import start_redis
from tests.helpers import eventually

ECHO = "redis.call('SET', KEYS[1], ARGV[1]); return {ARGV[1], redis.call('GET', KEYS[1]), tonumber(ARGV[2]) + 1}"


def test_pack_frames_bulk_strings() -> None:
    assert pack(("SET", "k", b"\x00\xff", 12, "護")) == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\x00\xff\r\n$2\r\n12\r\n$3\r\n\xe8\xad\xb7\r\n"


async def test_script_noscript_and_a_script_error_keep_the_connection_usable(redis_server: str, bus_prefix: str) -> None:
    r = aioredis.Redis.from_url(redis_server)
    s = lean_script(r, ECHO)
    try:
        assert isinstance(s, LeanScript)
        assert await s(keys=[f"{bus_prefix}:k"], args=[b"\x00bin\xff", 41]) == [b"\x00bin\xff", b"\x00bin\xff", 42]
        await r.script_flush()  # as after a Redis restart: the script cache is empty
        assert await s(keys=[f"{bus_prefix}:k"], args=["again", 1]) == [b"again", b"again", 2]
        bad = LeanScript(s.conn, "return redis.call('INCR', KEYS[1])")
        with pytest.raises(ResponseError):
            await bad(keys=[f"{bus_prefix}:k"], args=[])  # not an integer: the script's error, a whole reply
        assert await s(keys=[f"{bus_prefix}:k"], args=["still in step", 0]) == [b"still in step", b"still in step", 1]
    finally:
        await s.aclose()
        await r.aclose()


async def test_acl_user_password_and_database_come_from_the_redis_py_settings(tmp_path: Path) -> None:
    proc, port = start_redis(tmp_path, password="admin-pw")
    admin = aioredis.Redis(port=port, password="admin-pw")
    try:
        await admin.execute_command("ACL", "SETUSER", "gw", "on", ">gw-pw", "~*", "+@all")
        user = aioredis.Redis.from_url(f"redis://gw:gw-pw@127.0.0.1:{port}/3")
        s = lean_script(user, ECHO)
        assert await s(keys=["acl:k"], args=["in db 3", 0]) == [b"in db 3", b"in db 3", 1]
        async with aioredis.Redis(port=port, password="admin-pw", db=3) as db3:
            assert await db3.get("acl:k") == b"in db 3"
        assert await admin.get("acl:k") is None  # not in db 0
        await s.aclose()
        wrong = lean_script(aioredis.Redis.from_url(f"redis://gw:not-it@127.0.0.1:{port}/0"), ECHO)
        with pytest.raises(RedisError):
            await wrong(keys=["acl:k"], args=["x", 0])
        await wrong.aclose()
        await user.aclose()
    finally:
        await admin.aclose()
        proc.kill()
        proc.wait(5)


async def test_redis_restarted_the_call_fails_cleanly_and_the_next_one_reconnects(tmp_path: Path) -> None:
    proc, port = start_redis(tmp_path)
    r = aioredis.Redis(port=port)
    s = lean_script(r, ECHO)
    try:
        assert await s(keys=["k"], args=["before", 0]) == [b"before", b"before", 1]
        proc.kill()
        proc.wait(5)
        with pytest.raises(RedisConnectionError):
            await s(keys=["k"], args=["while down", 0])
        with pytest.raises(RedisConnectionError):
            await s(keys=["k"], args=["still down", 0])  # connection refused: no hang, a clean error
        proc, _ = start_redis(tmp_path, port=port)
        assert await s(keys=["k"], args=["after", 0]) == [b"after", b"after", 1]  # new connection, script loaded again
    finally:
        await s.aclose()
        await r.aclose()
        proc.kill()
        proc.wait(5)


async def test_after_a_redis_restart_while_idle_the_first_call_reconnects_instead_of_failing(tmp_path: Path) -> None:
    """Issue 17 item 7: stored answers asked again after a recovery came back 503 once each (a stale connection)."""
    proc, port = start_redis(tmp_path)
    r = aioredis.Redis(port=port)
    s = lean_script(r, ECHO)
    try:
        assert isinstance(s, LeanScript)
        assert await s(keys=["k"], args=["before", 0]) == [b"before", b"before", 1]
        proc.kill()
        proc.wait(5)
        proc, _ = start_redis(tmp_path, port=port)
        assert await eventually(s.conn._stale)  # the old connection's close reaches this process
        assert await s(keys=["k"], args=["after", 0]) == [b"after", b"after", 1]  # the first call works
    finally:
        await s.aclose()
        await r.aclose()
        proc.kill()
        proc.wait(5)


async def test_a_call_cancelled_before_its_reply_does_not_answer_the_next_call(redis_server: str, bus_prefix: str) -> None:
    r = aioredis.Redis.from_url(redis_server)
    s = lean_script(r, ECHO)
    assert isinstance(s, LeanScript)
    try:
        blocked = asyncio.create_task(s.conn.execute("BLPOP", f"{bus_prefix}:empty", 0.5))
        await asyncio.sleep(0.05)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        # The BLPOP's late nil must not be read as this call's reply.
        assert await s(keys=[f"{bus_prefix}:k"], args=["next", 1]) == [b"next", b"next", 2]
    finally:
        await s.aclose()
        await r.aclose()


def test_tls_and_credential_providers_keep_redis_py() -> None:
    s = lean_script(aioredis.Redis.from_url("rediss://redis.clinic.lan:6380/0"), ECHO)
    assert not isinstance(s, LeanScript) and type(s).__name__ == "AsyncScript"  # redis-py's own (TLS), same call shape
