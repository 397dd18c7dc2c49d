"""Publishing snapshots to the `metrics` group on a fixed schedule."""

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from metrics.collectors import HostCollector
from metrics.snapshots import build_snapshot
from metrics.store import save_latest

logger = logging.getLogger(__name__)

GROUP = "metrics"
EVENT_TYPE = "metrics.snapshot"

# How long the latest snapshot stays in Redis, in intervals: long enough to bridge
# one missed tick, short enough that a stopped publisher's figures are not served.
LATEST_TTL_INTERVALS = 3
# First retry after a failed publish, doubled up to one interval.
INITIAL_BACKOFF = 0.5
# Collect this long after start so CPU and rate figures cover a real period.
WARM_UP = 1.0

PUBLISH_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def make_event(snapshot: dict[str, Any], published_at: float) -> dict[str, Any]:
    """Return the channel-layer event carrying a snapshot serialised once."""
    return {
        "type": EVENT_TYPE,
        "ts": published_at,
        "text": json.dumps(snapshot, separators=(",", ":")),
    }


def next_tick(start: float, interval: float, now: float) -> float:
    """Return the first tick of the schedule start + k*interval strictly after now."""
    return start + (math.floor((now - start) / interval) + 1) * interval


class Publisher:
    """Collects a snapshot each tick and broadcasts it to the `metrics` group."""

    def __init__(
        self,
        channel_layer: Any,
        interval: float,
        collector: HostCollector | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel_layer = channel_layer
        self.interval = interval
        self.collector = collector or HostCollector()
        self.clock = clock
        self.wall_clock = wall_clock
        self.published = 0

    async def publish_once(self) -> dict[str, Any]:
        """Collect, store as latest and broadcast one snapshot; return the event."""
        data = await asyncio.to_thread(self.collector.collect)
        published_at = self.wall_clock()
        snapshot = build_snapshot(data, datetime.fromtimestamp(published_at, tz=UTC))
        event = make_event(snapshot, published_at)
        await save_latest(event, ttl=LATEST_TTL_INTERVALS * self.interval)
        await self.channel_layer.group_send(GROUP, event)
        self.published += 1
        logger.debug("Published snapshot %s", snapshot["timestamp"])
        return event

    async def run(self, stop: asyncio.Event) -> None:
        """Publish on the schedule until `stop` is set, riding out Redis outages."""
        start = self.clock() + min(WARM_UP, self.interval)
        tick = start
        backoff = 0.0
        while not await _wait(stop, tick - self.clock()):
            try:
                await self.publish_once()
            except PUBLISH_ERRORS as error:
                backoff = min(self.interval, backoff * 2 or INITIAL_BACKOFF)
                logger.warning(
                    "Publish failed (%s: %s); retrying in %.1f s",
                    type(error).__name__,
                    error,
                    backoff,
                )
                tick = self.clock() + backoff
                continue
            except Exception:
                logger.exception("Collecting a snapshot failed; trying next tick")
            else:
                if backoff:
                    logger.info("Redis is reachable again; publishing resumed")
                    backoff = 0.0
                    start = tick
            following = next_tick(start, self.interval, self.clock())
            missed = round((following - tick) / self.interval) - 1
            if missed > 0:
                logger.warning("Collection overran; skipped %d tick(s)", missed)
            tick = following


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; return True at once if `stop` is set."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
