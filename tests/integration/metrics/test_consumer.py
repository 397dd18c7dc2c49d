"""The metrics consumer through the full ASGI stack, on the real Redis layer."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from core import closes
from metrics.consumers import MetricsConsumer
from metrics.store import store_snapshot
from metrics.viewers import get_registry
from monitor.asgi import application
from tests.integration.conftest import ORIGIN
from tests.support.hosts import GROUP, HOST, PONG, host_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_host_online"),
]


def snapshot_event(ts: float, marker: str = "x") -> dict:
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    snapshot["data"]["marker"] = marker
    return host_event(snapshot, ts)


async def connect(communicator, token: str):
    comm = communicator(f"token={token}")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_valid_token_connects_and_answers_ping(communicator, access_token):
    comm = await connect(communicator, access_token)
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == PONG


async def test_missing_token_is_accepted_then_closed_with_4001(communicator):
    comm = communicator()
    connected, _ = await comm.connect()
    assert connected
    assert await comm.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": closes.UNAUTHORIZED,
        "reason": closes.NO_TOKEN.reason,
    }


async def test_unauthenticated_socket_does_not_join_the_group(
    communicator, redis_layer, clean_redis
):
    comm = communicator("token=garbage")
    await comm.connect()
    assert (await comm.receive_output(timeout=5))["code"] == closes.UNAUTHORIZED
    channel = f"{settings.METRICS_REDIS_PREFIX}:__group__{GROUP}"
    assert clean_redis.pubsub_numsub(channel) == [(channel.encode(), 0)]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", 'expected a JSON object with a "type" field'),
        ('"ping"', 'expected a JSON object with a "type" field'),
        ('{"type": "subscribe"}', "unknown message type 'subscribe'"),
        ('{"kind": "ping"}', 'missing "type": expected a string such as "ping"'),
        ('{"type": 7}', 'missing "type": expected a string such as "ping"'),
    ],
)
async def test_bad_text_frame_gets_error_and_socket_stays_open(
    communicator, access_token, frame, expected
):
    comm = await connect(communicator, access_token)
    await comm.send_to(text_data=frame)
    assert await comm.receive_json_from(timeout=5) == {
        "type": "error",
        "message": expected,
        "host": HOST,
    }
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == PONG


async def test_binary_frame_gets_error_and_socket_stays_open(
    communicator, access_token
):
    comm = await connect(communicator, access_token)
    await comm.send_to(bytes_data=b"\x00\x01")
    reply = await comm.receive_json_from(timeout=5)
    assert reply["type"] == "error"
    assert "binary" in reply["message"]
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == PONG


async def test_unknown_type_in_error_is_truncated(communicator, access_token):
    comm = await connect(communicator, access_token)
    await comm.send_json_to({"type": "x" * 3_000})
    reply = await comm.receive_json_from(timeout=5)
    assert reply["type"] == "error"
    assert len(reply["message"]) < 100


async def test_latest_snapshot_is_sent_at_once_on_connect(communicator, access_token):
    event = await store_snapshot(snapshot_event(1000.0, "latest"), ttl=60)
    comm = await connect(communicator, access_token)
    assert await comm.receive_from(timeout=2) == event["text"]


async def test_no_snapshot_on_connect_when_none_is_stored(communicator, access_token):
    comm = await connect(communicator, access_token)
    assert await comm.receive_nothing(timeout=0.5)


async def test_broadcast_reaches_every_client_once(
    communicator, redis_layer, access_token
):
    clients = [await connect(communicator, access_token) for _ in range(3)]
    event = snapshot_event(2000.0, "broadcast")
    await redis_layer.group_send(GROUP, event)
    for comm in clients:
        assert await comm.receive_from(timeout=5) == event["text"]
        assert await comm.receive_nothing(timeout=0.3)


async def test_snapshot_both_stored_and_broadcast_arrives_once(
    communicator, redis_layer, access_token
):
    event = await store_snapshot(snapshot_event(3000.0, "both"), ttl=60)
    comm = await connect(communicator, access_token)
    await redis_layer.group_send(GROUP, event)
    assert await comm.receive_from(timeout=5) == event["text"]
    assert await comm.receive_nothing(timeout=0.5)


async def test_older_snapshot_after_newer_is_not_sent(
    communicator, redis_layer, access_token
):
    newer = await store_snapshot(snapshot_event(5000.0, "newer"), ttl=60)
    older = snapshot_event(4000.0, "older")
    comm = await connect(communicator, access_token)
    assert await comm.receive_from(timeout=5) == newer["text"]
    await redis_layer.group_send(GROUP, older)
    assert await comm.receive_nothing(timeout=0.5)


async def test_disconnect_leaves_the_group(communicator, access_token, clean_redis):
    channel = f"{settings.METRICS_REDIS_PREFIX}:__group__{GROUP}"
    first = await connect(communicator, access_token)
    second = await connect(communicator, access_token)
    assert clean_redis.pubsub_numsub(channel)[0][1] == 1
    await first.disconnect()
    assert clean_redis.pubsub_numsub(channel)[0][1] == 1
    await second.disconnect()
    await asyncio.sleep(0.1)
    assert clean_redis.pubsub_numsub(channel)[0][1] == 0


async def test_foreign_origin_is_refused(communicator, access_token):
    comm = communicator(
        f"token={access_token}", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await comm.connect()
    assert not connected


async def test_deactivated_user_token_is_refused(communicator, user, access_token):
    user.is_active = False
    await sync_to_async(user.save)()
    comm = await connect(communicator, access_token)
    assert (await comm.receive_output(timeout=5))["code"] == closes.UNAUTHORIZED


async def test_snapshot_text_is_sent_verbatim(communicator, redis_layer, access_token):
    comm = await connect(communicator, access_token)
    event = snapshot_event(6000.0, "verbatim")
    await redis_layer.group_send(GROUP, event)
    message = json.loads(await comm.receive_from(timeout=5))
    assert message["data"]["marker"] == "verbatim"


async def test_deeply_nested_json_gets_error_and_socket_stays_open(
    communicator, access_token
):
    comm = await connect(communicator, access_token)
    await comm.send_to(text_data="[" * 4_000)
    assert await comm.receive_json_from(timeout=5) == {
        "type": "error",
        "message": "invalid JSON",
        "host": HOST,
    }
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == PONG


async def test_unknown_socket_path_is_refused(redis_layer, access_token):
    comm = WebsocketCommunicator(
        application, f"/api/ws/other?token={access_token}", headers=[ORIGIN]
    )
    connected, _ = await comm.connect()
    assert not connected


async def test_crashed_consumer_is_not_counted_as_a_viewer(
    communicator, access_token, monkeypatch
):
    async def broken(self, text_data=None, bytes_data=None):
        raise RuntimeError("a bug in a handler")

    comm = await connect(communicator, access_token)
    assert get_registry().count == 1
    monkeypatch.setattr(MetricsConsumer, "receive", broken)
    await comm.send_to(text_data="{}")
    with pytest.raises(RuntimeError):
        await comm.wait(timeout=5)
    assert get_registry().count == 0
