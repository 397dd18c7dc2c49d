"""The local publisher: this machine's snapshots, published as host
METRICS_HOST_NAME straight to Redis on a fixed schedule, live while somebody
watches that host and every METRICS_IDLE_INTERVAL seconds while nobody does (the
same rule agents follow)."""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from agent.collectors import HostCollector
from agent.schedule import next_tick
from agent.snapshots import build_snapshot
from core.redis import get_redis
from metrics.events import host_group, make_event
from metrics.hoststate import LOST, HostLease
from metrics.leadership import LeaderLock, host_leader_key
from metrics.store import LATEST_TTL_INTERVALS, save_heartbeat, store_snapshot
from metrics.viewers import count_viewers

logger = logging.getLogger(__name__)

# The leader lock outlives its last renewal by this many intervals; a standby looks
# twice an interval, so it takes over within 2.5 intervals of the leader's death.
LEADER_TTL_INTERVALS = 2
# First retry after a failed publish, doubled up to one interval.
INITIAL_BACKOFF = 0.5
# A snapshot covers at least this long since its baseline (after starting, waking,
# or taking over), so its rates and percentages cover a real period.
WARM_UP = 0.5
# While nobody watches, look this often for a first viewer.
IDLE_POLL = 0.25
# The publisher's hold on its host (metrics.hoststate) outlives its last renewal by
# this many intervals (and a second): it renews it at every step.
LEASE_INTERVALS = 2

PUBLISH_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class Publisher:
    """Broadcasts a snapshot of this machine, as host `host`, to that host's group
    every interval while somebody watches it, every `idle_interval` while nobody
    does (0: not at all).

    Only the holder of the host's leader lock publishes; the others stand by.
    Redis outages are logged and retried with backoff.
    """

    def __init__(
        self,
        channel_layer: Any,
        interval: float,
        collector: HostCollector | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        host: str | None = None,
        idle_interval: float | None = None,
    ) -> None:
        self.channel_layer = channel_layer
        self.interval = interval
        self.host = host or settings.METRICS_HOST_NAME
        if idle_interval is None:
            idle_interval = settings.METRICS_IDLE_INTERVAL
        self.idle_interval = idle_interval
        # Whether somebody watches the host, as of the last step.
        self.live = False
        self.lease = HostLease(
            self.host,
            f"publisher:{uuid.uuid4().hex}",
            seconds=LEASE_INTERVALS * interval + 1,
        )
        self.collector = collector or HostCollector(
            net_exclude=settings.METRICS_NET_EXCLUDE,
            disk_exclude=settings.METRICS_DISK_EXCLUDE,
        )
        self.clock = clock
        self.wall_clock = wall_clock
        self.published = 0
        self.state = "starting"
        # The next tick of the publishing schedule; None while not publishing.
        self.next_tick: float | None = None
        # When the collector's baselines were last taken (clock time).
        self.primed_at: float | None = None

    @property
    def period(self) -> float:
        """Seconds between snapshots now (0: none while nobody watches)."""
        return self.interval if self.live else self.idle_interval

    async def publish_once(self) -> dict[str, Any]:
        """Collect, store as latest and broadcast one snapshot; return the event."""
        data = await asyncio.to_thread(self.collector.collect)
        self.primed_at = self.clock()
        published_at = self.wall_clock()
        snapshot = build_snapshot(data, datetime.fromtimestamp(published_at, tz=UTC))
        event = make_event(snapshot, published_at, self.host, self.interval)
        ttl = LATEST_TTL_INTERVALS * (self.period or self.interval)
        await store_snapshot(event, ttl=ttl)
        await self.channel_layer.group_send(host_group(self.host), event)
        self.published += 1
        logger.debug("Published snapshot %s", snapshot["timestamp"])
        return event

    async def run(self, stop: asyncio.Event) -> None:
        """Publish on the schedule until `stop` is set, riding out Redis outages."""
        lock = LeaderLock(
            get_redis(),
            ttl=LEADER_TTL_INTERVALS * self.interval,
            key=host_leader_key(self.host),
        )

        due = self.clock()
        backoff = 0.0
        try:
            while not await _wait(stop, due - self.clock()):
                try:
                    due = await self.step(lock)
                except PUBLISH_ERRORS as error:
                    backoff = min(self.interval, backoff * 2 or INITIAL_BACKOFF)
                    logger.warning(
                        "Redis unavailable (%s: %s); retrying in %.1f s",
                        type(error).__name__,
                        error,
                        backoff,
                    )
                    self.next_tick = None
                    due = self.clock() + backoff
                    continue
                if backoff:
                    logger.info("Redis is reachable again; publishing resumed")
                    backoff = 0.0
        finally:
            with contextlib.suppress(*PUBLISH_ERRORS):
                await lock.release()
                await self.lease.release()

    async def step(self, lock: LeaderLock) -> float:
        """Do what is due now; return the clock time of the next step."""
        if not await lock.acquire_or_renew():
            self._enter("standby", "Another publisher is the leader; standing by")
            self.next_tick = None
            # Fresh baselines let a standby that takes over publish at once.
            await self.prime()
            return self.clock() + self.interval / 2
        await save_heartbeat(self.wall_clock(), self.interval)
        # Claimed on taking the lead (and again if another sender took it, or Redis
        # lost it), renewed after, with the host's viewers counted alongside.
        viewers = None
        if self.state not in ("starting", "standby"):
            viewers = await self.lease.renew_counting()
        if viewers is None or viewers == LOST:
            viewers = await count_viewers(self.host)
            await self.lease.claim(self.interval, self.idle_interval, viewers > 0)
        live = viewers > 0
        if live != self.live or self.state not in ("publishing", "idle"):
            self.live = live
            self.next_tick = None
        if not self.period:
            self._enter("idle", "Nobody is watching; collection paused")
            return self.clock() + IDLE_POLL
        if self.next_tick is None:
            if live:
                self._enter("publishing", f"Publishing every {self.interval:g} s")
            else:
                self._enter(
                    "idle",
                    f"Nobody is watching; a snapshot every {self.idle_interval:g} s",
                )
            if self.primed_at is None or self.clock() - self.primed_at > self.period:
                await self.prime()
            # Baselines older than a period were replaced; recent ones still need
            # WARM_UP behind them before the first snapshot.
            self.next_tick = max(self.clock(), self.primed_at + WARM_UP)
        if self.next_tick > self.clock():
            return self.wake_at(self.next_tick)
        due = self.next_tick
        try:
            await self.publish_once()
        except PUBLISH_ERRORS:
            raise
        except Exception:
            logger.exception("Collecting a snapshot failed; trying next tick")
        self.next_tick = next_tick(due, self.period, self.clock())
        missed = round((self.next_tick - due) / self.period) - 1
        if missed > 0:
            logger.warning("Collection overran; skipped %d tick(s)", missed)
        return self.wake_at(self.next_tick)

    def wake_at(self, tick: float) -> float:
        """When to step next: at the tick, or sooner while idle, so that a first
        viewer is seen within IDLE_POLL."""
        return tick if self.live else min(tick, self.clock() + IDLE_POLL)

    async def prime(self) -> None:
        """Take new counter baselines for the next snapshot's rates."""
        await asyncio.to_thread(self.collector.prime)
        self.primed_at = self.clock()

    def _enter(self, state: str, message: str) -> None:
        if state != self.state:
            self.state = state
            logger.info(message)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; return True at once if `stop` is set."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the wait ends.
            async with asyncio.timeout(seconds):
                await stop.wait()
    return stop.is_set()
