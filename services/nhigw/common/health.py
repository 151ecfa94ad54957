"""Readiness as named checks: ``/readyz`` answers 200 only while every check passes.

A check is a function returning a bool, or an awaitable of one (``bus``: Redis answers a PING;
``task:<name>``: that background task is running, see ``nhigw.bus.guard.Supervisor``). Any part
adds its own check by name; a check that raises counts as failing (and is named in the answer).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

Check = Callable[[], bool | Awaitable[bool]]


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._checks)

    async def run(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for name, check in sorted(self._checks.items()):
            try:
                res = check()
                if inspect.isawaitable(res):
                    res = await res
                out[name] = bool(res)
            except Exception:  # noqa: BLE001 -- a failing check is a failing check, not a 500
                out[name] = False
        return out
