"""The worker: publish this machine's snapshots, as host METRICS_HOST_NAME, every
interval."""

import argparse
import asyncio
import logging
import signal

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from core.bounds import parse_interval
from core.redis import close_redis
from metrics.hosts import register_local_host
from metrics.publisher import PUBLISH_ERRORS, WARM_UP, Publisher

logger = logging.getLogger("metrics")

VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO}


class Command(BaseCommand):
    help = (
        "Collect a psutil snapshot of this machine and broadcast it, as host "
        "METRICS_HOST_NAME (registered if new), to its WebSocket viewers every "
        "interval, until SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--interval",
            type=parse_interval,
            default=None,
            help="Seconds between snapshots (default: METRICS_INTERVAL, "
            f"now {settings.METRICS_INTERVAL:g}).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Publish a single snapshot and exit.",
        )

    def handle(self, *args, interval: float | None, once: bool, **options) -> None:
        logger.setLevel(VERBOSITY_LEVELS.get(options["verbosity"], logging.DEBUG))
        interval = interval or settings.METRICS_INTERVAL
        try:
            register_local_host(settings.METRICS_HOST_NAME)
        except DatabaseError as error:
            raise CommandError(
                f"Could not register host {settings.METRICS_HOST_NAME!r} in the "
                f"database (DATABASE_URL; migrated?): {error}"
            ) from None
        if once:
            asyncio.run(self.publish_once(interval))
        else:
            asyncio.run(self.publish_forever(interval))

    async def publish_once(self, interval: float) -> None:
        publisher = Publisher(get_channel_layer(), interval)
        await asyncio.sleep(min(WARM_UP, interval))
        try:
            event = await publisher.publish_once()
        except PUBLISH_ERRORS as error:
            raise CommandError(f"Could not publish to Redis: {error}") from None
        finally:
            await close_redis()
        logger.info("Published one snapshot (%d bytes)", len(event["text"]))

    async def publish_forever(self, interval: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        publisher = Publisher(get_channel_layer(), interval)
        logger.info(
            "Publishing snapshots of host %r every %g s while watched; stop with "
            "Ctrl-C",
            publisher.host,
            interval,
        )
        try:
            await publisher.run(stop)
        finally:
            await close_redis()
        logger.info("Stopped after %d snapshot(s)", publisher.published)
