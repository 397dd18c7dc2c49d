"""The publisher on the real Redis layer: what it stores, sends, and when."""

import asyncio
import itertools
import json
import time

from django.conf import settings

from agent.collectors import HostCollector
from metrics.events import GROUP
from metrics.publisher import LATEST_TTL_INTERVALS, Publisher
from metrics.store import load_latest
from metrics.viewers import get_registry


class SlowCollector(HostCollector):
    """A real collector that takes a noticeable time, as a loaded host would."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def collect(self):
        time.sleep(self.delay)
        return super().collect()


async def subscribe(layer) -> str:
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    return channel


async def test_publish_once_broadcasts_and_stores_the_latest(redis_layer, clean_redis):
    channel = await subscribe(redis_layer)
    event = await Publisher(redis_layer, interval=2).publish_once()
    received = await asyncio.wait_for(redis_layer.receive(channel), 5)
    assert received["text"] == event["text"]
    assert (await load_latest())["text"] == event["text"]
    ttl = clean_redis.pttl(f"{settings.METRICS_REDIS_PREFIX}:latest")
    assert 0 < ttl <= LATEST_TTL_INTERVALS * 2 * 1000
    snapshot = json.loads(event["text"])
    assert snapshot["type"] == "metrics"
    assert set(snapshot["data"]) == {"cpu", "memory", "network", "disk"}


async def test_ticks_do_not_drift_by_the_collection_time(redis_layer):
    interval, delay, ticks = 0.4, 0.15, 6
    channel = await subscribe(redis_layer)
    get_registry().add()
    stop = asyncio.Event()
    publisher = Publisher(redis_layer, interval, collector=SlowCollector(delay))
    running = asyncio.create_task(publisher.run(stop))
    stamps = []
    for _ in range(ticks):
        stamps.append((await asyncio.wait_for(redis_layer.receive(channel), 5))["ts"])
    stop.set()
    await asyncio.wait_for(running, 5)
    span = stamps[-1] - stamps[0]
    # A schedule that slept `interval` after each collection would take
    # (ticks - 1) * (interval + delay) = 2.75 s; the fixed one takes 2.0 s.
    assert abs(span - (ticks - 1) * interval) < 0.3
    assert all(b > a for a, b in itertools.pairwise(stamps))


async def test_stop_ends_the_loop_promptly(redis_layer):
    stop = asyncio.Event()
    publisher = Publisher(redis_layer, interval=60)
    running = asyncio.create_task(publisher.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, 2)
    assert publisher.published == 0
