"""Snapshots taken while the server could not get them, kept for a bounded time and
sent once, oldest first, as backfill after the agent reconnects."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.protocol import BACKFILL_PACE_PER_SECOND, metrics_frame

logger = logging.getLogger(__name__)

DEFAULT_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Buffered:
    """A snapshot, and when it was taken on the monotonic clock."""

    taken_at: float
    snapshot: dict[str, Any]


class SnapshotBuffer:
    """Keeps snapshots for up to `seconds` after they were taken; older ones drop."""

    def __init__(
        self,
        seconds: float = DEFAULT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self.dropped = 0
        self._entries: deque[Buffered] = deque()
        # Whether dropping has been logged since the buffer was last empty.
        self._overflowing = False

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, snapshot: dict[str, Any]) -> None:
        """Keep a snapshot that could not be sent, taken now."""
        if self.seconds <= 0:
            self.dropped += 1
            return
        self._entries.append(Buffered(self.clock(), snapshot))
        self._drop_expired()

    def take_oldest(self) -> Buffered | None:
        """Remove and return the oldest snapshot still within the bound, if any."""
        self._drop_expired()
        if not self._entries:
            return None
        entry = self._entries.popleft()
        if not self._entries:
            self._overflowing = False
        return entry

    def put_back(self, entry: Buffered) -> None:
        """Return a snapshot that could not be sent after all: oldest again."""
        self._entries.appendleft(entry)
        self._drop_expired()

    def _drop_expired(self) -> None:
        oldest_kept = self.clock() - self.seconds
        while self._entries and self._entries[0].taken_at < oldest_kept:
            self._entries.popleft()
            self.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                logger.warning(
                    "Buffer full: dropping snapshots older than %g s (--buffer)",
                    self.seconds,
                )


async def send_backfill(
    buffer: SnapshotBuffer,
    send: Callable[[str], Awaitable[bool]],
    per_second: float = BACKFILL_PACE_PER_SECOND,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> int:
    """Send the buffered snapshots oldest first, flagged as backfill, at most
    `per_second`; return how many went. A snapshot leaves the buffer once sent, so
    none goes twice; the first that cannot be sent stays, and the rest with it."""
    sent = 0
    while buffer:
        if sent:
            await sleep(1 / per_second)
        entry = buffer.take_oldest()
        if entry is None:
            break
        if not await send(metrics_frame(entry.snapshot, backfill=True)):
            buffer.put_back(entry)
            break
        sent += 1
    return sent
