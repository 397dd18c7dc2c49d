"""Each web process is one member of the group `metrics`, writing to all its sockets."""

import asyncio

import pytest
from django.conf import settings

from core import closes
from tests.support import processes
from tests.support.clients import close_code, open_socket
from tests.support.hosts import GROUP, HOST
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

GROUP_CHANNEL = f"{settings.METRICS_REDIS_PREFIX}:__group__{GROUP}"


def members(redis_sync) -> int:
    """How many subscribers Redis has for the group `metrics`."""
    return redis_sync.pubsub_numsub(GROUP_CHANNEL)[0][1]


def snapshot_text(marker: str, size: int) -> str:
    """A snapshot message of about `size` characters, some of them multi-byte."""
    filler = ("é€😀" * size)[: max(size - 60, 0)]
    data = f'{{"m":"{marker}","f":"{filler}"}}'
    return f'{{"type":"metrics","timestamp":"2026-01-19T14:30:05.000Z","data":{data}}}'


async def test_two_processes_with_many_sockets_are_two_members_of_the_group(
    tmp_path, access_token, redis_sync, clean_redis
):
    with (
        processes.daphne(tmp_path) as (_, first),
        processes.daphne(tmp_path) as (_, second),
    ):
        clients = [
            await open_socket(port, access_token) for port in [first] * 5 + [second] * 5
        ]
        await eventually(
            lambda: members(redis_sync) == 2, 5, "each process should join once"
        )
        for ws in clients[:4]:
            await ws.close()
        await asyncio.sleep(0.5)
        assert members(redis_sync) == 2, "a process with a socket left stays in"
        await clients[4].close()
        await eventually(
            lambda: members(redis_sync) == 1, 5, "an empty process should leave"
        )
        for ws in clients[5:]:
            await ws.close()
        await eventually(lambda: members(redis_sync) == 0, 5, "both should leave")


@pytest.mark.parametrize(
    ("size", "extensions"),
    [(40, "1"), (2_000, "1"), (70_000, "1"), (40, "0"), (2_000, "0")],
    ids=["40", "2000", "70000", "40-stock", "2000-stock"],
)
async def test_every_socket_gets_each_snapshot_once_verbatim_at_any_size(
    tmp_path, access_token, redis_sync, clean_redis, redis_in_test, size, extensions
):
    # 70,000 characters encode to more than 64 KiB, the frame length form that
    # needs 8 bytes; runservice limits client messages to 65,536 bytes, not ours.
    # With the server's extensions off autobahn frames each snapshot itself, and
    # holds snapshots to that limit too (runner/extensions.py, ready-frames).
    env = {"METRICS_SERVER_EXTENSIONS": extensions}
    with processes.daphne(tmp_path, *processes.MAX_MESSAGE_FLAGS, **env) as (_, port):
        clients = [
            await open_socket(port, access_token, max_size=None) for _ in range(4)
        ]
        await eventually(lambda: members(redis_sync) == 1, 5, "process not a member")
        texts = [snapshot_text(f"m{number}", size) for number in range(3)]
        for number, text in enumerate(texts):
            await redis_in_test.group_send(
                GROUP,
                {
                    "type": "metrics.snapshot",
                    "ts": 100.0 + number,
                    "text": text,
                    "host": HOST,
                },
            )
        for ws in clients:
            received = [await asyncio.wait_for(ws.recv(), 10) for _ in texts]
            assert received == texts
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
            await ws.close()


async def test_other_events_sent_to_the_group_still_reach_every_consumer(
    tmp_path, access_token, redis_sync, clean_redis, redis_in_test
):
    with processes.daphne(tmp_path) as (_, port):
        clients = [await open_socket(port, access_token) for _ in range(3)]
        await eventually(lambda: members(redis_sync) == 1, 5, "process not a member")
        # auth.revoked is what the service sends a revoked user's sockets.
        await redis_in_test.group_send(GROUP, {"type": "auth.revoked"})
        codes = await asyncio.gather(*(close_code(ws) for ws in clients))
    assert codes == [closes.UNAUTHORIZED] * 3


async def test_garbage_on_the_group_does_not_stop_the_snapshots(
    tmp_path, access_token, redis_sync, clean_redis, redis_in_test
):
    with processes.daphne(tmp_path) as (_, port):
        ws = await open_socket(port, access_token)
        await eventually(lambda: members(redis_sync) == 1, 5, "process not a member")
        # Another program on the same Redis: undecodable bytes, a message that is
        # not an event, an event no consumer handles, a snapshot without text.
        redis_sync.publish(GROUP_CHANNEL, b"\xc1 not a message")
        redis_sync.publish(GROUP_CHANNEL, redis_in_test.serialize([1, 2, 3]))
        await redis_in_test.group_send(GROUP, {"type": "no.such.handler"})
        await redis_in_test.group_send(GROUP, {"type": "metrics.snapshot", "ts": 1.0})
        text = snapshot_text("after", 100)
        await redis_in_test.group_send(
            GROUP, {"type": "metrics.snapshot", "ts": 2.0, "text": text, "host": HOST}
        )
        assert await asyncio.wait_for(ws.recv(), 10) == text
        await ws.close()
