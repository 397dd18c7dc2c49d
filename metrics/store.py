"""Snapshots kept in Redis: the latest, for a client that connects between ticks, a
bounded history, for a dashboard that opens with the last minutes drawn, and the
leading publisher's heartbeat."""

import json
import socket
from typing import Any

from django.conf import settings

from core.frames import SharedText
from core.keys import redis_key
from core.loop_local import LoopLocal
from core.redis import get_redis, get_sync_redis
from core.singleflight import SingleFlight


async def store_snapshot(event: dict[str, Any], ttl: float) -> None:
    """Store a snapshot event as the latest (expiring after `ttl` s) and in history.

    History keeps METRICS_HISTORY_SECONDS of snapshots; older ones are trimmed here,
    so the set stays bounded whatever the interval.
    """
    keep = settings.METRICS_HISTORY_SECONDS
    history = redis_key("history")
    async with get_redis().pipeline(transaction=False) as pipe:
        pipe.set(redis_key("latest"), json.dumps(event), px=int(ttl * 1000))
        pipe.zadd(history, {event["text"]: event["ts"]})
        pipe.zremrangebyscore(history, "-inf", f"({event['ts'] - keep}")
        pipe.expire(history, int(keep) + 60)
        await pipe.execute()


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


def load_history(since: float) -> tuple[list[str], dict[str, Any] | None]:
    """Return the snapshot texts published since wall time `since`, oldest first,
    with the publisher's heartbeat."""
    client = get_sync_redis()
    with client.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(redis_key("history"), since, "+inf")
        pipe.get(redis_key("publisher", "heartbeat"))
        texts, beat = pipe.execute()
    return [text.decode() for text in texts], parse_heartbeat(beat)


_latest_reads: LoopLocal[SingleFlight[dict[str, Any] | None]] = LoopLocal(SingleFlight)


async def load_latest(not_before: float | None = None) -> dict[str, Any] | None:
    """Return the latest snapshot event, or None if there is none (or it is garbled).

    Callers that overlap share one read, if it is sent no earlier than `not_before`
    (a time.monotonic() value): a storm of connects costs a few GETs, not one each,
    and none gets an answer older than it asked for. The event's text is a
    SharedText, framed once for all of them.
    """
    return await _latest_reads.get().run("latest", _read_latest, not_before)


async def _read_latest() -> dict[str, Any] | None:
    raw = await get_redis().get(redis_key("latest"))
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
