"""The cloud client's policy, driven through its transport seam (``HandlerTransport``), and its one
aiohttp boundary against real sockets: which failures are retried, for reads and for writes."""

from __future__ import annotations

import asyncio

import pytest

from nhigw.gateway.upstream import (
    AiohttpTransport,
    Breaker,
    CircuitOpen,
    HandlerTransport,
    MaybeSent,
    NotSent,
    UpstreamClient,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamSettings,
)
from tests.helpers import free_port

FAST = UpstreamSettings(backoff_base_s=0.0, connect_timeout_s=0.5, total_timeout_s=0.5)


def script(*steps: object) -> tuple[HandlerTransport, list[UpstreamRequest]]:
    seen: list[UpstreamRequest] = []
    it = iter(steps)

    async def handler(_base: str, req: UpstreamRequest) -> UpstreamResponse:
        seen.append(req)
        step = next(it)
        if isinstance(step, Exception):
            raise step
        return UpstreamResponse(int(step), b"{}")  # type: ignore[call-overload]

    return HandlerTransport(handler), seen


async def test_a_write_is_retried_only_while_it_provably_never_left() -> None:
    t, seen = script(NotSent("refused"), 200)
    res = await UpstreamClient("http://c", FAST, t).call(UpstreamRequest("/w", b"{}", write=True))
    assert res.response.status == 200 and [a.outcome for a in res.attempts] == ["NotSent", "200"] and len(seen) == 2

    t, seen = script(MaybeSent("dropped"), 200)
    with pytest.raises(MaybeSent) as e:
        await UpstreamClient("http://c", FAST, t).call(UpstreamRequest("/w", b"{}", write=True))
    assert len(seen) == 1 and len(e.value.attempts) == 1

    t, seen = script(503, 200)  # the cloud answered 5xx to a write: its answer, not a retry
    res_err = None
    try:
        await UpstreamClient("http://c", FAST, t).call(UpstreamRequest("/w", b"{}", write=True))
    except Exception as exc:  # BadStatus
        res_err = exc
    assert type(res_err).__name__ == "BadStatus" and len(seen) == 1


async def test_a_read_is_retried_on_any_transport_error_or_5xx_at_most_three_times() -> None:
    t, seen = script(MaybeSent("timeout"), 502, 200)
    res = await UpstreamClient("http://c", FAST, t).call(UpstreamRequest("/r", b"{}", write=False))
    assert res.response.status == 200 and len(seen) == 3
    t, seen = script(MaybeSent("a"), MaybeSent("b"), MaybeSent("c"), 200)
    with pytest.raises(MaybeSent):
        await UpstreamClient("http://c", FAST, t).call(UpstreamRequest("/r", b"{}", write=False))
    assert len(seen) == 3


def test_breaker_opens_after_n_failures_lets_one_probe_through_and_closes_on_success() -> None:
    now = [0.0]
    b = Breaker(3, 10.0, clock=lambda: now[0])
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state == b.OPEN and not b.allow()
    now[0] = 10.0
    assert b.allow() and b.state == b.HALF_OPEN and not b.allow()  # exactly one probe
    b.failure()
    assert b.state == b.OPEN and not b.allow()
    now[0] = 20.0
    assert b.allow()
    b.success()
    assert b.state == b.CLOSED and b.allow() and b.allow()


async def test_open_breaker_refuses_without_calling() -> None:
    t, seen = script(*([503] * 10))
    c = UpstreamClient("http://c", UpstreamSettings(backoff_base_s=0, breaker_failures=2, max_attempts=1), t)
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017  (BadStatus)
            await c.call(UpstreamRequest("/r", b"{}", write=False))
    with pytest.raises(CircuitOpen):
        await c.call(UpstreamRequest("/r", b"{}", write=False))
    assert len(seen) == 2


async def test_aiohttp_boundary_tells_refused_from_dropped() -> None:
    tr = AiohttpTransport(FAST)
    try:
        with pytest.raises(NotSent):
            await tr.send(f"http://127.0.0.1:{free_port()}", UpstreamRequest("/x", b"{}", write=True))

        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(drop, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(MaybeSent):
            await tr.send(f"http://127.0.0.1:{port}", UpstreamRequest("/x", b"{}", write=True))

        stop, closed = asyncio.Event(), asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await stop.wait()
                writer.close()
                await writer.wait_closed()
            finally:
                closed.set()

        slow = await asyncio.start_server(silent, "127.0.0.1", 0)
        with pytest.raises(MaybeSent):  # a timeout after sending: maybe landed
            await tr.send(f"http://127.0.0.1:{slow.sockets[0].getsockname()[1]}", UpstreamRequest("/x", b"{}", write=True))
        stop.set()
        server.close()
        slow.close()
        await asyncio.wait_for(closed.wait(), 5)  # the handler is done before the loop ends
    finally:
        await tr.close()
