"""The fleet event, built once per interval for the whole deployment.

Every web process with fleet viewers runs a FleetBuilder; shortly before each
tick of the interval (METRICS_INTERVAL, aligned to the wall clock so that the
processes tick together) it takes or renews the fleet leader lock, and only the
holder reads every enabled host's latest snapshot and state (one Redis round
trip), builds each host's entry and, at the tick, publishes one event to the
fleet group, stamped with the tick (two holders of one tick, for a moment,
make the same frame). No process of its own: a deployment of agents and web
workers needs nothing more. A leader that dies stops renewing; its lock lapses
after LEADER_TTL_INTERVALS, and the next tick of another process takes it over,
within two intervals."""

import asyncio
import contextlib
import logging
import time
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from core import instruments
from core.redis import get_redis
from metrics.directory import get_directory
from metrics.fleet import FLEET_GROUP, make_fleet_event, serialise_entries
from metrics.leadership import LeaderLock, fleet_leader_key
from metrics.store import read_latest_of

logger = logging.getLogger(__name__)

# The lock outlives its holder's last renewal by this many intervals: a holder
# that renews a little late keeps it, one that died loses it before the second
# tick after its last.
LEADER_TTL_INTERVALS = 1.5
# The leader reads and builds this long (a share of the interval, at most
# PREPARE_SECONDS) before its tick and publishes at the tick, so that the frame
# leaves when its timestamp says, as a snapshot does once it is taken.
PREPARE_SHARE = 0.1
PREPARE_SECONDS = 0.25


def fleet_interval() -> float:
    """Seconds between fleet frames: METRICS_INTERVAL."""
    return float(settings.METRICS_INTERVAL)


async def build_fleet_event(tick: float | None = None) -> dict[str, Any]:
    """The fleet event of `tick` (wall time; None: now): every enabled host's
    entry, read now in one Redis round trip."""
    built_at = time.time() if tick is None else tick
    hosts = sorted((await get_directory().current()).enabled)
    latests = await read_latest_of(hosts)
    return make_fleet_event(serialise_entries(latests), built_at, fleet_interval())


def next_tick(now: float, interval: float) -> float:
    """The first multiple of `interval` after wall time `now`."""
    return now - now % interval + interval


def preparation(interval: float) -> float:
    """Seconds before its tick that the leader starts on a frame."""
    return min(PREPARE_SHARE * interval, PREPARE_SECONDS)


class FleetBuilder:
    """This process's turn at building the fleet event, while it has fleet
    viewers."""

    def __init__(self, channel_layer: Any) -> None:
        self.channel_layer = channel_layer
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        """Begin ticking (once)."""
        if self.task is None:
            self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop ticking and give the lock up, so another process need not wait."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """On every tick, build and publish the fleet event if this process leads."""
        interval = fleet_interval()
        lock = LeaderLock(
            get_redis(), ttl=LEADER_TTL_INTERVALS * interval, key=fleet_leader_key()
        )
        ahead = preparation(interval)
        tick = next_tick(time.time() + ahead, interval)
        try:
            while True:
                await asyncio.sleep(max(tick - ahead - time.time(), 0.0))
                await self.tick(lock, tick)
                # The next tick, or the first it can prepare for if this took longer.
                tick = max(tick + interval, next_tick(time.time() + ahead, interval))
        finally:
            with contextlib.suppress(RedisError, OSError):
                await lock.release()

    async def tick(self, lock: LeaderLock, tick: float) -> None:
        """Publish the fleet event of `tick` if this process holds the lock; a
        failure is logged and the next tick tries again."""
        try:
            if await lock.acquire_or_renew():
                event = await build_fleet_event(tick)
                await asyncio.sleep(max(tick - time.time(), 0.0))
                await self.channel_layer.group_send(FLEET_GROUP, event)
                instruments.fleet_events_published.inc()
        except (RedisError, OSError) as error:
            logger.warning("Could not publish the fleet frame: %s", error)
        except Exception:
            logger.exception("Could not build the fleet frame")
