"""The agent as one asyncio program: the transport, the reporter and the backfill
side by side until SIGTERM or Ctrl-C, or until a newer agent replaces this one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import Any

from agent.buffer import SnapshotBuffer, send_backfill
from agent.protocol import Cadence
from agent.reporter import Reporter
from agent.transport import Replaced, Transport
from agent.waiting import first_of

logger = logging.getLogger(__name__)

# Exit statuses: stopped by a signal; bad flags (argparse's); replaced by an agent
# with the same token, which must not be restarted (RestartPreventExitStatus=3).
EXIT_STOPPED = 0
EXIT_USAGE = 2
EXIT_REPLACED = 3

# What the server's defaults are until its hello says otherwise: METRICS_INTERVAL
# and METRICS_IDLE_INTERVAL.
DEFAULT_INTERVAL = 5.0
DEFAULT_IDLE_INTERVAL = 60.0


async def run_agent(
    url: str, token: str, interval: float | None, buffer_seconds: float
) -> int:
    """Stream snapshots to the server at `url` until stopped; return the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    first = Cadence(interval or DEFAULT_INTERVAL, False, DEFAULT_IDLE_INTERVAL)
    buffer = SnapshotBuffer(buffer_seconds)
    transport = Transport(url, token, first)
    reporter = Reporter(transport.send, buffer, first.interval)
    transport.on_cadence = reporter.follow
    tasks = [
        asyncio.create_task(transport.run(stop), name="transport"),
        asyncio.create_task(reporter.run(stop), name="reporter"),
        asyncio.create_task(backfill(buffer, transport, stop), name="backfill"),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*tasks)
    except Replaced as replaced:
        logger.error(
            "Replaced: another agent connected with this host's token (4010 %s). "
            "Exiting with status %d and not reconnecting, so that the two do not "
            "take turns; run one agent per token.",
            replaced,
            EXIT_REPLACED,
        )
        return EXIT_REPLACED
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if buffer:
        logger.info("Stopped; %d buffered snapshot(s) were not sent", len(buffer))
    else:
        logger.info("Stopped")
    return EXIT_STOPPED


async def backfill(
    buffer: SnapshotBuffer, transport: Transport, stop: asyncio.Event
) -> None:
    """On each connection, send what was buffered before it, until stopped."""
    while await _until(transport.wait_ready(), stop):
        if buffer:
            logger.info("Sending %d buffered snapshot(s) as backfill", len(buffer))
            sent = await send_backfill(buffer, transport.send)
            left = f"; {len(buffer)} wait for the next connection" if buffer else ""
            logger.info("Backfill: %d snapshot(s) sent%s", sent, left)
        if transport.ready and not await _until(transport.wait_lost(), stop):
            return


async def _until(waiting: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await `waiting` unless `stop` is set first; return False if stopped."""
    await first_of(waiting, stop.wait())
    return not stop.is_set()
