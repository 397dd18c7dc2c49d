"""Resuming the metrics socket (`?since=SEQ&epoch=EPOCH`) through the full ASGI
stack, on the real Redis layer."""

import json

import pytest

from metrics.store import publish_snapshot, store_snapshot, stream_key
from tests.support.hosts import GROUP, HOST, PONG, host_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_host_online"),
]


def snapshot_event(ts: float) -> dict:
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    return host_event(snapshot, ts)


async def store(count: int, first_ts: float = 1000.0) -> list[dict]:
    """Store `count` live snapshots (not sent to anybody); return them as stored."""
    return [
        await store_snapshot(snapshot_event(first_ts + n), ttl=60) for n in range(count)
    ]


async def connect(communicator, token: str, query: str = ""):
    comm = communicator(f"token={token}{'&' if query else ''}{query}")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def receive_texts(comm, count: int) -> list[str]:
    return [await comm.receive_from(timeout=5) for _ in range(count)]


async def test_resume_sends_what_was_missed_then_live_each_once(
    communicator, redis_layer, access_token
):
    stored = await store(4)
    epoch = stored[0]["epoch"]
    comm = await connect(communicator, access_token, f"since=1&epoch={epoch}")
    assert await comm.receive_json_from(timeout=5) == {
        "type": "resume",
        "recovered": True,
        "missed": 3,
        "host": HOST,
    }
    assert await receive_texts(comm, 3) == [event["text"] for event in stored[1:]]
    live = await publish_snapshot(redis_layer, snapshot_event(2000.0), ttl=60)
    assert await comm.receive_from(timeout=5) == live["text"]
    assert json.loads(live["text"])["seq"] == 5
    assert await comm.receive_nothing(timeout=0.3)


async def test_broadcasts_of_snapshots_already_replayed_are_not_sent_again(
    communicator, redis_layer, access_token
):
    stored = await store(3)
    epoch = stored[0]["epoch"]
    comm = await connect(communicator, access_token, f"since=0&epoch={epoch}")
    assert (await comm.receive_json_from(timeout=5))["missed"] == 3
    assert await receive_texts(comm, 3) == [event["text"] for event in stored]
    # Their broadcasts, late: stored before the socket read them, sent after.
    for event in stored[1:]:
        await redis_layer.group_send(GROUP, event)
    live = await publish_snapshot(redis_layer, snapshot_event(2000.0), ttl=60)
    assert await comm.receive_from(timeout=5) == live["text"]
    assert await comm.receive_nothing(timeout=0.3)


async def test_resume_at_the_last_seq_sends_nothing_until_live(
    communicator, redis_layer, access_token
):
    stored = await store(2)
    comm = await connect(
        communicator, access_token, f"since=2&epoch={stored[1]['epoch']}"
    )
    assert await comm.receive_json_from(timeout=5) == {
        "type": "resume",
        "recovered": True,
        "missed": 0,
        "host": HOST,
    }
    assert await comm.receive_nothing(timeout=0.3)
    live = await publish_snapshot(redis_layer, snapshot_event(2000.0), ttl=60)
    assert await comm.receive_from(timeout=5) == live["text"]


@pytest.mark.parametrize(
    "query",
    [
        "since=1&epoch=0123456789abcdef",  # another epoch
        "since=9&epoch={epoch}",  # ahead of the stream
    ],
)
async def test_resume_that_cannot_be_recovered_sends_the_latest_then_live(
    communicator, redis_layer, access_token, query
):
    stored = await store(3)
    query = query.format(epoch=stored[0]["epoch"])
    comm = await connect(communicator, access_token, query)
    assert await comm.receive_json_from(timeout=5) == {
        "type": "resume",
        "recovered": False,
        "host": HOST,
    }
    assert await comm.receive_from(timeout=5) == stored[-1]["text"]
    live = await publish_snapshot(redis_layer, snapshot_event(2000.0), ttl=60)
    assert await comm.receive_from(timeout=5) == live["text"]
    assert await comm.receive_nothing(timeout=0.3)


async def test_since_older_than_what_is_held_is_not_recovered(
    communicator, clean_redis, access_token
):
    stored = await store(3)
    # Seq 1 is no longer held (it arrived more than METRICS_HISTORY_SECONDS ago).
    clean_redis.xdel(stream_key(HOST), "1-0")
    comm = await connect(
        communicator, access_token, f"since=0&epoch={stored[0]['epoch']}"
    )
    assert await comm.receive_json_from(timeout=5) == {
        "type": "resume",
        "recovered": False,
        "host": HOST,
    }
    assert await comm.receive_from(timeout=5) == stored[-1]["text"]
    assert await comm.receive_nothing(timeout=0.3)


async def test_more_missed_than_half_the_send_buffer_is_not_recovered(
    communicator, access_token, settings
):
    stored = await store(3)
    # Two of them fit in half the buffer; three do not.
    settings.METRICS_WS_SEND_BUFFER_BYTES = 2 * sum(len(e["text"]) for e in stored[1:])
    epoch = stored[0]["epoch"]
    comm = await connect(communicator, access_token, f"since=1&epoch={epoch}")
    assert (await comm.receive_json_from(timeout=5))["recovered"] is True
    comm = await connect(communicator, access_token, f"since=0&epoch={epoch}")
    assert await comm.receive_json_from(timeout=5) == {
        "type": "resume",
        "recovered": False,
        "host": HOST,
    }
    assert await comm.receive_from(timeout=5) == stored[-1]["text"]


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("since=abc&epoch={epoch}", "since must be a whole number"),
        ("since=-1&epoch={epoch}", "since must be a whole number"),
        ("since=1.5&epoch={epoch}", "since must be a whole number"),
        ("since=1&epoch=not-an-epoch", "epoch must be 16 lowercase hex digits"),
        ("since=1&epoch=" + "a" * 500, "epoch must be 16 lowercase hex digits"),
        ("since=1", "since and epoch go together"),
        ("epoch={epoch}", "since and epoch go together"),
    ],
)
async def test_garbage_resume_gets_an_error_then_streams_as_a_plain_connect(
    communicator, redis_layer, access_token, query, complaint
):
    stored = await store(3)
    comm = await connect(
        communicator, access_token, query.format(epoch=stored[0]["epoch"])
    )
    error = await comm.receive_json_from(timeout=5)
    assert error["type"] == "error"
    assert error["host"] == HOST
    assert error["message"].startswith(complaint), error
    assert await comm.receive_from(timeout=5) == stored[-1]["text"]
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == PONG
    live = await publish_snapshot(redis_layer, snapshot_event(2000.0), ttl=60)
    assert await comm.receive_from(timeout=5) == live["text"]
