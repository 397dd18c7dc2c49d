"""The agent socket, /api/ws/agent, of a real daphne process, spoken to by agents
written out by hand: hello and config, every bad input and its answer, and where
the snapshots go (docs/agent-protocol.md; the real agent: tests/e2e/test_fleet.py)."""

import asyncio
import json
import time
from datetime import datetime

import pytest
from asgiref.sync import sync_to_async

from core import closes
from metrics.hosts import create_host, remove_host, rotate_token, set_enabled
from tests.support.clients import close_frame, open_socket, receive_json
from tests.support.fake_agents import connected_agent, open_agent, snapshot_frame
from tests.support.hosts import host_key
from tests.support.http import Session
from tests.support.users import watched

pytestmark = pytest.mark.django_db(transaction=True)

# What the agent socket closes with (its codes: agent.protocol, core.closes).
INVALID = (closes.UNAUTHORIZED, "invalid host token")
DISABLED = (closes.UNAUTHORIZED, "host disabled")


@pytest.fixture
def db_1() -> str:
    """The token of host db-1, watched by the tests' users."""
    token = create_host("db-1")[1]
    watched("db-1")
    return token


def api_hosts(port: int, access_token: str) -> dict[str, dict]:
    """GET /api/hosts, by name (blocking: call it in a thread)."""
    answer = Session(port).get("/api/hosts", Authorization=f"Bearer {access_token}")
    assert answer.status == 200, answer.text
    return {host["name"]: host for host in answer.json()}


def epoch(stamp: str) -> float:
    """A snapshot's timestamp in seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def host_state(host: str, online: bool) -> dict:
    """The frame telling viewers their host went offline or came back."""
    return {"type": "host", "host": host, "online": online}


def stored(redis, host: str) -> list[dict]:
    """A host's history in Redis, oldest first."""
    return [
        json.loads(text) for text in redis.zrange(host_key("history", host=host), 0, -1)
    ]


async def until(condition, within: float, message: str) -> None:
    """Wait for a condition to hold (checked every 50 ms), or fail."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.05)


async def test_hello_names_the_tokens_host_and_its_cadence(server, db_1, settings):
    ws, hello = await connected_agent(server, db_1, query="interval=2")
    assert hello == {
        "type": "hello",
        "host": "db-1",
        "interval": 2.0,
        "live": False,
        "idle_interval": settings.METRICS_IDLE_INTERVAL,
    }
    await ws.close()


async def test_a_bad_interval_gets_an_error_and_the_servers_default(server, db_1):
    ws, hello = await connected_agent(server, db_1, query="interval=fast")
    assert hello["interval"] == 5.0
    error = await receive_json(ws)
    assert error["type"] == "error"
    assert "interval" in error["message"]
    await ws.close()


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 5000])
async def test_a_missing_or_wrong_token_is_closed_with_4001(server, db_1, token):
    ws = await open_agent(server, token)
    assert await close_frame(ws) == INVALID


async def test_a_rotated_token_is_closed_with_4001(server, db_1):
    host = await sync_to_async(create_host)("db-2")
    old = host[1]
    await sync_to_async(rotate_token)(host[0])
    assert await close_frame(await open_agent(server, old)) == INVALID


async def test_a_disabled_hosts_token_is_closed_with_4001(server):
    host, token = await sync_to_async(create_host)("db-2")
    await sync_to_async(set_enabled)(host, False)
    assert await close_frame(await open_agent(server, token)) == DISABLED


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (rotate_token, INVALID),
        (lambda host: set_enabled(host, False), DISABLED),
        (remove_host, INVALID),
    ],
    ids=["rotated", "disabled", "removed"],
)
async def test_a_host_changed_while_connected_closes_its_agent_within_2_s(
    server, change, expected
):
    host, token = await sync_to_async(create_host)("db-2")
    ws, _ = await connected_agent(server, token)
    changed_at = time.monotonic()
    await sync_to_async(change)(host)
    assert await close_frame(ws, within=2.0) == expected
    assert time.monotonic() - changed_at < 2.0


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("not json", "invalid JSON"),
        ('{"type": "metrics", "timestamp": NaN}', "invalid JSON"),
        ("[1, 2]", '"metrics" snapshot'),
        ('{"type": "ping"}', '"metrics" snapshot'),
        ('{"type": "metrics", "timestamp": "yesterday", "data": {}}', "timestamp"),
        (
            '{"type": "metrics", "timestamp": "2026-02-30T10:00:00.000Z", "data": {}}',
            "timestamp",
        ),
        ('{"type": "metrics", "timestamp": "2026-01-19T14:30:05.123Z"}', '"data"'),
        (
            '{"type": "metrics", "timestamp": "2026-01-19T14:30:05.123Z", '
            '"data": {"cpu": {}, "memory": {}, "network": {}}}',
            '"data"',
        ),
        (
            '{"type": "metrics", "timestamp": "2026-01-19T14:30:05.123Z", "data": '
            '{"cpu": {"usage_percent": "high"}, "memory": {}, "network": {}, '
            '"disk": {}}}',
            "cpu.usage_percent",
        ),
        (
            '{"type": "metrics", "timestamp": "2026-01-19T14:30:05.123Z", "data": '
            '{"cpu": {}, "memory": {}, "network": {}, "disk": {}}, "backfill": "yes"}',
            "backfill",
        ),
    ],
)
async def test_a_frame_that_is_not_a_snapshot_gets_an_error_and_nothing_is_stored(
    server, db_1, clean_redis, frame, expected
):
    ws, _ = await connected_agent(server, db_1)
    await ws.send(frame)
    error = await receive_json(ws)
    assert error["type"] == "error"
    assert expected in error["message"]
    await ws.send(snapshot_frame(time.time(), marker=1.0))
    await until(lambda: stored(clean_redis, "db-1"), 5, "the next snapshot was lost")
    assert [s["data"]["cpu"]["usage_percent"] for s in stored(clean_redis, "db-1")] == [
        1.0
    ]
    await ws.close()


async def test_a_binary_frame_gets_an_error(server, db_1):
    ws, _ = await connected_agent(server, db_1)
    await ws.send(b"\x00\x01")
    error = await receive_json(ws)
    assert error["type"] == "error"
    assert "binary" in error["message"]
    await ws.close()


async def test_a_frame_over_256_kib_is_closed_with_4009(server, db_1):
    ws, _ = await connected_agent(server, db_1)
    await ws.send(snapshot_frame(time.time(), pad="x" * (256 * 1024)))
    assert await close_frame(ws) == (closes.MESSAGE_TOO_BIG, "frame too big")


async def test_a_frame_of_almost_256_kib_is_stored(server, db_1, clean_redis):
    ws, _ = await connected_agent(server, db_1)
    frame = snapshot_frame(time.time(), pad="")
    await ws.send(frame.replace('"pad": ""', f'"pad": "{"x" * (250 * 1024)}"'))
    await until(lambda: stored(clean_redis, "db-1"), 5, "the snapshot was not stored")
    await ws.close()


async def test_more_than_3_snapshots_per_interval_sustained_is_closed_with_4008(
    server, db_1
):
    ws, _ = await connected_agent(server, db_1)
    now = time.time()
    for n in range(12):
        await ws.send(snapshot_frame(now + n / 1000))
    assert await close_frame(ws) == (closes.TOO_MANY_MESSAGES, "too many snapshots")


async def test_a_second_connection_with_the_same_token_replaces_the_first_with_4010(
    server, db_1
):
    first, _ = await connected_agent(server, db_1)
    second, hello = await connected_agent(server, db_1)
    assert hello["host"] == "db-1"
    assert await close_frame(first) == (4010, "replaced by a newer connection")
    await second.ping()
    await second.close()


async def test_the_host_comes_from_the_token_never_from_the_frame(
    server, db_1, access_token, clean_redis
):
    await sync_to_async(create_host)("other")
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    await ws.send(snapshot_frame(time.time(), marker=7.0, host="other"))
    message = await receive_json(viewer)
    assert message["host"] == "db-1"
    assert message["data"]["cpu"]["usage_percent"] == 7.0
    assert stored(clean_redis, "other") == []
    await ws.close()
    await viewer.close()


async def test_viewers_of_a_host_get_only_its_snapshots_once_in_order(
    server, access_token
):
    tokens = {name: (await sync_to_async(create_host)(name))[1] for name in ("a", "b")}
    for name in tokens:
        await sync_to_async(watched)(name)
    viewers = {
        name: await open_socket(server, access_token, host=name) for name in tokens
    }
    agents = {
        name: (await connected_agent(server, token))[0]
        for name, token in tokens.items()
    }
    start = time.time()
    for n in range(3):
        for number, name in enumerate(agents):
            await agents[name].send(snapshot_frame(start + n * 0.4, marker=number))
        await asyncio.sleep(0.4)
    for number, name in enumerate(viewers):
        messages = [await receive_json(viewers[name]) for _ in range(3)]
        assert {m["host"] for m in messages} == {name}
        assert {m["data"]["cpu"]["usage_percent"] for m in messages} == {number}
        stamps = [m["timestamp"] for m in messages]
        assert stamps == sorted(set(stamps))
        with pytest.raises(TimeoutError):
            await receive_json(viewers[name], within=0.5)
    for ws in [*agents.values(), *viewers.values()]:
        await ws.close()


async def test_the_first_viewer_makes_the_agent_live_within_1_s_and_the_last_idle(
    server, db_1, access_token
):
    ws, hello = await connected_agent(server, db_1)
    assert hello["live"] is False
    viewer = await open_socket(server, access_token, host="db-1")
    opened = time.monotonic()
    config = await receive_json(ws, within=2)
    assert time.monotonic() - opened < 1.0
    assert config == {
        "type": "config",
        "interval": 1.0,
        "live": True,
        "idle_interval": 60,
    }
    await viewer.close()
    assert (await receive_json(ws, within=5))["live"] is False
    await ws.close()


async def test_a_clock_far_off_is_replaced_by_the_servers_and_the_host_flagged(
    server, db_1, access_token
):
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    sent_at = time.time()
    await ws.send(snapshot_frame(sent_at + 3600))
    message = await receive_json(viewer)
    stamped = message["timestamp"]
    assert abs(epoch(stamped) - sent_at) < 5
    hosts = await asyncio.to_thread(api_hosts, server, access_token)
    assert hosts["db-1"]["clock_skew"] is True
    await ws.send(snapshot_frame(time.time()))
    await receive_json(viewer)
    hosts = await asyncio.to_thread(api_hosts, server, access_token)
    assert hosts["db-1"]["clock_skew"] is False
    await ws.close()
    await viewer.close()


async def test_live_timestamps_only_go_forward_for_viewers(server, db_1, access_token):
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    now = time.time()
    await ws.send(snapshot_frame(now))
    await ws.send(snapshot_frame(now - 10))
    first, second = await receive_json(viewer), await receive_json(viewer)
    assert epoch(second["timestamp"]) > epoch(first["timestamp"])
    await ws.close()
    await viewer.close()


async def test_backfill_goes_to_history_in_order_not_to_viewers_and_only_once(
    server, db_1, access_token, clean_redis
):
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    now = time.time()
    taken = [now - 30, now - 20, now - 10]
    for moment in (taken[2], taken[0], taken[1], taken[0]):
        await ws.send(snapshot_frame(moment, backfill=True))
    await ws.send(snapshot_frame(now, marker=9.0))
    live = await receive_json(viewer)
    assert live["data"]["cpu"]["usage_percent"] == 9.0
    await until(lambda: len(stored(clean_redis, "db-1")) == 4, 5, "backfill missing")
    history = stored(clean_redis, "db-1")
    stamps = [epoch(s["timestamp"]) for s in history]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4
    assert all(s["host"] == "db-1" and "backfill" not in s for s in history)
    await ws.close()
    await viewer.close()


async def test_an_agent_that_leaves_takes_its_host_offline_and_back(
    server, db_1, access_token
):
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    await ws.send(snapshot_frame(time.time()))
    assert (await receive_json(viewer))["type"] == "metrics"
    await ws.close()
    assert await receive_json(viewer) == host_state("db-1", online=False)
    hosts = await asyncio.to_thread(api_hosts, server, access_token)
    assert hosts["db-1"]["online"] is False
    ws, _ = await connected_agent(server, db_1)
    await ws.send(snapshot_frame(time.time()))
    assert await receive_json(viewer) == host_state("db-1", online=True)
    assert (await receive_json(viewer))["type"] == "metrics"
    await ws.close()
    await viewer.close()


async def test_a_host_whose_snapshots_stop_goes_offline_within_3_intervals(
    server, db_1, access_token
):
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    await ws.send(snapshot_frame(time.time()))
    await receive_json(viewer)
    silent_from = time.monotonic()
    offline = await receive_json(viewer, within=5)
    assert offline["online"] is False
    assert 2.5 < time.monotonic() - silent_from < 3 * 1.0 + 1.0
    await ws.close()
    await viewer.close()


async def test_a_clock_behind_within_the_bound_is_online_and_seen_now(
    server, db_1, access_token
):
    viewer = await open_socket(server, access_token, host="db-1")
    ws, _ = await connected_agent(server, db_1)
    for n in range(3):
        await ws.send(snapshot_frame(time.time() - 45 + n))
        await receive_json(viewer)
    hosts = await asyncio.to_thread(api_hosts, server, access_token)
    assert hosts["db-1"]["online"] is True
    assert hosts["db-1"]["clock_skew"] is False
    # When the server saw it (its clock), not when the agent's clock says.
    assert abs(epoch(hosts["db-1"]["last_seen"]) - time.time()) < 5
    await ws.close()
    await viewer.close()


async def test_a_host_state_lost_by_redis_is_claimed_again_by_its_agent(
    server, db_1, access_token, clean_redis
):
    ws, _ = await connected_agent(server, db_1, query="interval=1")
    await ws.send(snapshot_frame(time.time()))
    # As after a restart of a Redis that keeps nothing: the host's state is gone.
    clean_redis.delete(host_key("state", host="db-1"))

    def claimed() -> bool:
        state = clean_redis.hgetall(host_key("state", host="db-1"))
        return state.get(b"sender") is not None and state.get(b"interval") == b"1.0"

    await until(claimed, 3, "the agent's connection did not claim its host again")
    await ws.send(snapshot_frame(time.time()))
    await until(
        lambda: api_hosts(server, access_token)["db-1"]["online"],
        3,
        "the host is not online again",
    )
    await ws.close()
