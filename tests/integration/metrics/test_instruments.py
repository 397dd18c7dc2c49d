"""The service's own metrics move with what they count: a viewer's socket, a
snapshot written to the sockets and how late, a frame refused (this process's
registry)."""

import time

import pytest
from prometheus_client import REGISTRY

from tests.support.hosts import GROUP, HOST, host_event
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_host_online"),
]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_viewers_socket_is_counted_while_open(communicator, access_token):
    open_before = value("monitor_viewer_sockets_open")
    watching_before = value("monitor_viewers", host=HOST)
    comm = communicator(f"token={access_token}")
    assert (await comm.connect())[0]
    assert value("monitor_viewer_sockets_open") == open_before + 1
    assert value("monitor_viewers", host=HOST) == watching_before + 1
    await comm.disconnect()
    assert value("monitor_viewer_sockets_open") == open_before
    assert value("monitor_viewers", host=HOST) == watching_before


async def test_a_snapshot_is_counted_per_socket_and_its_delay_once(
    communicator, redis_layer, access_token
):
    comms = [communicator(f"token={access_token}") for _ in range(3)]
    for comm in comms:
        assert (await comm.connect())[0]
    delivered = value("monitor_snapshots_delivered_total")
    observed = value("monitor_snapshot_delivery_seconds_count")
    late = value("monitor_snapshot_delivery_seconds_bucket", le="0.25")
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    event = host_event(snapshot, time.time())
    event["sent"] -= 0.5  # published half a second ago, on the server's clock
    await redis_layer.group_send(GROUP, event)
    for comm in comms:
        await comm.receive_from(timeout=5)
    # Counted once the fan-out has written to every socket.
    await eventually(
        lambda: value("monitor_snapshots_delivered_total") == delivered + 3,
        5,
        "the three deliveries were not counted",
    )
    # Once per snapshot and worker: the write to the last of its sockets.
    assert value("monitor_snapshot_delivery_seconds_count") == observed + 1
    # Published half a second before it was written: not within 0.25 s.
    assert value("monitor_snapshot_delivery_seconds_bucket", le="0.25") == late


async def test_a_refused_frame_is_counted_by_reason(communicator, access_token):
    comm = communicator(f"token={access_token}")
    assert (await comm.connect())[0]
    before = value("monitor_client_frames_refused_total", reason="unknown_type")
    await comm.send_to(text_data='{"type": "subscribe"}')
    await comm.receive_from(timeout=5)
    after = value("monitor_client_frames_refused_total", reason="unknown_type")
    assert after == before + 1
