import json

from agent.buffer import SnapshotBuffer, send_backfill


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot(number: int) -> dict:
    return {"type": "metrics", "timestamp": f"t{number}", "data": {"n": number}}


class Server:
    """Receives frames; refuses them from the `fail_at`-th on (a lost connection)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.frames: list[dict] = []
        self.fail_at = fail_at

    async def send(self, text: str) -> bool:
        if self.fail_at is not None and len(self.frames) >= self.fail_at:
            return False
        self.frames.append(json.loads(text))
        return True


async def no_sleep(seconds: float) -> None:
    pass


def test_snapshots_older_than_the_bound_are_dropped_oldest_first():
    clock = Clock()
    buffer = SnapshotBuffer(seconds=10, clock=clock)
    for number in range(15):
        buffer.add(snapshot(number))
        clock.now += 1
    # Taken at 1000..1014, now 1015: those of the last 10 s remain.
    kept = []
    while (entry := buffer.take_oldest()) is not None:
        kept.append(entry.snapshot["data"]["n"])
    assert kept == list(range(5, 15))
    assert buffer.dropped == 5


def test_a_zero_second_buffer_keeps_nothing():
    buffer = SnapshotBuffer(seconds=0)
    buffer.add(snapshot(1))
    assert len(buffer) == 0


async def test_backfill_goes_oldest_first_flagged_and_leaves_the_buffer():
    buffer = SnapshotBuffer(seconds=60)
    for number in range(5):
        buffer.add(snapshot(number))
    server = Server()
    assert await send_backfill(buffer, server.send, sleep=no_sleep) == 5
    assert [frame["data"]["n"] for frame in server.frames] == [0, 1, 2, 3, 4]
    assert all(frame["backfill"] is True for frame in server.frames)
    assert set(server.frames[0]) == {"type", "timestamp", "data", "backfill"}
    # Sent once: a second backfill has nothing left to send.
    assert len(buffer) == 0
    assert await send_backfill(buffer, server.send, sleep=no_sleep) == 0
    assert len(server.frames) == 5


async def test_a_snapshot_that_could_not_be_sent_stays_for_the_next_connection():
    buffer = SnapshotBuffer(seconds=60)
    for number in range(5):
        buffer.add(snapshot(number))
    first = Server(fail_at=2)
    assert await send_backfill(buffer, first.send, sleep=no_sleep) == 2
    buffer.add(snapshot(5))  # taken while disconnected again
    second = Server()
    assert await send_backfill(buffer, second.send, sleep=no_sleep) == 4
    sent = [frame["data"]["n"] for frame in first.frames + second.frames]
    assert sent == [0, 1, 2, 3, 4, 5]


async def test_backfill_is_paced_at_twenty_a_second():
    buffer = SnapshotBuffer(seconds=60)
    for number in range(4):
        buffer.add(snapshot(number))
    pauses = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    await send_backfill(buffer, Server().send, sleep=sleep)
    assert pauses == [0.05, 0.05, 0.05]


async def test_snapshots_that_expire_while_waiting_are_not_sent():
    clock = Clock()
    buffer = SnapshotBuffer(seconds=10, clock=clock)
    buffer.add(snapshot(1))
    clock.now += 5
    buffer.add(snapshot(2))
    clock.now += 6  # the first is now 11 s old
    server = Server()
    await send_backfill(buffer, server.send, sleep=no_sleep)
    assert [frame["data"]["n"] for frame in server.frames] == [2]
