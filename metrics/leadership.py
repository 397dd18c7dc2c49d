"""A leader lock in Redis, so that one process of many does a job at a time: one
publisher of a host publishes, one web process builds the fleet frame."""

import os
import socket
import uuid

from redis import asyncio as aioredis

from core.keys import redis_key

# Renew the lock if we hold it, else take it if it is free. Returns 1 when we hold it.
_ACQUIRE_OR_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def host_leader_key(host: str) -> str:
    """The key of the lock of a host's leading local publisher."""
    return redis_key("host", host, "leader")


def fleet_leader_key() -> str:
    """The key of the lock of the web process that builds the fleet frame."""
    return redis_key("fleet", "leader")


class LeaderLock:
    """Leadership that lasts `ttl` seconds past the last renewal.

    A leader killed with SIGKILL stops renewing, so another takes over once the key
    expires; nobody needs to notice the death.
    """

    def __init__(self, client: aioredis.Redis, ttl: float, key: str) -> None:
        self.client = client
        self.ttl_ms = max(int(ttl * 1000), 1)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.key = key
        self.held = False

    async def acquire_or_renew(self) -> bool:
        """Take or keep the lock; return whether we hold it now."""
        result = await self.client.eval(
            _ACQUIRE_OR_RENEW, 1, self.key, self.owner, self.ttl_ms
        )
        self.held = bool(result)
        return self.held

    async def release(self) -> None:
        """Give the lock up at once, if we hold it, so a standby need not wait."""
        if self.held:
            await self.client.eval(_RELEASE, 1, self.key, self.owner)
            self.held = False
