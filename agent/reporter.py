"""Snapshots on the cadence the server asks for (live, idle or silent), on a
drift-free schedule, each handed to the server or, when it cannot be sent, to the
buffer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from agent.buffer import SnapshotBuffer
from agent.collectors import HostCollector
from agent.protocol import MAX_FRAME_BYTES, Cadence, metrics_frame
from agent.schedule import next_tick
from agent.snapshots import build_snapshot
from agent.waiting import first_of

logger = logging.getLogger(__name__)

# A snapshot after going live covers at least this long: baselines are taken at the
# switch, and the snapshot this much later (as the local publisher does on waking).
WARM_UP = 0.5
# Room left in a frame for the backfill flag, so a snapshot that fits live fits later.
BACKFILL_FLAG_ROOM = 32


class Reporter:
    """Takes a snapshot on each tick of the current cadence and delivers it."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[bool]],
        buffer: SnapshotBuffer,
        interval: float,
        collector: HostCollector | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.send = send
        self.buffer = buffer
        # Until the server's first hello: snapshots every `interval`, to the buffer.
        self.interval = interval
        self.collector = collector or HostCollector()
        self.clock = clock
        self.wall_clock = wall_clock
        self.cadence: Cadence | None = None
        self.next_tick: float | None = None
        self.primed_at: float | None = None
        self._latest: Cadence | None = None
        self._changed = asyncio.Event()

    @property
    def period(self) -> float | None:
        """Seconds between snapshots now; None while the server wants none."""
        return self.interval if self.cadence is None else self.cadence.period

    def follow(self, cadence: Cadence) -> None:
        """Take up the server's latest cadence (from a hello or a config frame)."""
        self._latest = cadence
        self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Report on the current cadence until `stop` is set."""
        await self._prime()
        self.next_tick = self.clock() + self.interval
        while not stop.is_set():
            await first_of(
                stop.wait(), self._changed.wait(), within=self._seconds_to_next_tick()
            )
            if stop.is_set():
                return
            if self._changed.is_set():
                self._changed.clear()
                if self._latest is not None and self._latest != self.cadence:
                    await self.change_to(self._latest)
                continue
            due = self.next_tick
            period = self.period
            if due is None or period is None:
                continue
            await self.report()
            self.next_tick = next_tick(due, period, self.clock())
            missed = round((self.next_tick - due) / period) - 1
            if missed > 0:
                logger.warning("Collection overran; skipped %d tick(s)", missed)

    async def report(self) -> None:
        """Take one snapshot and send it, or buffer it when it cannot be sent."""
        try:
            snapshot = await self._take()
        except Exception:
            logger.exception("Collecting a snapshot failed; trying next tick")
            return
        text = metrics_frame(snapshot)
        if len(text.encode()) > MAX_FRAME_BYTES - BACKFILL_FLAG_ROOM:
            logger.warning(
                "Dropped a snapshot of %d bytes: frames are limited to %d",
                len(text.encode()),
                MAX_FRAME_BYTES,
            )
            return
        if not await self.send(text):
            self.buffer.add(snapshot)

    async def change_to(self, cadence: Cadence) -> None:
        """Follow a new cadence: log it, and move the next tick."""
        before, before_period = self.cadence, self.period
        self.cadence = cadence
        period = self.period
        if before is None or before.live != cadence.live or before_period != period:
            logger.info(describe_cadence(cadence))
        if cadence.live and not (before is not None and before.live):
            # Fresh baselines now, so the first live snapshot covers a real interval.
            await self._prime()
            self.next_tick = self.clock() + WARM_UP
            return
        if period == before_period:
            return
        if period is None:
            self.next_tick = None
            return
        if self.primed_at is None or self.clock() - self.primed_at > period:
            # Baselines from long ago would make the next snapshot an average over
            # all that time, not over its period.
            await self._prime()
        self.next_tick = self.clock() + period

    async def _take(self) -> dict[str, Any]:
        data = await asyncio.to_thread(self.collector.collect)
        self.primed_at = self.clock()
        return build_snapshot(data, datetime.fromtimestamp(self.wall_clock(), tz=UTC))

    async def _prime(self) -> None:
        await asyncio.to_thread(self.collector.prime)
        self.primed_at = self.clock()

    def _seconds_to_next_tick(self) -> float | None:
        if self.next_tick is None or self.period is None:
            return None
        return max(self.next_tick - self.clock(), 0.0)


def describe_cadence(cadence: Cadence) -> str:
    """Say in a line what the agent sends under a cadence."""
    if cadence.live:
        return f"Live: a snapshot every {cadence.interval:g} s"
    if cadence.period is None:
        return "Idle: nobody is watching; no snapshots until somebody does"
    return f"Idle: nobody is watching; a snapshot every {cadence.period:g} s"
