"""The message bus: one small interface (``Bus``), two implementations.

- ``MemoryBus``: in-process, for ``nhigw up`` and unit tests.
- ``RedisBus``: Redis pub/sub (``redis.asyncio``), reconnecting by itself.

Both pass the same contract suite (``tests/test_bus_contract.py``). ``rpc`` builds
request/reply on top: the caller publishes to the callee's channel with a
``replyTo`` channel of its own; ``publish`` returns how many subscribers got the
message, so "nobody listening" is known at once rather than after a timeout.
"""

from nhigw.bus.base import Bus, Subscription
from nhigw.bus.memory import MemoryBus


def make_bus(url: str | None) -> Bus:
    """``None`` or ``memory://`` -> MemoryBus; ``redis://...`` -> RedisBus."""
    if not url or url.startswith("memory://"):
        return MemoryBus()
    from nhigw.bus.redis import RedisBus

    return RedisBus(url)


__all__ = ["Bus", "Subscription", "MemoryBus", "make_bus"]
