"""How many clients watch each host, counted across every web process through Redis.

Each web process writes its own count of a host's viewers into that host's hash,
stamped with an expiry time from Redis's own clock, and renews it while alive; a
process killed with SIGKILL stops counting within METRICS_VIEWER_TTL seconds. The
host's agent connection, or the local publisher, sums the live entries (and drops
the dead ones) to decide whether anybody is watching.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import Counter

from django.conf import settings
from redis.exceptions import RedisError

from core import instruments
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

# A Lua function: the sum of a host's live viewer counts (KEYS of its hash), the
# entries of processes gone deleted. Other scripts that need the count include it.
COUNT_FUNCTION = """
local function count_viewers(key)
    local now = redis.call('TIME')
    local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
    local entries = redis.call('HGETALL', key)
    local total = 0
    for i = 1, #entries, 2 do
        local count, expiry = string.match(entries[i + 1], '(%d+) (%d+)')
        if count and tonumber(expiry) > now_ms then
            total = total + tonumber(count)
        else
            redis.call('HDEL', key, entries[i])
        end
    end
    return total
end
"""

_COUNT = COUNT_FUNCTION + "return count_viewers(KEYS[1])"


def viewers_key(host: str) -> str:
    """The key of a host's viewer counts."""
    return redis_key("viewers", host)


async def count_viewers(host: str) -> int:
    """Return the number of `host`'s viewers connected to all live web processes."""
    return int(await get_redis().eval(_COUNT, 1, viewers_key(host)))


class ViewerRegistry:
    """This process's counts of watching clients per host, kept current in Redis."""

    def __init__(self) -> None:
        self.field = uuid.uuid4().hex
        self.counts: Counter[str] = Counter()
        # Hosts whose count Redis holds (a host counted down to 0 is written once
        # more, as 0, then left out).
        self.written: set[str] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def count(self) -> int:
        """Clients of every host."""
        return sum(self.counts.values())

    def add(self, host: str) -> None:
        """Count one more client of `host`."""
        self.counts[host] += 1
        instruments.viewers.labels(host).inc()
        self._report()

    def remove(self, host: str) -> None:
        """Count one client of `host` fewer."""
        if self.counts[host] > 0:
            instruments.viewers.labels(host).dec()
        self.counts[host] = max(self.counts[host] - 1, 0)
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
                await self._write(ttl_ms)
            except (RedisError, OSError) as error:
                logger.warning("Could not record the viewer count: %s", error)
                await asyncio.sleep(RETRY_DELAY)
                continue
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the wait ends, and close() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(heartbeat):
                    await self._changed.wait()

    async def _write(self, ttl_ms: int) -> None:
        """Write this process's count of each host it has (or just had) viewers of."""
        counts = {host: count for host, count in self.counts.items() if count}
        gone = self.written - counts.keys()
        async with get_redis().pipeline(transaction=False) as pipe:
            for host, count in counts.items():
                pipe.eval(_RECORD, 1, viewers_key(host), self.field, count, ttl_ms)
            for host in gone:
                pipe.hdel(viewers_key(host), self.field)
            await pipe.execute()
        self.written = set(counts)
        for host in gone:
            if not self.counts[host]:
                del self.counts[host]

    async def close(self) -> None:
        """Stop renewing and delete this process's counts."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            async with get_redis().pipeline(transaction=False) as pipe:
                for host in self.written | set(self.counts):
                    pipe.hdel(viewers_key(host), self.field)
                await pipe.execute()


# One per event loop; tests close theirs (tests/support/viewers.py).
registries = LoopLocal(ViewerRegistry)


def get_registry() -> ViewerRegistry:
    """Return this event loop's registry (one per web process in production)."""
    return registries.get()
