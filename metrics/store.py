"""The latest snapshot, kept in Redis so that a new client gets it at once."""

import asyncio
import json
from typing import Any

from django.conf import settings
from redis import asyncio as aioredis

_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}


def latest_key() -> str:
    """Return the Redis key that holds the latest snapshot event."""
    return f"{settings.METRICS_REDIS_PREFIX}:latest"


def get_redis() -> aioredis.Redis:
    """Return this event loop's Redis client (connections belong to their loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, timeout=5, **settings.REDIS_CONNECTION_OPTIONS
        )
        client = _clients[loop] = aioredis.Redis(connection_pool=pool)
    return client


async def save_latest(event: dict[str, Any], ttl: float) -> None:
    """Store the latest snapshot event; it expires after `ttl` seconds."""
    await get_redis().set(latest_key(), json.dumps(event), px=int(ttl * 1000))


async def load_latest() -> dict[str, Any] | None:
    """Return the latest snapshot event, or None if there is none (or it is garbled)."""
    raw = await get_redis().get(latest_key())
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("text"), str):
        return None
    return event


async def close_redis() -> None:
    """Close this event loop's Redis client, if it made one."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose(close_connection_pool=True)
