"""Deleting the keys a benchmark or the load tool made; no Django import."""

from redis import asyncio as aioredis

SCAN_COUNT = 1000
DELETE_BATCH = 500


async def delete_prefixed(client: aioredis.Redis, prefix: str) -> int:
    """Delete every key whose name starts with `prefix`; return how many.

    SCAN, never KEYS or FLUSH: other users of the server keep their keys.
    """
    match = f"{prefix}*"
    keys = [key async for key in client.scan_iter(match=match, count=SCAN_COUNT)]
    for start in range(0, len(keys), DELETE_BATCH):
        await client.delete(*keys[start : start + DELETE_BATCH])
    return len(keys)
