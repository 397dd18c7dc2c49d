"""The latest snapshot, kept in Redis so that a new client gets it at once."""

import json
from typing import Any

from django.conf import settings
from redis import asyncio as aioredis

from metrics.loop_local import LoopLocal


def _make_client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL, timeout=5, **settings.REDIS_CONNECTION_OPTIONS
    )
    return aioredis.Redis(connection_pool=pool)


_clients = LoopLocal(_make_client)


def latest_key() -> str:
    """Return the Redis key that holds the latest snapshot event."""
    return f"{settings.METRICS_REDIS_PREFIX}:latest"


def get_redis() -> aioredis.Redis:
    """Return this event loop's Redis client (connections belong to their loop)."""
    return _clients.get()


async def save_latest(event: dict[str, Any], ttl: float) -> None:
    """Store the latest snapshot event; it expires after `ttl` seconds."""
    await get_redis().set(latest_key(), json.dumps(event), px=int(ttl * 1000))


def heartbeat_key() -> str:
    """Return the Redis key holding the wall time of the leader's last tick."""
    return f"{settings.METRICS_REDIS_PREFIX}:publisher:heartbeat"


async def save_heartbeat(wall_time: float) -> None:
    """Record that the leading publisher ticked at `wall_time` (a day's expiry)."""
    await get_redis().set(heartbeat_key(), repr(wall_time), ex=86400)


async def load_heartbeat() -> float | None:
    """Return the wall time of the leader's last tick, or None if none is known."""
    raw = await get_redis().get(heartbeat_key())
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


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
    client = _clients.pop()
    if client is not None:
        await client.aclose(close_connection_pool=True)
