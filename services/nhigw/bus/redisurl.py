"""One place that turns a Redis URL into a redis-py client: a single Redis or one behind Sentinel.

    redis://[[user]:password@]host:6379/0                  one Redis (redis-py's own URL; rediss:// for TLS)
    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<service>[/<db>]
    rediss+sentinel://...                                  the same over TLS (sentinels and Redis)

The Sentinel form is the one of the ``redis-sentinel-url`` convention (kombu and others write it
alike): the user and password are the *Redis* ones (the primary's and replicas' ``requirepass`` /
ACL user); the sentinels' own are query parameters, ``?sentinel_password=...&sentinel_username=...``
(default: none). A port left out is 26379. ``?ssl_ca_certs=FILE`` (and ``ssl_certfile``,
``ssl_keyfile``) are passed to the TLS connections. Every user of Redis in nhigw (the gateway
replicas, agents, ``nhigw audit``, ``nhigw gateway enrol-token``) builds its client here, from
``--redis`` or ``NHIGW_REDIS_URL``.

Under Sentinel the client is redis-py's ``Sentinel.master_for``: every new connection asks the
sentinels for the current primary and checks it is one; a connection that finds its server demoted
(a ``READONLY`` reply) is dropped and the next one goes to the promoted replica. So the clients follow
a promotion by themselves and never write to a demoted primary through a connection opened after it
was demoted. The gateway's lean hot-path connection (``nhigw.bus.resp``) is not used under Sentinel:
the two hot-path scripts then go through redis-py's connection (``lean_script`` falls back to it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_TLS_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def is_sentinel(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in SENTINEL_SCHEMES


class SentinelURL:
    """A parsed ``redis+sentinel://`` URL (``ValueError`` when it is not one)."""

    def __init__(self, url: str) -> None:
        p = urlsplit(url)
        if p.scheme not in SENTINEL_SCHEMES:
            raise ValueError(f"not a Sentinel URL (redis+sentinel://host:26379,.../service/db): {url.split('@')[-1]}")
        self.tls = p.scheme.startswith("rediss")
        userinfo, _, hosts = p.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        self.username = unquote(user) or None
        self.password = unquote(password) or None
        self.sentinels: list[tuple[str, int]] = []
        for h in hosts.split(","):
            host, sep, port = h.strip().rpartition(":") if not h.strip().endswith("]") else (h.strip(), "", "")
            if not sep:
                host, port = h.strip(), "26379"
            if not host or not port.isdigit():
                raise ValueError(f"bad sentinel address {h!r} in the Redis URL")
            self.sentinels.append((host.strip("[]"), int(port)))
        parts = [unquote(x) for x in p.path.split("/") if x]
        if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise ValueError("a Sentinel URL names the service and optionally the db: redis+sentinel://host:26379/<service>[/<db>]")
        self.service = parts[0]
        self.db = int(parts[1]) if len(parts) == 2 else 0
        q = {k: v[-1] for k, v in parse_qs(p.query).items()}
        self.sentinel_username = q.get("sentinel_username") or None
        self.sentinel_password = q.get("sentinel_password") or None
        self.tls_kwargs: dict[str, Any] = {k: q[k] for k in _TLS_PARAMS if k in q}


class SentinelRedis(aioredis.Redis):
    """``master_for``'s client; closing it closes the connections to the sentinels too."""

    owner: Sentinel | None = None  # the Sentinel it came from (not `sentinel`: a Redis command of that name)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for s in self.owner.sentinels if self.owner is not None else ():
            await s.aclose()


def redis_client(url: str, **kw: Any) -> aioredis.Redis:
    """A redis-py asyncio client for ``url`` (see the module docstring); ``kw`` as for ``Redis.from_url``."""
    if not is_sentinel(url):
        return aioredis.Redis.from_url(url, **kw)
    s = SentinelURL(url)
    tls = {"ssl": True, **s.tls_kwargs} if s.tls else {}
    sentinel_kw = {"username": s.sentinel_username, "password": s.sentinel_password, "socket_connect_timeout": kw.get("socket_connect_timeout", 2), "socket_timeout": 2, **tls}
    sentinel = Sentinel(s.sentinels, sentinel_kwargs=sentinel_kw)
    client = sentinel.master_for(s.service, redis_class=SentinelRedis, username=s.username, password=s.password, db=s.db, **tls, **kw)
    client.owner = sentinel
    return client
