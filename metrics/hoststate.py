"""What Redis knows of each host: when it last sent, on what interval, whether
somebody watches it, whether its clock is off, and which connection sends for it.

One hash per host (`P:host:<name>:state`), written by whoever sends the host's
snapshots: its agent's connection (metrics.agents) or the local publisher. The
sender holds a lease on the host, renewed while it lives, so that a sender that
dies without a word (SIGKILL, a worker gone) stops counting within LEASE_SECONDS.

A host is online while a sender holds its lease and its snapshots come on time:
no more than MISSED_INTERVALS of its current period since the last one (or since
the sender connected). A host whose period is 0 (idle, METRICS_IDLE_INTERVAL=0)
sends nothing and is online while its sender is connected.
"""

import math
import time
from dataclasses import dataclass
from typing import Any

from core.keys import redis_key
from core.redis import get_redis, get_sync_redis
from metrics.viewers import COUNT_FUNCTION, viewers_key

# A host that missed this many of its intervals is offline.
MISSED_INTERVALS = 3
# What renew_counting() answers when nobody holds the host.
LOST = -2
# A sender's lease on its host lasts this long past its last renewal.
LEASE_SECONDS = 5.0
# The state outlives the last write by this long (a removed host's goes by itself).
STATE_TTL_SECONDS = 7 * 86400

# Take the lease of a host (ARGV: sender, now, lease until, interval, idle interval,
# live, seconds the state is kept). The newest sender always wins: a connection
# replaces the one before it. Returns the claim's generation, which grows by one
# with each claim of the host: the newer of two senders has the greater.
_CLAIM = """
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'sender', ARGV[1], 'since', ARGV[2], 'lease', ARGV[3],
    'interval', ARGV[4], 'idle_interval', ARGV[5], 'live', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return generation
"""

# Renew the lease if this sender still holds it, and count the host's viewers, in
# one round trip: KEYS: the state, the viewers' hash; ARGV: sender, lease until.
# Returns the number of viewers (the host is live while there are any); -1 if
# another sender holds the host, -2 (LOST) if none does (Redis lost it: the sender
# claims it again).
_RENEW_COUNTING = (
    COUNT_FUNCTION
    + """
local sender = redis.call('HGET', KEYS[1], 'sender')
if not sender then
    return -2
end
if sender ~= ARGV[1] then
    return -1
end
local viewers = count_viewers(KEYS[2])
local live = '0'
if viewers > 0 then
    live = '1'
end
redis.call('HSET', KEYS[1], 'lease', ARGV[2], 'live', live)
return viewers
"""
)

# Give the lease up if this sender holds it (ARGV: sender). Returns 1 if it did.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'sender') ~= ARGV[1] then
    return 0
end
redis.call('HDEL', KEYS[1], 'sender', 'lease')
return 1
"""


def state_key(host: str) -> str:
    """The key of a host's state hash."""
    return redis_key("host", host, "state")


@dataclass(frozen=True)
class HostState:
    """A host as Redis knows it."""

    online: bool
    last_seen: float | None
    interval: float | None
    clock_skew: bool
    # Whether the host ever sent (or had a sender) within the state's lifetime.
    known: bool = False


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_state(raw: dict[Any, Any], now: float) -> HostState:
    """Read a host's state hash (bytes or str keys), as of wall time `now`."""
    fields = {
        (k.decode() if isinstance(k, bytes) else k): (
            v.decode() if isinstance(v, bytes) else v
        )
        for k, v in (raw or {}).items()
    }
    last_seen = _number(fields.get("last_seen"))
    interval = _number(fields.get("interval"))
    idle_interval = _number(fields.get("idle_interval")) or 0.0
    live = fields.get("live") == "1"
    lease = _number(fields.get("lease")) or 0.0
    since = _number(fields.get("since")) or 0.0
    online = False
    if fields.get("sender") and lease > now:
        period = interval if live else idle_interval
        if not period:
            online = True
        else:
            latest = max(last_seen or 0.0, since)
            online = now - latest <= MISSED_INTERVALS * period
    return HostState(
        online=online,
        last_seen=last_seen,
        interval=interval,
        clock_skew=fields.get("clock_skew") == "1",
        known=bool(fields),
    )


async def load_host_state(host: str) -> HostState:
    """One host's state now."""
    raw = await get_redis().hgetall(state_key(host))
    return parse_state(raw, time.time())


def load_host_states(names: list[str]) -> dict[str, HostState]:
    """The states of the named hosts now, from one round trip (sync: for views and
    commands)."""
    client = get_sync_redis()
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(state_key(name))
        raws = pipe.execute()
    now = time.time()
    return {name: parse_state(raw, now) for name, raw in zip(names, raws, strict=True)}


class HostLease:
    """A sender's hold on its host's state: taken on connect, renewed while alive,
    given up on the way out."""

    def __init__(self, host: str, sender: str, seconds: float = LEASE_SECONDS) -> None:
        self.host = host
        self.sender = sender
        self.seconds = seconds
        self.key = state_key(host)

    async def claim(self, interval: float, idle_interval: float, live: bool) -> int:
        """Take the host, replacing whichever sender held it; return the claim's
        generation (greater than that of every claim before it)."""
        now = time.time()
        generation = await get_redis().eval(
            _CLAIM,
            1,
            self.key,
            self.sender,
            repr(now),
            repr(now + self.seconds),
            repr(interval),
            repr(idle_interval),
            "1" if live else "0",
            STATE_TTL_SECONDS,
        )
        return int(generation)

    async def renew_counting(self) -> int | None:
        """Extend the lease and count the host's viewers, in one round trip; None
        if another sender has taken the host; LOST if nobody holds it (Redis lost
        its data)."""
        viewers = await get_redis().eval(
            _RENEW_COUNTING,
            2,
            self.key,
            viewers_key(self.host),
            self.sender,
            repr(time.time() + self.seconds),
        )
        if viewers == LOST:
            return LOST
        return None if viewers < 0 else int(viewers)

    async def release(self) -> bool:
        """Give the host up, if still held; return whether it was."""
        return bool(await get_redis().eval(_RELEASE, 1, self.key, self.sender))
