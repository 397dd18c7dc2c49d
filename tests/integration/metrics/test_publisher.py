"""The publisher on the real Redis layer: what it stores, sends, and when."""

import asyncio
import itertools
import json
import time

import pytest

from agent.collectors import HostCollector
from metrics.hoststate import load_host_state
from metrics.publisher import LATEST_TTL_INTERVALS, WARM_UP, Publisher
from metrics.store import load_latest
from metrics.viewers import count_viewers, get_registry
from tests.support.hosts import GROUP, HOST, host_key
from tests.support.waiting import eventually_equal


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
    event = await Publisher(redis_layer, interval=2, idle_interval=0).publish_once()
    received = await asyncio.wait_for(redis_layer.receive(channel), 5)
    assert received["text"] == event["text"]
    assert (await load_latest(HOST)).event["text"] == event["text"]
    assert json.loads(event["text"])["seq"] == received["seq"] == 1
    ttl = clean_redis.pttl(host_key("latest"))
    assert 0 < ttl <= LATEST_TTL_INTERVALS * 2 * 1000
    snapshot = json.loads(event["text"])
    assert snapshot["type"] == "metrics"
    assert set(snapshot["data"]) == {"cpu", "memory", "network", "disk"}


async def test_ticks_do_not_drift_by_the_collection_time(redis_layer):
    interval, delay, ticks = 0.4, 0.15, 6
    channel = await subscribe(redis_layer)
    get_registry().add(HOST)
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


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class RecordingCollector:
    """Records how long each collect() covers since its baseline (on the clock)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.baseline_at = clock()
        self.covered: list[float] = []

    def prime(self) -> None:
        self.baseline_at = self.clock()

    def collect(self) -> dict:
        self.covered.append(self.clock() - self.baseline_at)
        self.baseline_at = self.clock()
        return {"cpu": {}, "memory": {}, "network": {}, "disk": {}}


class ScriptedLock:
    """The leader lock, won or lost as the test scripts it."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)

    async def acquire_or_renew(self) -> bool:
        return self.answers.pop(0)


async def viewers(count: int) -> None:
    registry = get_registry()
    while registry.count < count:
        registry.add(HOST)
    while registry.count > count:
        registry.remove(HOST)
    await eventually_equal(
        lambda: count_viewers(HOST), count, 5, f"{count} viewers not recorded"
    )


async def run_until_published(publisher: Publisher, lock, clock: FakeClock) -> None:
    """Step the publisher on its own schedule until it publishes once more."""
    published = publisher.published
    for _ in range(5):
        due = await publisher.step(lock)
        if publisher.published > published:
            return
        clock.now = max(clock.now, due)
    raise AssertionError("the publisher did not publish")


async def test_first_snapshot_after_a_short_idle_spell_covers_a_real_interval(
    redis_layer,
):
    clock = FakeClock()
    collector = RecordingCollector(clock)
    publisher = Publisher(redis_layer, 5, collector=collector, clock=clock)
    lock = ScriptedLock(*[True] * 20)
    await viewers(1)
    await run_until_published(publisher, lock, clock)
    await viewers(0)
    clock.now += 0.1
    await publisher.step(lock)
    assert publisher.state == "idle"
    await viewers(1)
    clock.now += 0.1
    await run_until_published(publisher, lock, clock)
    assert len(collector.covered) == 2
    assert min(collector.covered) >= WARM_UP


async def test_a_standby_taking_over_publishes_over_a_real_interval(redis_layer):
    clock = FakeClock()
    collector = RecordingCollector(clock)
    publisher = Publisher(redis_layer, 0.5, collector=collector, clock=clock)
    lock = ScriptedLock(False, *[True] * 20)
    await viewers(1)
    due = await publisher.step(lock)  # standing by: fresh baselines
    assert publisher.state == "standby"
    clock.now = due
    await run_until_published(publisher, lock, clock)
    assert collector.covered[0] >= WARM_UP


async def test_snapshots_leave_out_the_excluded_interfaces_and_disks(
    redis_layer, settings
):
    settings.METRICS_NET_EXCLUDE = ("*",)
    settings.METRICS_DISK_EXCLUDE = ("*",)
    event = await Publisher(redis_layer, interval=2).publish_once()
    data = json.loads(event["text"])["data"]
    assert data["network"]["interfaces"] == {}
    assert data["network"]["bytes_sent_per_sec"] is None
    assert data["disk"]["io"] == {}


async def test_snapshots_leave_out_loopback_by_default(redis_layer):
    event = await Publisher(redis_layer, interval=2).publish_once()
    interfaces = json.loads(event["text"])["data"]["network"]["interfaces"]
    assert "lo" not in interfaces


async def test_nobody_watching_publishes_every_idle_interval(redis_layer):
    channel = await subscribe(redis_layer)
    stop = asyncio.Event()
    publisher = Publisher(redis_layer, 0.5, idle_interval=1.0)
    running = asyncio.create_task(publisher.run(stop))
    stamps = [
        (await asyncio.wait_for(redis_layer.receive(channel), 5))["ts"]
        for _ in range(3)
    ]
    stop.set()
    await asyncio.wait_for(running, 5)
    assert publisher.state == "idle"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(0.8 < gap < 1.3 for gap in gaps), gaps


async def test_an_idle_interval_of_0_publishes_nothing_until_watched(redis_layer):
    channel = await subscribe(redis_layer)
    stop = asyncio.Event()
    publisher = Publisher(redis_layer, 0.5, idle_interval=0)
    running = asyncio.create_task(publisher.run(stop))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(redis_layer.receive(channel), 1.5)
    get_registry().add(HOST)
    asked = time.monotonic()
    await asyncio.wait_for(redis_layer.receive(channel), 5)
    stop.set()
    await asyncio.wait_for(running, 5)
    # The first viewer is seen within IDLE_POLL, the snapshot WARM_UP later.
    assert time.monotonic() - asked < 1.0 + 0.5


async def test_the_publisher_holds_its_host_while_it_runs(redis_layer, clean_redis):
    stop = asyncio.Event()
    publisher = Publisher(redis_layer, 0.5, idle_interval=0)
    running = asyncio.create_task(publisher.run(stop))

    async def online() -> bool:
        return (await load_host_state(HOST)).online

    await eventually_equal(online, True, 5, "the publisher's host is not online")
    # Its interval, as GET /api/hosts shows it, even in a Redis that had nothing.
    assert (await load_host_state(HOST)).interval == 0.5
    stop.set()
    await asyncio.wait_for(running, 5)
    assert not (await load_host_state(HOST)).online
