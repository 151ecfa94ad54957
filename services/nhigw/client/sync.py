"""Blocking facades of ``AgentClient`` and ``CloudClient`` for HIS code that is not async (Qt / WinForms style).

Each facade owns one event loop on a private thread; every method of the async client
is available with the same name, arguments, return model and exceptions, and blocks
until the answer (or ``timeout_s`` more than the client's own timeout). Do not call them
from inside a running event loop: use the async clients there::

    with SyncAgentClient("https://127.0.0.1:5066") as agent, SyncCloudClient("http://gateway:8066") as cloud:
        sig = agent.hc_signature("01")
        print(cloud.register(sig).name)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any, Generic, TypeVar

from nhigw.client.agent import AgentClient
from nhigw.client.cloud import CloudClient

C = TypeVar("C", AgentClient, CloudClient)


class _Sync(Generic[C]):
    _client_cls: type[C]

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"nhigw-{type(self).__name__}", daemon=True)
        self._thread.start()
        self._wait_s = float(kw.get("timeout_s", 20.0)) + 5.0

        async def make() -> C:
            return self._client_cls(*args, **kw)

        self._client: C = asyncio.run_coroutine_threadsafe(make(), self._loop).result()

    def _run(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._wait_s)
        coro.close()
        raise RuntimeError("a blocking nhigw client was called inside a running event loop; use the async client")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            return self._run(attr(*args, **kw))

        call.__name__ = name
        call.__doc__ = attr.__doc__
        return call

    def close(self) -> None:
        if self._loop.is_running():
            # Closing waits on the private loop only, so it is safe from anywhere.
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class SyncAgentClient(_Sync[AgentClient]):
    """``AgentClient``, blocking: ``SyncAgentClient(url).status()``."""

    _client_cls = AgentClient


class SyncCloudClient(_Sync[CloudClient]):
    """``CloudClient``, blocking: ``SyncCloudClient(url, workstation="ws-01").register()``."""

    _client_cls = CloudClient

