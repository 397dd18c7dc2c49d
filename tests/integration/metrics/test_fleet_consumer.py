"""The fleet consumer through the full ASGI stack, on the real Redis layer."""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from core import closes, instruments
from core.keys import redis_key
from metrics import access
from metrics.fanout import get_fanout
from metrics.fleet import FLEET_GROUP, make_fleet_event
from metrics.hosts import create_host
from metrics.models import Host
from metrics.store import store_snapshot
from metrics.viewers import count_viewers
from monitor.asgi import application
from tests.integration.conftest import ORIGIN
from tests.support.calls import recorded
from tests.support.hosts import HOST, hold_host, host_event
from tests.support.waiting import eventually, eventually_equal

pytestmark = pytest.mark.django_db(transaction=True)

SNAPSHOT = {
    "type": "metrics",
    "timestamp": "2026-01-19T14:30:05.000Z",
    "data": {
        "cpu": {"usage_percent": 12.5, "load_avg": [0.5, 0.4, 0.3]},
        "memory": {"usage_percent": 40.0},
        "network": {"bytes_sent_per_sec": 100.0, "bytes_recv_per_sec": 200.0},
        "disk": {
            "partitions": {
                "/": {"usage_percent": 30.0},
                "/data": {"usage_percent": 70.5},
            }
        },
    },
}


@pytest.fixture(autouse=True)
def slow_builder(settings):
    """No frame is built by the process during a test unless it asks for one."""
    settings.METRICS_INTERVAL = 3600


@pytest.fixture
async def fleet_socket(redis_layer):
    """Factory of connected fleet sockets (with a token, or a raw query)."""
    made = []

    async def make(token: str | None = None, query: str = "") -> WebsocketCommunicator:
        if token is not None:
            query = f"token={token}"
        comm = WebsocketCommunicator(
            application, f"/api/ws/fleet?{query}", headers=[ORIGIN]
        )
        made.append(comm)
        connected, _ = await comm.connect()
        assert connected
        return comm

    yield make
    for comm in made:
        with contextlib.suppress(Exception):  # already closed by the server
            await comm.disconnect()


def token_of(user: User) -> str:
    return str(AccessToken.for_user(user))


@sync_to_async
def make_user(name: str, *hosts: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username=name, password="x", is_superuser=superuser)
    for name in hosts:
        user.visible_hosts.add(
            Host.objects.filter(name=name).first() or create_host(name)[0]
        )
    return user


async def receive_fleet(comm: WebsocketCommunicator) -> dict:
    frame = await comm.receive_json_from(timeout=5)
    assert frame["type"] == "fleet", frame
    return frame


def figures(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key != "host"}


async def test_superuser_gets_every_host_at_once_with_null_figures(
    fleet_socket, default_host
):
    root = await make_user("root", "alpha", superuser=True)
    comm = await fleet_socket(token_of(root))
    frame = await receive_fleet(comm)
    assert [entry["host"] for entry in frame["hosts"]] == ["alpha", HOST]
    assert frame["timestamp"].endswith("Z")
    assert frame["interval"] == 3600
    assert frame["hosts"][0] == {
        "host": "alpha",
        "online": False,
        "last_seen": None,
        "cpu_percent": None,
        "memory_percent": None,
        "load_1": None,
        "net_sent_per_sec": None,
        "net_recv_per_sec": None,
        "disk_max_percent": None,
    }


async def test_an_entry_carries_its_hosts_latest_figures_and_state(
    fleet_socket, default_host
):
    lease = await hold_host()
    try:
        await store_snapshot(host_event(SNAPSHOT, time.time()), ttl=60)
        root = await make_user("root", superuser=True)
        comm = await fleet_socket(token_of(root))
        (entry,) = (await receive_fleet(comm))["hosts"]
    finally:
        await lease.release()
    assert entry["online"] is True
    assert entry["last_seen"].endswith("Z")
    assert figures(entry) | {"online": True, "last_seen": None} == {
        "online": True,
        "last_seen": None,
        "cpu_percent": 12.5,
        "memory_percent": 40.0,
        "load_1": 0.5,
        "net_sent_per_sec": 100.0,
        "net_recv_per_sec": 200.0,
        "disk_max_percent": 70.5,
    }


async def test_a_user_gets_only_the_hosts_granted_to_them(fleet_socket, db):
    await sync_to_async(create_host)("alpha")
    nobody = await make_user("nobody")
    some = await make_user("some", "beta")
    frames = [
        await receive_fleet(await fleet_socket(token_of(user)))
        for user in (nobody, some)
    ]
    assert [[entry["host"] for entry in frame["hosts"]] for frame in frames] == [
        [],
        ["beta"],
    ]


async def test_a_fleet_viewers_hosts_are_read_again_before_they_lapse(
    fleet_socket, db, settings, monkeypatch
):
    # With only fleet sockets open, the sweep still reads their users again (as
    # often as it reads those of metrics sockets), so that a frame does not wait for
    # the database when what was remembered lapses.
    settings.AUTH_USER_CACHE_SECONDS = 0.5
    some = await make_user("some", "beta")
    loads = recorded(monkeypatch, access, "read_visible_hosts")
    await receive_fleet(await fleet_socket(token_of(some)))
    await eventually(
        lambda: loads.count(str(some.pk)) >= 3,
        3,
        "the fleet viewer's user was not read again",
    )


@pytest.mark.parametrize(
    ("query", "close"),
    [
        ("", closes.NO_TOKEN),
        ("token=garbage", closes.INVALID_TOKEN),
    ],
)
async def test_a_bad_token_is_refused_as_on_the_metrics_socket(
    fleet_socket, query, close
):
    comm = await fleet_socket(query=query)
    assert await comm.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": close.code,
        "reason": close.reason,
    }


async def test_the_permission_is_required_as_on_the_metrics_socket(
    fleet_socket, settings, db
):
    settings.METRICS_REQUIRED_PERMISSION = "metrics.view_host"
    user = await make_user("plain")
    comm = await fleet_socket(token_of(user))
    assert (await comm.receive_output(timeout=5))["code"] == closes.FORBIDDEN


async def test_ping_is_answered_without_a_host(fleet_socket, db):
    comm = await fleet_socket(token_of(await make_user("pinger")))
    await receive_fleet(comm)
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == {"type": "pong"}


async def test_a_fleet_event_is_framed_once_per_distinct_set_of_visible_hosts(
    fleet_socket, redis_layer, db
):
    twins = [await make_user(f"twin{n}", "alpha") for n in range(2)]
    other = await make_user("other", "beta")
    sockets = [await fleet_socket(token_of(user)) for user in (*twins, twins[0], other)]
    for comm in sockets:
        await receive_fleet(comm)
    built = instruments.fleet_frames_built._value.get()
    delivered = instruments.fleet_frames_delivered._value.get()
    entries = {
        name: json.dumps({"host": name, "online": True}) for name in ("alpha", "beta")
    }
    await redis_layer.group_send(
        FLEET_GROUP, make_fleet_event(entries, time.time() + 1, 3600)
    )
    frames = [await receive_fleet(comm) for comm in sockets]
    assert [frame["hosts"] for frame in frames] == [
        [{"host": "alpha", "online": True}],
        [{"host": "alpha", "online": True}],
        [{"host": "alpha", "online": True}],
        [{"host": "beta", "online": True}],
    ]
    assert instruments.fleet_frames_built._value.get() - built == 2
    assert instruments.fleet_frames_delivered._value.get() - delivered == 4


async def test_an_event_no_newer_than_the_frame_sent_on_connect_is_not_sent(
    fleet_socket, redis_layer, db
):
    comm = await fleet_socket(token_of(await make_user("viewer", "alpha")))
    first = await receive_fleet(comm)
    older = make_fleet_event({}, built_at(first) - 1, 1)
    await redis_layer.group_send(FLEET_GROUP, older)
    assert await comm.receive_nothing(timeout=0.5)


async def test_the_process_builds_and_sends_a_frame_each_interval(
    fleet_socket, settings, default_host
):
    settings.METRICS_INTERVAL = 1
    root = await make_user("root", superuser=True)
    comm = await fleet_socket(token_of(root))
    stamps = [(await receive_fleet(comm))["timestamp"] for _ in range(3)]
    assert stamps == sorted(set(stamps))


async def test_a_deactivated_users_fleet_socket_closes_with_4001(fleet_socket, db):
    user = await make_user("leaving")
    comm = await fleet_socket(token_of(user))
    await receive_fleet(comm)
    user.is_active = False
    await sync_to_async(user.save)()
    assert await comm.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": closes.USER_INACTIVE.code,
        "reason": closes.USER_INACTIVE.reason,
    }


async def test_the_last_fleet_socket_leaves_the_fleet_group(
    fleet_socket, clean_redis, db
):
    channel = f"{django_settings.METRICS_REDIS_PREFIX}:__group__{FLEET_GROUP}"
    sockets = [await fleet_socket(token_of(await make_user(f"u{n}"))) for n in (1, 2)]
    assert clean_redis.pubsub_numsub(channel)[0][1] == 1
    for comm in sockets:
        await receive_fleet(comm)
        await comm.disconnect()
    await eventually(
        lambda: clean_redis.pubsub_numsub(channel)[0][1] == 0,
        5,
        "the process stayed in the fleet group",
    )


async def test_fleet_viewers_make_the_hosts_they_see_live(fleet_socket, db):
    await sync_to_async(create_host)("unseen")
    comms = [
        await fleet_socket(token_of(await make_user(f"v{n}", "alpha"))) for n in (1, 2)
    ]
    for comm in comms:
        await receive_fleet(comm)

    async def counts() -> tuple[int, int]:
        return await count_viewers("alpha"), await count_viewers("unseen")

    await eventually_equal(counts, (1, 0), 5, "alpha is not watched once")
    for comm in comms:
        await comm.disconnect()
    await eventually_equal(counts, (0, 0), 5, "alpha is still watched")


async def test_fleet_and_metrics_sockets_count_against_one_cap(
    fleet_socket, communicator, settings, default_host, access_token
):
    settings.METRICS_WS_MAX_SOCKETS_PER_USER = 2
    first = await fleet_socket(access_token)
    await receive_fleet(first)
    second = communicator(f"token={access_token}")
    assert (await second.connect())[0]
    third = await fleet_socket(access_token)
    assert await third.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": closes.SOCKET_QUOTA_EXCEEDED.code,
        "reason": closes.SOCKET_QUOTA_EXCEEDED.reason,
    }


async def test_a_frame_built_for_a_connect_keeps_no_periodic_one_from_the_others(
    fleet_socket, redis_layer, clean_redis, settings, db
):
    settings.METRICS_INTERVAL = 1
    # Another process leads: only the events the test sends are periodic.
    clean_redis.set(redis_key("fleet", "leader"), "elsewhere:1:x", px=60_000)
    first = await fleet_socket(token_of(await make_user("first", "alpha")))
    await receive_fleet(first)
    # What the process holds ages past an interval: the next connect reads afresh.
    await asyncio.sleep(1.2)
    second = await fleet_socket(token_of(await make_user("second", "alpha")))
    fresh = await receive_fleet(second)
    assert names(fresh) == ["alpha"]
    # A periodic event built just before that fresh read reaches the first socket,
    # not the second, which has newer figures.
    periodic = make_fleet_event({}, built_at(fresh) - 0.5, 1)
    await redis_layer.group_send(FLEET_GROUP, periodic)
    assert (await receive_fleet(first))["timestamp"] < fresh["timestamp"]
    assert await second.receive_nothing(timeout=0.5)


def names(frame: dict) -> list[str]:
    return [entry["host"] for entry in frame["hosts"]]


def built_at(frame: dict) -> float:
    return datetime.fromisoformat(frame["timestamp"]).timestamp()


@dataclass(eq=False)
class Member:
    """A socket as the fan-out sees one: of a host, or of the fleet."""

    user_id: str = "1"
    host: str = HOST


async def test_the_last_sockets_leaving_together_stop_the_builder_and_the_channel(
    redis_layer,
):
    fanout = get_fanout()
    viewer, fleet_viewer = Member(), Member()
    await fanout.join(viewer)
    await fanout.join_fleet(fleet_viewer)
    assert fanout.fleet.builder.task is not None
    # Both leave while the fan-out is busy: each is out of its sockets, and the
    # host's viewer gets the lock first.
    async with fanout.lock:
        leaving = asyncio.ensure_future(fanout.leave(viewer))
        await asyncio.sleep(0)
        leaving_fleet = asyncio.ensure_future(fanout.leave_fleet(fleet_viewer))
        await asyncio.sleep(0)
    await asyncio.gather(leaving, leaving_fleet)
    assert fanout.fleet.builder.task is None
    assert fanout.channel is None
