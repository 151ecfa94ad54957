"""The simulator's handler registry: ``@handles("BasicData/Register")``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nhigw.contracts.models import OpenModel, SignatureObject
from nhigw.contracts.routes import Route
from nhigw.sim.store import SimStore

Handler = Callable[[SimStore, SignatureObject, Route], Awaitable[dict[str, Any] | OpenModel]]
HANDLERS: dict[str, Handler] = {}


def handles(path: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS[path.lower()] = fn
        return fn

    return deco
