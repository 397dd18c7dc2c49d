"""The service's Redis clients: one asynchronous client per event loop, one blocking
client per process, and the one way we delete keys by prefix (SCAN, never FLUSH).

Every client of ours is made here, and so is every connection pool (Django's cache
takes its pools from `SyncPools`; the channel layer gets its host from
`channel_layer_host()`). REDIS_URL names a Redis server, which redis-py reads as
given, or Sentinels (core.redis_urls): then each pool is redis-py's Sentinel-managed
pool, which asks the Sentinels for the master before each new connection, so that
after a failover every client reconnects to the promoted replica by itself.
"""

import functools
import hashlib
from collections.abc import Iterator
from typing import Any

import redis
import redis.sentinel
from django.conf import settings
from redis import asyncio as aioredis
from redis.asyncio import sentinel as aiosentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from core.loop_local import LoopLocal
from core.redis_urls import SentinelURL, is_sentinel_url, parse_sentinel_url

# Keys fetched per SCAN call and deleted per DEL command.
DELETE_BATCH = 500
# Seconds a command of the async client waits for a free pooled connection.
POOL_WAIT = 5


class SentinelBlockingConnectionPool(
    aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool
):
    """redis-py's Sentinel-managed async pool that, like BlockingConnectionPool, waits
    for a free connection instead of failing when all are in use."""


def sentinel_kwargs(
    target: SentinelURL, options: dict[str, Any], asynchronous: bool
) -> dict[str, Any]:
    """Connection options for the Sentinels: SentinelURL's, and no retries.

    Clients ask the Sentinels in turn; redis-py's default of ten retries with
    backoff would spend seconds on a dead Sentinel before asking the next.
    """
    retry = (AsyncRetry if asynchronous else Retry)(NoBackoff(), 0)
    return {**target.sentinel_options(options), "retry": retry}


def make_sync_pool(url: str, options: dict[str, Any]) -> redis.ConnectionPool:
    """A blocking connection pool for REDIS_URL's server, or its Sentinels' master."""
    if not is_sentinel_url(url):
        return redis.ConnectionPool.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinels = redis.sentinel.Sentinel(
        target.sentinels, sentinel_kwargs=sentinel_kwargs(target, options, False)
    )
    return redis.sentinel.SentinelConnectionPool(
        target.master, sentinels, **target.server_options(), **options
    )


def make_async_pool(url: str, options: dict[str, Any]) -> aioredis.ConnectionPool:
    """An asyncio connection pool for REDIS_URL's server, or its Sentinels' master,
    waiting up to POOL_WAIT s for a free connection."""
    if not is_sentinel_url(url):
        return aioredis.BlockingConnectionPool.from_url(
            url, timeout=POOL_WAIT, **options
        )
    target = parse_sentinel_url(url)
    sentinels = aiosentinel.Sentinel(
        target.sentinels, sentinel_kwargs=sentinel_kwargs(target, options, True)
    )
    return SentinelBlockingConnectionPool(
        target.master,
        sentinels,
        timeout=POOL_WAIT,
        **target.server_options(),
        **options,
    )


def make_sync_client(url: str, options: dict[str, Any]) -> redis.Redis:
    """A blocking, thread-safe client of REDIS_URL's Redis (it owns its pool)."""
    return redis.Redis.from_pool(make_sync_pool(url, options))


class SyncPools:
    """Django's cache `pool_class`: its pools made by make_sync_pool()."""

    @staticmethod
    def from_url(url: str, **options: Any) -> redis.ConnectionPool:
        return make_sync_pool(url, options)


def channel_layer_host(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The channel layer's `hosts` entry for REDIS_URL.

    channels_redis makes its pools itself (channels_redis.utils.create_pool): from
    `address`, redis-py's from_url; from `master_name` and `sentinels`, the same
    Sentinel-managed pool as make_async_pool(), only not blocking, as its pools for
    a server's URL are not either.
    """
    if not is_sentinel_url(url):
        return {"address": url, **options}
    target = parse_sentinel_url(url)
    return {
        "master_name": target.master,
        "sentinels": list(target.sentinels),
        "sentinel_kwargs": sentinel_kwargs(target, options, True),
        **target.server_options(),
        **options,
    }


def find_master(url: str, timeout: float) -> tuple[str, int]:
    """Ask a Sentinel URL's Sentinels in turn where the master is, as its clients
    do; MasterNotFoundError saying what each answered if none names a live one."""
    target = parse_sentinel_url(url)
    options = dict(
        sentinel_kwargs(target, {}, False),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    answers = []
    for host, port in target.sentinels:
        client = redis.Redis(host=host, port=port, **options)
        try:
            state = client.sentinel_master(target.master)
        except (redis.RedisError, OSError) as error:
            unknown = "no such master" in str(error).lower()
            answers.append(
                f"{host}:{port} monitors no master {target.master!r}"
                if unknown
                else f"{host}:{port}: {error}"
            )
            continue
        finally:
            client.close()
        if state["is_master"] and not (state["is_sdown"] or state["is_odown"]):
            return state["ip"], int(state["port"])
        answers.append(
            f"{host}:{port} finds master {target.master!r} down at "
            f"{state['ip']}:{state['port']}"
        )
    raise redis.sentinel.MasterNotFoundError(
        f"no Sentinel names a live master: {'; '.join(answers)}"
    )


def _make_client() -> aioredis.Redis:
    pool = make_async_pool(settings.REDIS_URL, settings.REDIS_CONNECTION_OPTIONS)
    return aioredis.Redis(connection_pool=pool)


_clients = LoopLocal(_make_client)


def get_redis() -> aioredis.Redis:
    """Return this event loop's Redis client (connections belong to their loop)."""
    return _clients.get()


async def close_redis() -> None:
    """Close this event loop's Redis client, if it made one."""
    client = _clients.pop()
    if client is not None:
        await client.aclose(close_connection_pool=True)


class LuaScript:
    """A Lua script run by its SHA-1 (EVALSHA), sent whole only when the server
    does not know it yet (after a restart or a failover): a script run on every
    snapshot is not sent with each."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 (Redis's)

    async def run(self, keys: list[str], args: list[Any]) -> Any:
        """Run the script on this event loop's client."""
        client = get_redis()
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.text, len(keys), *keys, *args)


@functools.cache
def get_sync_redis() -> redis.Redis:
    """A thread-safe blocking client, for synchronous views."""
    options = dict(settings.REDIS_CONNECTION_OPTIONS, socket_timeout=5)
    return make_sync_client(settings.REDIS_URL, options)


def delete_by_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `<prefix>:` and nothing else; return how many.

    SCAN, never FLUSHDB: other deployments and test runs may share the server.
    """
    deleted = 0
    keys = client.scan_iter(match=f"{escape_glob(prefix)}:*", count=DELETE_BATCH)
    for batch in batched(keys, DELETE_BATCH):
        deleted += client.delete(*batch)
    return deleted


def escape_glob(text: str) -> str:
    """Escape Redis glob characters so that text matches only itself in MATCH."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def batched(items: Iterator, size: int) -> Iterator[list]:
    """Yield lists of up to size items (itertools.batched from Python 3.12)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
