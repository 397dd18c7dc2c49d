"""The service's Redis clients: one asynchronous client per event loop, one blocking
client per process, and the one way we delete keys by prefix (SCAN, never FLUSH)."""

import functools
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from redis import asyncio as aioredis

from core.loop_local import LoopLocal

# Keys fetched per SCAN call and deleted per DEL command.
DELETE_BATCH = 500


def make_sync_client(url: str, options: dict[str, Any]) -> redis.Redis:
    """A blocking, thread-safe client of the Redis at `url`."""
    return redis.Redis.from_url(url, **options)


def _make_client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL, timeout=5, **settings.REDIS_CONNECTION_OPTIONS
    )
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
