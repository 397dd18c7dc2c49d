"""How many clients watch, counted across every web process through Redis.

Each web process writes its own count into one hash, stamped with an expiry time
from Redis's own clock, and renews it while alive; a process killed with SIGKILL
stops counting within METRICS_VIEWER_TTL seconds. The publisher sums the live
entries (and drops the dead ones) to decide whether anybody is watching.
"""

import asyncio
import contextlib
import logging
import uuid

from django.conf import settings
from redis.exceptions import RedisError

from core.keys import redis_key
from core.loop_local import LoopLocal
from core.redis import get_redis

logger = logging.getLogger(__name__)

# After a failed write, try again this soon.
RETRY_DELAY = 1.0


# Entries are "<count> <expiry in ms on Redis's clock>", one field per web process.
_RECORD = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now_ms + ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""

_COUNT = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local entries = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #entries, 2 do
    local count, expiry = string.match(entries[i + 1], '(%d+) (%d+)')
    if count and tonumber(expiry) > now_ms then
        total = total + tonumber(count)
    else
        redis.call('HDEL', KEYS[1], entries[i])
    end
end
return total
"""


async def count_viewers() -> int:
    """Return the number of clients connected to all live web processes."""
    return int(await get_redis().eval(_COUNT, 1, redis_key("viewers")))


class ViewerRegistry:
    """This process's count of watching clients, kept current in Redis."""

    def __init__(self) -> None:
        self.field = uuid.uuid4().hex
        self.count = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    def add(self) -> None:
        """Count one more client."""
        self.count += 1
        self._report()

    def remove(self) -> None:
        """Count one client fewer."""
        self.count = max(self.count - 1, 0)
        self._report()

    def _report(self) -> None:
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_current())

    async def _keep_current(self) -> None:
        # Coalesces bursts of connects into one write, and renews the entry while alive.
        ttl_ms = int(settings.METRICS_VIEWER_TTL * 1000)
        heartbeat = settings.METRICS_VIEWER_TTL / 10
        while True:
            self._changed.clear()
            try:
                await get_redis().eval(
                    _RECORD, 1, redis_key("viewers"), self.field, self.count, ttl_ms
                )
            except (RedisError, OSError) as error:
                logger.warning("Could not record the viewer count: %s", error)
                await asyncio.sleep(RETRY_DELAY)
                continue
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the wait ends, and close() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(heartbeat):
                    await self._changed.wait()

    async def close(self) -> None:
        """Stop renewing and delete this process's count."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await get_redis().hdel(redis_key("viewers"), self.field)


# One per event loop; tests close theirs (tests/support/viewers.py).
registries = LoopLocal(ViewerRegistry)


def get_registry() -> ViewerRegistry:
    """Return this event loop's registry (one per web process in production)."""
    return registries.get()
