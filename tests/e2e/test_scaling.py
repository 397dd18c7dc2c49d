"""Several publishers and web workers on one Redis: one snapshot per interval, a
standby that takes over, an accurate viewer count, and no work while nobody watches."""

import itertools
import json
import signal
import time

import pytest

from core.redis import close_redis
from metrics.viewers import count_viewers
from tests.support import processes
from tests.support.clients import open_socket, receive_json
from tests.support.hosts import HOST, PONG, host_key
from tests.support.waiting import eventually, eventually_equal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def redis_in_test():
    """Lets the test use the project's own Redis helpers; closes them afterwards."""
    yield
    await close_redis()


async def arrivals(ws, count: int) -> list[tuple[float, str]]:
    """Receive `count` snapshots; return (arrival time, timestamp) of each."""
    received = []
    while len(received) < count:
        message = await receive_json(ws, within=10)
        received.append((time.monotonic(), message["timestamp"]))
    return received


async def viewers() -> int:
    """The default host's viewers, over every web process."""
    return await count_viewers(HOST)


def heartbeat_at(client, settings) -> float:
    raw = client.get(f"{settings.METRICS_REDIS_PREFIX}:publisher:heartbeat")
    return json.loads(raw)["at"] if raw else 0.0


def leader_and_standby(tmp_path, publishers):
    """Tell the two publishers apart by what each logged."""
    logs = [(tmp_path / f"publisher-{n}.log").read_text() for n in (1, 2)]
    leading = [n for n, log in enumerate(logs) if "Publishing every" in log]
    standing = [n for n, log in enumerate(logs) if "standing by" in log]
    assert len(leading) == 1, logs
    assert len(standing) == 1, logs
    return publishers[leading[0]], publishers[standing[0]]


async def test_two_publishers_give_one_snapshot_per_interval_and_fail_over(
    tmp_path, server, access_token
):
    interval = 1.0
    ws = await open_socket(server, access_token)
    with (
        processes.publisher(
            tmp_path, "--interval", "1", log_name="publisher-1.log"
        ) as first,
        processes.publisher(
            tmp_path, "--interval", "1", log_name="publisher-2.log"
        ) as second,
    ):
        before = await arrivals(ws, 5)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(before)]
        assert all(gap > interval * 0.6 for gap in gaps), gaps
        assert len({stamp for _, stamp in before}) == 5

        leader, standby = leader_and_standby(tmp_path, [first, second])
        killed_at = time.monotonic()
        leader.send_signal(signal.SIGKILL)
        after = await arrivals(ws, 3)
        assert after[0][0] - killed_at <= 3 * interval
        assert standby.poll() is None
    await ws.close()


async def test_publisher_idles_without_viewers_and_wakes_within_a_second(
    tmp_path, server, access_token, clean_redis, settings
):
    latest = host_key("latest")
    log = tmp_path / "publisher.log"
    # METRICS_IDLE_INTERVAL=0: nothing at all while nobody watches.
    with processes.publisher(
        tmp_path, "--interval", "2", "-v", "2", METRICS_IDLE_INTERVAL="0"
    ):
        await eventually(
            lambda: "Nobody is watching" in log.read_text(), 15, "never idle"
        )
        # Idle across more than two intervals: the leader keeps ticking (its
        # heartbeat moves) but neither collects nor publishes.
        first_beat = heartbeat_at(clean_redis, settings)
        await eventually(
            lambda: heartbeat_at(clean_redis, settings) > first_beat + 4.5,
            15,
            "the idle leader stopped ticking",
        )
        assert clean_redis.get(latest) is None
        assert "Published" not in log.read_text()

        ws = await open_socket(server, access_token)
        connected_at = time.monotonic()
        message = await receive_json(ws, within=5)
        assert message["type"] == "metrics"
        assert time.monotonic() - connected_at < 1.0
        assert "Published snapshot" in log.read_text()
        await ws.close()

        await eventually(
            lambda: log.read_text().count("Nobody is watching") == 2,
            10,
            "the publisher did not go idle when the last client left",
        )


async def test_viewer_count_follows_clients_and_forgets_a_killed_worker(
    tmp_path, access_token, clean_redis, redis_in_test
):
    with processes.daphne(tmp_path, METRICS_VIEWER_TTL="2") as (worker, port):
        sockets = [await open_socket(port, access_token) for _ in range(3)]
        for ws in sockets:
            await ws.send(json.dumps({"type": "ping"}))
            assert await receive_json(ws) == PONG
        await eventually_equal(viewers, 3, 10, "three clients were not counted")
        await sockets.pop().close()
        await eventually_equal(viewers, 2, 10, "closing was not counted")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
        await eventually_equal(viewers, 0, 10, "a killed worker's viewers linger")
        assert time.monotonic() - killed_at <= 3.5
