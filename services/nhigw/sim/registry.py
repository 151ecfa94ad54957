"""The simulator's handler registry: ``@handles("BasicData/Register")``.

A handler gets the store, the request (the route's model from ``contracts.cloud.ROUTE_MODELS``,
already validated and its signature verified) and the route; it returns the response body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from nhigw.contracts.routes import Route
from nhigw.sim.store import SimStore

Handler = Callable[[SimStore, Any, Route], Awaitable[dict[str, Any] | BaseModel]]
HANDLERS: dict[str, Handler] = {}


def handles(path: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS[path.lower()] = fn
        return fn

    return deco
