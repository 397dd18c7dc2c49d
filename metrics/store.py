"""Snapshots kept in Redis, per host: the latest, for a client that connects between
ticks, and a bounded history, for a dashboard that opens with the last minutes
drawn; and the leading local publisher's heartbeat."""

import functools
import json
import socket
import time
from typing import Any, NamedTuple

from django.conf import settings

from core.frames import SharedText
from core.keys import redis_key
from core.loop_local import LoopLocal
from core.redis import LuaScript, get_redis, get_sync_redis
from core.singleflight import SingleFlight
from metrics.hoststate import STATE_TTL_SECONDS, HostState, parse_state, state_key


class Latest(NamedTuple):
    """A host's latest snapshot event (None: none kept) and its state."""

    event: dict[str, Any] | None
    state: HostState


# How long the latest snapshot stays in Redis, in intervals: long enough to bridge
# one missed tick, short enough that a stopped sender's figures are not served.
LATEST_TTL_INTERVALS = 3

# Add a snapshot to a host's history unless one with its timestamp is there already,
# then trim what is older than the history keeps. KEYS: history. ARGV: score (the
# timestamp, in seconds), text, trim-before score, seconds the key outlives this.
# Returns 1 if it was added. The function is shared with _STORE.
ADD_ONCE_FUNCTION = """
local function add_once(key, score, text, trim_before, ttl)
    local added = 0
    if #redis.call('ZRANGEBYSCORE', key, score, score, 'LIMIT', 0, 1) == 0 then
        redis.call('ZADD', key, score, text)
        added = 1
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. trim_before)
    redis.call('EXPIRE', key, ttl)
    return added
end
"""
_ADD_ONCE = LuaScript(
    ADD_ONCE_FUNCTION + "return add_once(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
)

# A live snapshot, in one command: the latest (the event, expiring), the history
# (once per timestamp), the host's last sight. KEYS: latest, history, state. ARGV:
# the event (JSON), its expiry in ms, then add_once's four, then when it arrived
# (the server's clock: an agent's may be off), clock skew (0/1) and the seconds
# the state outlives this.
_STORE = LuaScript(
    ADD_ONCE_FUNCTION
    + """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
add_once(KEYS[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[3], 'last_seen', ARGV[7], 'clock_skew', ARGV[8])
redis.call('EXPIRE', KEYS[3], ARGV[9])
"""
)


def latest_key(host: str) -> str:
    """The key of a host's latest snapshot event."""
    return redis_key("host", host, "latest")


def history_key(host: str) -> str:
    """The key of a host's history."""
    return redis_key("host", host, "history")


def _history_args(ts: float, text: str) -> list[Any]:
    keep = settings.METRICS_HISTORY_SECONDS
    return [repr(ts), text, repr(ts - keep), int(keep) + 60]


async def store_snapshot(
    event: dict[str, Any], ttl: float, clock_skew: bool = False
) -> None:
    """Store a live snapshot event of its host: as the latest (expiring after `ttl`
    s), in the history (once per timestamp), and its arrival (now) as the host's
    last sight.

    History keeps METRICS_HISTORY_SECONDS of snapshots; older ones are trimmed here,
    so the set stays bounded whatever the interval.
    """
    host = event["host"]
    await _STORE.run(
        [latest_key(host), history_key(host), state_key(host)],
        [
            json.dumps(event),
            int(ttl * 1000),
            *_history_args(event["ts"], event["text"]),
            repr(time.time()),
            int(clock_skew),
            STATE_TTL_SECONDS,
        ],
    )


async def store_backfill(host: str, ts: float, text: str) -> bool:
    """Put a snapshot taken while its agent was away into the host's history (once
    per timestamp); return whether it was new."""
    return bool(await _ADD_ONCE.run([history_key(host)], _history_args(ts, text)))


async def save_heartbeat(wall_time: float, interval: float) -> None:
    """Record that the leading publisher, on `interval`, ticked at `wall_time`."""
    beat = {"at": wall_time, "interval": interval, "host": socket.gethostname()}
    await get_redis().set(
        redis_key("publisher", "heartbeat"), json.dumps(beat), ex=86400
    )


def parse_heartbeat(raw: bytes | None) -> dict[str, Any] | None:
    """Decode a stored heartbeat; None if absent or garbled."""
    try:
        beat = json.loads(raw) if raw is not None else None
        return {
            "at": float(beat["at"]),
            "interval": float(beat["interval"]),
            "host": str(beat.get("host", "")),
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


async def load_heartbeat() -> dict[str, Any] | None:
    """Return the leader's last tick (wall time `at`, `interval`, `host`) if known."""
    return parse_heartbeat(await get_redis().get(redis_key("publisher", "heartbeat")))


def load_history(host: str, since: float) -> tuple[list[str], HostState]:
    """Return a host's snapshot texts taken since wall time `since`, oldest first,
    with its state."""
    client = get_sync_redis()
    with client.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(history_key(host), since, "+inf")
        pipe.hgetall(state_key(host))
        texts, state = pipe.execute()
    return [text.decode() for text in texts], parse_state(state, time.time())


_latest_reads: LoopLocal[SingleFlight[Latest]] = LoopLocal(SingleFlight)


async def load_latest(host: str, not_before: float | None = None) -> Latest:
    """Return a host's latest snapshot event (None if there is none, or it is
    garbled) and its state.

    Callers that overlap share one read, if it is sent no earlier than `not_before`
    (a time.monotonic() value): a storm of connects costs a few reads, not one each,
    and none gets an answer older than it asked for. The event's text is a
    SharedText, framed once for all of them.
    """
    return await _latest_reads.get().run(
        host, functools.partial(_read_latest, host), not_before
    )


async def _read_latest(host: str) -> Latest:
    async with get_redis().pipeline(transaction=False) as pipe:
        pipe.get(latest_key(host))
        pipe.hgetall(state_key(host))
        raw, state = await pipe.execute()
    return Latest(_parse_event(raw), parse_state(state, time.time()))


def load_latest_of(hosts: list[str]) -> dict[str, Latest]:
    """Each named host's latest snapshot event and state, from one round trip
    (sync: for a scrape of /metrics)."""
    client = get_sync_redis()
    with client.pipeline(transaction=False) as pipe:
        _ask_latest_of(pipe, hosts)
        return _latest_of(hosts, pipe.execute())


async def read_latest_of(hosts: list[str]) -> dict[str, Latest]:
    """load_latest_of(), on the event loop's Redis client (for the fleet frame)."""
    async with get_redis().pipeline(transaction=False) as pipe:
        _ask_latest_of(pipe, hosts)
        return _latest_of(hosts, await pipe.execute())


def _ask_latest_of(pipe: Any, hosts: list[str]) -> None:
    for host in hosts:
        pipe.get(latest_key(host))
        pipe.hgetall(state_key(host))


def _latest_of(hosts: list[str], replies: list[Any]) -> dict[str, Latest]:
    now = time.time()
    return {
        host: Latest(_parse_event(raw), parse_state(state, now))
        for host, raw, state in zip(hosts, replies[::2], replies[1::2], strict=True)
    }


def _parse_event(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("text"), str)
        or not isinstance(event.get("ts"), int | float)
    ):
        return None
    return dict(event, text=SharedText(event["text"]))
