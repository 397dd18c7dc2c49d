import json
import logging

from agent.buffer import SnapshotBuffer
from agent.protocol import Cadence
from agent.reporter import WARM_UP, Reporter

DATA = {"cpu": {}, "memory": {}, "network": {}, "disk": {}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Collector:
    """Counts when baselines are taken and snapshots collected."""

    def __init__(self, data: dict | None = None) -> None:
        self.data = data or DATA
        self.primed = 0
        self.collected = 0

    def prime(self) -> None:
        self.primed += 1

    def collect(self) -> dict:
        self.collected += 1
        return self.data


class Sender:
    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.frames: list[dict] = []

    async def send(self, text: str) -> bool:
        if self.connected:
            self.frames.append(json.loads(text))
        return self.connected


def reporter(sender: Sender, clock: Clock, collector: Collector | None = None):
    return Reporter(
        sender.send,
        SnapshotBuffer(60, clock=clock),
        interval=5.0,
        collector=collector or Collector(),
        clock=clock,
        wall_clock=lambda: 1768833005.25,
    )


async def test_a_snapshot_goes_to_the_server_in_the_seeds_format():
    sender = Sender()
    subject = reporter(sender, Clock())
    await subject.report()
    assert sender.frames == [
        {"type": "metrics", "timestamp": "2026-01-19T14:30:05.250Z", "data": DATA}
    ]
    assert len(subject.buffer) == 0


async def test_a_snapshot_that_cannot_be_sent_is_buffered():
    sender = Sender(connected=False)
    subject = reporter(sender, Clock())
    await subject.report()
    await subject.report()
    assert len(subject.buffer) == 2


async def test_a_snapshot_too_big_for_a_frame_is_dropped_with_a_warning(caplog):
    sender = Sender(connected=False)
    huge = {**DATA, "disk": {"partitions": {"x" * 300_000: {}}}}
    subject = reporter(sender, Clock(), Collector(huge))
    with caplog.at_level(logging.WARNING):
        await subject.report()
    assert len(subject.buffer) == 0
    assert "frames are limited to 262144" in caplog.text


async def test_going_live_takes_baselines_and_reports_after_the_warm_up():
    clock, collector = Clock(), Collector()
    subject = reporter(Sender(), clock, collector)
    await subject.change_to(Cadence(interval=1.0, live=False, idle_interval=60.0))
    clock.now += 30
    primed = collector.primed
    await subject.change_to(Cadence(interval=1.0, live=True, idle_interval=60.0))
    assert collector.primed == primed + 1
    assert subject.next_tick == clock.now + WARM_UP
    assert subject.period == 1.0


async def test_going_idle_reports_every_idle_interval():
    clock = Clock()
    subject = reporter(Sender(), clock)
    await subject.change_to(Cadence(interval=1.0, live=True, idle_interval=60.0))
    await subject.change_to(Cadence(interval=1.0, live=False, idle_interval=60.0))
    assert subject.period == 60.0
    assert subject.next_tick == clock.now + 60.0


async def test_idle_interval_zero_reports_nothing():
    subject = reporter(Sender(), Clock())
    await subject.change_to(Cadence(interval=1.0, live=False, idle_interval=0.0))
    assert subject.period is None
    assert subject.next_tick is None


async def test_waking_from_silence_takes_fresh_baselines():
    clock, collector = Clock(), Collector()
    subject = reporter(Sender(), clock, collector)
    await subject.change_to(Cadence(interval=1.0, live=True, idle_interval=0.0))
    await subject.change_to(Cadence(interval=1.0, live=False, idle_interval=0.0))
    clock.now += 3600
    primed = collector.primed
    await subject.change_to(Cadence(interval=1.0, live=False, idle_interval=10.0))
    assert collector.primed == primed + 1
    assert subject.next_tick == clock.now + 10.0


async def test_the_same_cadence_again_keeps_the_schedule():
    clock, collector = Clock(), Collector()
    subject = reporter(Sender(), clock, collector)
    live = Cadence(interval=1.0, live=True, idle_interval=60.0)
    await subject.change_to(live)
    tick = subject.next_tick
    clock.now += 0.2
    await subject.change_to(live)  # a hello after a reconnect, nothing changed
    assert subject.next_tick == tick
    assert collector.primed == 1


async def test_each_change_of_cadence_is_logged_once(caplog):
    subject = reporter(Sender(), Clock())
    with caplog.at_level(logging.INFO, logger="agent"):
        await subject.change_to(Cadence(1.0, True, 60.0))
        await subject.change_to(Cadence(1.0, True, 60.0))
        await subject.change_to(Cadence(1.0, False, 60.0))
        await subject.change_to(Cadence(1.0, False, 0.0))
    assert caplog.messages == [
        "Live: a snapshot every 1 s",
        "Idle: nobody is watching; a snapshot every 60 s",
        "Idle: nobody is watching; no snapshots until somebody does",
    ]
