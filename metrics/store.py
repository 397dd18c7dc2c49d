"""Snapshots kept in Redis, per host: the latest, for a client that connects between
ticks, and a bounded history, for a dashboard that opens with the last minutes
drawn; and the leading local publisher's heartbeat."""

import functools
import json
import secrets
import socket
import time
from typing import Any, NamedTuple

from django.conf import settings

from core.frames import SharedText
from core.keys import redis_key
from core.loop_local import LoopLocal
from core.redis import LuaScript, get_redis, get_sync_redis
from core.singleflight import SingleFlight
from metrics.events import host_group
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

# The live snapshots of a host held for resuming sockets (metrics.resume), by
# offset: a Redis Stream whose entry IDs are `<seq>-0`, each with the time it
# arrived (`at`, the server's clock) and its text; entries that arrived more than
# METRICS_HISTORY_SECONDS ago are deleted on each store, oldest first.
# KEYS: stream. ARGV: seq, arrival, text, trim-before (arrival), seconds the key
# outlives this. The function is part of _STORE.
HOLD_FUNCTION = """
local function hold(key, seq, at, text, trim_before, ttl)
    redis.call('XADD', key, seq .. '-0', 'at', at, 'text', text)
    while true do
        local oldest = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1]
        if oldest == nil or tonumber(oldest[2][2]) >= tonumber(trim_before) then
            break
        end
        redis.call('XDEL', key, oldest[1])
    end
    redis.call('EXPIRE', key, ttl)
end
"""

# A live snapshot, in one command: its offset (the host's next `seq`, in its
# `epoch`, a new random one if Redis has none: it lost the counter), spliced into
# its text before the closing brace; then the latest (the event, expiring), the
# history (once per timestamp; the text as given, like backfill's), the held
# stream, the host's last sight. KEYS:
# latest, history, state, offsets, stream. ARGV: the event without its text (JSON),
# its text (JSON), its expiry in ms, then add_once's score, trim-before and ttl,
# then when it arrived (the server's clock: an agent's may be off), clock skew
# (0/1), the seconds the state (and the offsets) outlive this, a new epoch,
# hold's trim-before, and the last seq and epoch this process stored for the host
# (0 and "" if none): a seq not above it in that epoch means Redis lost writes, and
# starts a new epoch above it. Returns the seq, the epoch and the text as stored.
_STORE = LuaScript(
    ADD_ONCE_FUNCTION
    + HOLD_FUNCTION
    + """
local seq = redis.call('HINCRBY', KEYS[4], 'seq', 1)
local lost = redis.call('HSETNX', KEYS[4], 'epoch', ARGV[10]) == 1
if not lost and redis.call('HGET', KEYS[4], 'epoch') == ARGV[13]
        and seq <= tonumber(ARGV[12]) then
    -- This sender stored a later seq of this epoch, which Redis no longer has (a
    -- failover lost the last writes, or an older dump was loaded): what follows
    -- is another history, which must not reuse the offsets viewers hold.
    seq = tonumber(ARGV[12]) + 1
    redis.call('HSET', KEYS[4], 'seq', seq, 'epoch', ARGV[10])
    lost = true
end
if lost then
    -- A new epoch: whatever is held belongs to the lost one.
    redis.call('DEL', KEYS[5])
end
local epoch = redis.call('HGET', KEYS[4], 'epoch')
redis.call('EXPIRE', KEYS[4], ARGV[9])
local text = string.sub(ARGV[2], 1, -2)
    .. ',"seq":' .. seq .. ',"epoch":"' .. epoch .. '"}'
local event = string.sub(ARGV[1], 1, -2)
    .. ',"seq":' .. seq .. ',"epoch":"' .. epoch .. '","text":'
    .. cjson.encode(text) .. '}'
redis.call('SET', KEYS[1], event, 'PX', ARGV[3])
add_once(KEYS[2], ARGV[4], ARGV[2], ARGV[5], ARGV[6])
hold(KEYS[5], seq, ARGV[7], text, ARGV[11], ARGV[6])
redis.call('HSET', KEYS[3], 'last_seen', ARGV[7], 'clock_skew', ARGV[8])
redis.call('EXPIRE', KEYS[3], ARGV[9])
return {seq, epoch, text}
"""
)

# Bytes of random in a new epoch (it is their hex: EPOCH_LENGTH characters).
EPOCH_BYTES = 8
EPOCH_LENGTH = 2 * EPOCH_BYTES


# Per process, the offset of the last live snapshot it stored of each host.
_stored_offsets: LoopLocal[dict[str, tuple[int, str]]] = LoopLocal(dict)


def latest_key(host: str) -> str:
    """The key of a host's latest snapshot event."""
    return redis_key("host", host, "latest")


def history_key(host: str) -> str:
    """The key of a host's history."""
    return redis_key("host", host, "history")


def offsets_key(host: str) -> str:
    """The key of a host's offsets: its last `seq` and its `epoch`."""
    return redis_key("host", host, "offsets")


def stream_key(host: str) -> str:
    """The key of a host's live snapshots held by offset."""
    return redis_key("host", host, "stream")


def _history_window(ts: float) -> tuple[str, str, int]:
    """add_once's score, trim-before score and key lifetime for a timestamp."""
    keep = settings.METRICS_HISTORY_SECONDS
    return repr(ts), repr(ts - keep), int(keep) + 60


async def store_snapshot(
    event: dict[str, Any], ttl: float, clock_skew: bool = False
) -> dict[str, Any]:
    """Store a live snapshot event of its host and return it as stored: its text
    carrying its offset (`seq` and `epoch`, also fields of the event).

    It is stored as the latest (expiring after `ttl` s), in the history (once per
    timestamp), in the stream held for resuming sockets, and its arrival (now) as
    the host's last sight. History and stream keep METRICS_HISTORY_SECONDS of
    snapshots; older ones are trimmed here, so they stay bounded whatever the
    interval.
    """
    host = event["host"]
    now = time.time()
    keep = settings.METRICS_HISTORY_SECONDS
    meta = {key: value for key, value in event.items() if key != "text"}
    last_seq, last_epoch = _stored_offsets.get().get(host, (0, ""))
    seq, epoch, text = await _STORE.run(
        [
            latest_key(host),
            history_key(host),
            state_key(host),
            offsets_key(host),
            stream_key(host),
        ],
        [
            json.dumps(meta),
            event["text"],
            int(ttl * 1000),
            *_history_window(event["ts"]),
            repr(now),
            int(clock_skew),
            STATE_TTL_SECONDS,
            secrets.token_hex(EPOCH_BYTES),
            repr(now - keep),
            last_seq,
            last_epoch,
        ],
    )
    epoch = epoch.decode()
    _stored_offsets.get()[host] = (seq, epoch)
    return {**event, "seq": seq, "epoch": epoch, "text": text.decode()}


async def publish_snapshot(
    channel_layer: Any, event: dict[str, Any], ttl: float, clock_skew: bool = False
) -> dict[str, Any]:
    """Store a live snapshot event (store_snapshot), then send it as stored to its
    host's viewers; return it."""
    stored = await store_snapshot(event, ttl, clock_skew)
    await channel_layer.group_send(host_group(event["host"]), stored)
    return stored


async def store_backfill(host: str, ts: float, text: str) -> bool:
    """Put a snapshot taken while its agent was away into the host's history (once
    per timestamp); return whether it was new."""
    score, trim_before, ttl = _history_window(ts)
    return bool(
        await _ADD_ONCE.run([history_key(host)], [score, text, trim_before, ttl])
    )


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


# What a resuming socket missed, in one command: whether every live snapshot of
# the host after `since` is still held in `epoch`, and they come to at most
# `max_bytes`; if so their texts, oldest first; with the host's state. KEYS:
# offsets, stream, state. ARGV: since, epoch, max_bytes. Returns {recovered (0/1),
# the state's fields and values, the texts...}.
_MISSED = LuaScript(
    """
local state = redis.call('HGETALL', KEYS[3])
local offsets = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local seq, since = tonumber(offsets[1]), tonumber(ARGV[1])
if seq == nil or offsets[2] ~= ARGV[2] or since > seq then
    return {0, state}
end
local reply = {1, state}
if since == seq then
    return reply
end
local first = string.format('%d-0', since + 1)
local held = redis.call('XRANGE', KEYS[2], first, '+')
if held[1] == nil or held[1][1] ~= first then
    return {0, state}
end
local size = 0
for _, entry in ipairs(held) do
    size = size + #entry[2][4]
    if size > tonumber(ARGV[3]) then
        return {0, state}
    end
    reply[#reply + 1] = entry[2][4]
end
return reply
"""
)


class Missed(NamedTuple):
    """What a resuming socket missed: whether it is all held (`recovered`), the
    texts of those snapshots, oldest first, and the host's state."""

    recovered: bool
    texts: list[str]
    state: HostState


async def load_missed(host: str, since: int, epoch: str, max_bytes: int) -> Missed:
    """Return the live snapshots of a host after offset `since` of `epoch`, if
    every one of them is still held and they come to at most `max_bytes` (else
    none), and the host's state."""
    recovered, state, *texts = await _MISSED.run(
        [offsets_key(host), stream_key(host), state_key(host)],
        [since, epoch, max_bytes],
    )
    fields = dict(zip(state[::2], state[1::2], strict=True))
    replayed = _replayed.get()
    return Missed(
        bool(recovered),
        [
            replayed.share((host, epoch, seq), text)
            for seq, text in enumerate(texts, start=since + 1)
        ],
        parse_state(fields, time.time()),
    )


class ReplayedTexts:
    """The snapshots this process replayed lately, by offset, each one SharedText:
    the sockets that resume after a worker restart mostly missed the same ones,
    which are then framed (and compressed) once for all of them."""

    # Past this many, the oldest are forgotten (a few minutes of a few hosts).
    KEEP = 1024

    def __init__(self) -> None:
        self.texts: dict[tuple[str, str, int], SharedText] = {}

    def share(self, offset: tuple[str, str, int], raw: bytes) -> SharedText:
        """The one SharedText of the snapshot at `offset` (host, epoch, seq)."""
        text = self.texts.get(offset)
        if text is None:
            text = self.texts[offset] = SharedText(raw.decode())
            while len(self.texts) > self.KEEP:
                del self.texts[next(iter(self.texts))]
        return text


_replayed = LoopLocal(ReplayedTexts)


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
