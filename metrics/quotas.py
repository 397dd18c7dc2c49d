"""How many sockets each user holds, counted across every web process through Redis,
and the cap on them (METRICS_WS_MAX_SOCKETS_PER_USER; 0: no cap, nothing counted).

Each user's count is a hash, one field per web process. A socket is counted by one
Lua script that checks the user's total against the cap and adds it in one step, so
two processes cannot both take the last place. A process killed with SIGKILL cannot
withdraw its counts: every process stamps an expiry on itself in a second hash,
renewed while it holds sockets (as metrics.viewers does for viewers), and the script
drops the fields of processes whose stamp has passed, within METRICS_VIEWER_TTL.
A decrement that failed (Redis unreachable) is retried on the next renewal.
"""

import asyncio
import logging
import uuid
from collections import Counter

from django.conf import settings
from redis.exceptions import RedisError

from core.keys import redis_key
from core.loop_local import LoopLocal
from core.redis import get_redis

logger = logging.getLogger(__name__)

# KEYS[1]: the user's counts (process -> sockets); KEYS[2]: processes' expiries (ms).
# ARGV: this process, the cap, the expiry's length in ms. Returns 1 if the socket
# is counted, 0 if the user is at the cap.
_OPEN = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('HSET', KEYS[2], ARGV[1], now_ms + ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local total = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local expiry = tonumber(redis.call('HGET', KEYS[2], entries[i]) or '0')
    if expiry > now_ms then
        total = total + tonumber(entries[i + 1])
    else
        redis.call('HDEL', KEYS[1], entries[i])
    end
end
if total >= tonumber(ARGV[2]) then
    return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""

# KEYS[1]: the user's counts; ARGV: this process, how many sockets closed.
_CLOSE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -ARGV[2]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
end
"""

# KEYS[1]: processes' expiries; ARGV: this process, the expiry's length in ms.
# Drops the stamps of processes gone.
_RENEW = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local stamps = redis.call('HGETALL', KEYS[1])
for i = 1, #stamps, 2 do
    if tonumber(stamps[i + 1]) <= now_ms then
        redis.call('HDEL', KEYS[1], stamps[i])
    end
end
redis.call('HSET', KEYS[1], ARGV[1], now_ms + ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


def user_key(user_id: str) -> str:
    """The key of one user's counts."""
    return redis_key("sockets", "user", user_id)


def processes_key() -> str:
    """The key of the web processes' expiries."""
    return redis_key("sockets", "processes")


class SocketQuota:
    """This process's sockets per user, counted in Redis against the cap."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        self.held: Counter[str] = Counter()
        # Closes Redis has not heard of yet (it was unreachable).
        self.unsent: Counter[str] = Counter()
        # One sender at a time, or a close could be sent twice.
        self.sending = asyncio.Lock()
        self.renewing: asyncio.Task | None = None

    @property
    def cap(self) -> int:
        return settings.METRICS_WS_MAX_SOCKETS_PER_USER

    def ttl_ms(self) -> int:
        return int(settings.METRICS_VIEWER_TTL * 1000)

    async def open(self, user_id: str) -> bool:
        """Count a new socket of the user; False (not counted) if at the cap.

        With no cap, nothing is counted. Raises RedisError if Redis is unreachable.
        """
        if not self.cap:
            return True
        keys = (user_key(user_id), processes_key())
        args = (self.process, self.cap, self.ttl_ms())
        if not await get_redis().eval(_OPEN, 2, *keys, *args):
            return False
        self.held[user_id] += 1
        self.keep_renewing()
        return True

    async def close(self, user_id: str) -> None:
        """Stop counting one socket of the user (one that open() counted)."""
        self.held[user_id] -= 1
        if self.held[user_id] <= 0:
            del self.held[user_id]
        self.unsent[user_id] += 1
        await self.send_closes()

    async def send_closes(self) -> None:
        """Tell Redis of the closes it has not heard of; keep them if it is down."""
        async with self.sending:
            for user_id, closed in list(self.unsent.items()):
                try:
                    await get_redis().eval(
                        _CLOSE, 1, user_key(user_id), self.process, closed
                    )
                except (RedisError, OSError) as error:
                    logger.warning("Could not uncount a user's sockets: %s", error)
                    return
                self.unsent[user_id] -= closed
                if self.unsent[user_id] <= 0:
                    del self.unsent[user_id]

    def keep_renewing(self) -> None:
        if self.renewing is None or self.renewing.done():
            self.renewing = asyncio.create_task(self.renew_while_holding())

    async def renew_while_holding(self) -> None:
        """Renew this process's expiry while it holds sockets (or owes closes);
        then let it lapse."""
        every = settings.METRICS_VIEWER_TTL / 10
        while self.held or self.unsent:
            await asyncio.sleep(every)
            try:
                await get_redis().eval(
                    _RENEW, 1, processes_key(), self.process, self.ttl_ms()
                )
            except (RedisError, OSError) as error:
                logger.warning("Could not renew the count of sockets: %s", error)
            await self.send_closes()


_quotas = LoopLocal(SocketQuota)


def get_quota() -> SocketQuota:
    """This event loop's (this web process's) count of sockets per user."""
    return _quotas.get()
