"""Issue 13's proof with real processes: real agents (`python -m agent`), each with
its own host token, and the local publisher, beside real daphne workers on one
Redis; viewers of each host, workers and agents killed, tokens rotated, hosts
disabled, Redis restarted."""

import asyncio
import itertools
import json
import logging
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis
from channels.db import database_sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from metrics.hosts import create_host, rotate_token, set_enabled
from metrics.models import Host
from tests.support import processes
from tests.support.agents import AgentProcess, running_agent
from tests.support.children import free_port
from tests.support.clients import (
    RECEIVE_WITHIN,
    close_frame,
    open_socket,
    receive_json,
)
from tests.support.hosts import HOST, host_key
from tests.support.http import Session
from tests.support.users import watched
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

# What the tests measured (pytest --log-cli-level=INFO shows it).
logger = logging.getLogger(__name__)

# The agents' and the publisher's live interval.
INTERVAL = 1.0
AGENT_HOSTS = ("alpha", "beta")
# The agents' hosts and the local publisher's.
ALL_HOSTS = (*AGENT_HOSTS, HOST)
# Time for a host's first live snapshot to reach a new viewer: its sender goes live
# within 1 s and sends within an interval; generous, for a busy 2-core machine.
FIRST_SNAPSHOT_WITHIN = 10.0
# A gap in a host's history longer than this many intervals is a missing snapshot.
MAX_GAP_INTERVALS = 1.5
# How long every web worker stays dead before it is started again (starting adds
# 1-4 s): the agents are without a server for some 4-7 s.
OUTAGE = 3.5


def seconds(timestamp: str) -> float:
    """A snapshot's timestamp ("...Z") in seconds since the epoch."""
    return datetime.fromisoformat(timestamp).timestamp()


async def add_host(name: str) -> tuple[Host, str]:
    """Create an enabled agent host, watched by the tests' users; return it and its
    token."""
    found = await database_sync_to_async(create_host)(name)
    await database_sync_to_async(watched)(name)
    return found


def agent_flags(port: int, token: str) -> tuple[str, ...]:
    server = f"http://127.0.0.1:{port}"
    return ("--server", server, "--token", token, "--interval", f"{INTERVAL:g}")


def history(client: redis.Redis, host: str) -> list[str]:
    """The timestamps of a host's stored snapshots, oldest first (one per entry)."""
    texts = client.zrange(host_key("history", host=host), 0, -1)
    return [json.loads(text)["timestamp"] for text in texts]


def hosts_api(port: int, token: str) -> dict[str, dict]:
    """GET /api/hosts as a signed-in user; the hosts by name."""
    answer = Session(port).get("/api/hosts", Authorization=f"Bearer {token}")
    assert answer.status == 200, answer.text
    return {host["name"]: host for host in answer.json()}


async def agent_socket_closed(port: int, token: str) -> tuple[int, str]:
    """Connect to the agent socket with a host token as an agent would; return the
    close code and reason the server answers with."""
    url = f"ws://127.0.0.1:{port}/api/ws/agent"
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(
        url, additional_headers=headers, open_timeout=RECEIVE_WITHIN
    ) as ws:
        return await close_frame(ws)


async def next_metrics(ws: ClientConnection, within: float = FIRST_SNAPSHOT_WITHIN):
    """The next snapshot frame a viewer gets (other frames skipped)."""
    deadline = time.monotonic() + within
    while True:
        left = max(deadline - time.monotonic(), 0.1)
        frame = await receive_json(ws, within=left)
        if frame["type"] == "metrics":
            return frame


async def listen(ws: ClientConnection, duration: float) -> list[dict]:
    """Every frame a viewer gets in the next `duration` seconds."""
    frames = []
    deadline = time.monotonic() + duration
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(await receive_json(ws, within=left))
        except TimeoutError:
            break
    return frames


async def host_state(
    ws: ClientConnection, host: str, since: float
) -> tuple[dict, float]:
    """The next frame other than a snapshot that a viewer of `host` gets, and how
    long after `since` (monotonic) it came; every frame until then is `host`'s."""
    while True:
        frame = await receive_json(ws, within=10)
        assert frame["host"] == host, frame
        if frame["type"] != "metrics":
            return frame, time.monotonic() - since


def stamps(frames: Iterable[dict]) -> list[str]:
    return [frame["timestamp"] for frame in frames if frame["type"] == "metrics"]


def assert_no_gap_and_no_duplicate(timestamps: list[str]) -> None:
    """One snapshot per interval: none twice, none missing."""
    assert len(set(timestamps)) == len(timestamps), timestamps
    times = [seconds(stamp) for stamp in timestamps]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap > 0 for gap in gaps), timestamps
    assert max(gaps) <= MAX_GAP_INTERVALS * INTERVAL, list(
        zip(timestamps[1:], gaps, strict=True)
    )


@dataclass
class Fleet:
    """Two web workers, and the agent of each agent host (alpha on the first
    worker, beta on the second)."""

    ports: tuple[int, int]
    workers: list[subprocess.Popen]
    agents: dict[str, AgentProcess]


@asynccontextmanager
async def running_agents(
    tmp_path: Path, servers: dict[str, int], tokens: dict[str, str]
) -> AsyncIterator[dict[str, AgentProcess]]:
    """Run the real agent of each host, against the worker on the port given for
    it; return once each has said it is connected."""
    async with AsyncExitStack() as stack:
        agents = {
            host: await stack.enter_async_context(
                running_agent(
                    tmp_path / f"agent-{host}.log",
                    *agent_flags(port, tokens[host]),
                )
            )
            for host, port in servers.items()
        }
        for host, agent in agents.items():
            await eventually(
                lambda agent=agent: agent.lines("Connected to"),
                20,
                f"the agent of {host} did not connect",
            )
        yield agents


@asynccontextmanager
async def fleet(tmp_path: Path, publisher: bool = True) -> AsyncIterator[Fleet]:
    """Two daphne workers on the run's Redis, the agents of alpha and beta, and
    (unless told not to) the local publisher of test-host."""
    tokens = {name: (await add_host(name))[1] for name in AGENT_HOSTS}
    with ExitStack() as stack:
        started = [
            stack.enter_context(
                processes.daphne(tmp_path, *processes.MAX_MESSAGE_FLAGS)
            )
            for _ in range(2)
        ]
        workers = [worker for worker, _ in started]
        ports = (started[0][1], started[1][1])
        if publisher:
            stack.enter_context(
                processes.publisher(tmp_path, "--interval", f"{INTERVAL:g}")
            )
        servers = dict(zip(AGENT_HOSTS, ports, strict=True))
        async with running_agents(tmp_path, servers, tokens) as agents:
            yield Fleet(ports, workers, agents)


@asynccontextmanager
async def viewers_of(
    hosts: Iterable[str], ports: Iterable[int], token: str
) -> AsyncIterator[dict[tuple[str, int], ClientConnection]]:
    """A viewer of each host on each worker (?host=NAME), by (host, port)."""
    sockets: dict[tuple[str, int], ClientConnection] = {}
    try:
        for port in ports:
            for host in hosts:
                sockets[host, port] = await open_socket(port, token, host=host)
        yield sockets
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets.values()))


async def test_viewers_of_each_host_get_its_snapshots_once_and_in_order(
    tmp_path, access_token, clean_redis
):
    async with (
        fleet(tmp_path) as hub,
        viewers_of(ALL_HOSTS, hub.ports, access_token) as viewers,
    ):
        # Each sender goes live with its host's first viewer.
        firsts = await asyncio.gather(*(next_metrics(ws) for ws in viewers.values()))
        windows = await asyncio.gather(
            *(listen(ws, 5 * INTERVAL) for ws in viewers.values())
        )
        for agent in hub.agents.values():
            assert agent.lines(f"Live: a snapshot every {INTERVAL:g} s")
            assert agent.process.poll() is None
    received = {
        key: [first, *window]
        for key, first, window in zip(viewers, firsts, windows, strict=True)
    }
    for (host, port), frames in received.items():
        assert {frame["host"] for frame in frames} == {host}, (host, port, frames)
        timestamps = stamps(frames)
        # Each once, in order: strictly increasing.
        assert timestamps == sorted(set(timestamps)), (host, port, timestamps)
        # About five intervals' worth, the first included.
        assert len(timestamps) >= 5, (host, port, timestamps)
    for host in ALL_HOSTS:
        # Both workers' viewers got the same snapshots, which are those stored:
        # none lost on either worker.
        first_port, second_port = (stamps(received[host, port]) for port in hub.ports)
        low = max(first_port[0], second_port[0])
        high = min(first_port[-1], second_port[-1])

        def within(timestamps: list[str], low=low, high=high) -> list[str]:
            return [stamp for stamp in timestamps if low <= stamp <= high]

        stored = within(history(clean_redis, host))
        assert len(stored) >= 4, (host, stored)
        assert within(first_port) == within(second_port) == stored, host


async def test_a_killed_agents_host_goes_offline_within_three_intervals(
    tmp_path, access_token, clean_redis
):
    async with (
        fleet(tmp_path, publisher=False) as hub,
        viewers_of(AGENT_HOSTS, hub.ports, access_token) as viewers,
    ):
        await asyncio.gather(*(next_metrics(ws) for ws in viewers.values()))
        before = await asyncio.to_thread(hosts_api, hub.ports[0], access_token)
        assert before["alpha"]["online"] is True
        assert before["beta"]["online"] is True

        killed = hub.agents["alpha"].process
        killed_at = time.monotonic()
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)

        told = await asyncio.gather(
            *(
                host_state(viewers["alpha", port], "alpha", killed_at)
                for port in hub.ports
            )
        )
        for frame, after in told:
            assert frame == {"type": "host", "host": "alpha", "online": False}
            logger.info("alpha offline for its viewers %.2f s after SIGKILL", after)
            assert after <= 3 * INTERVAL + 1, after
        after = await asyncio.to_thread(hosts_api, hub.ports[1], access_token)
        assert after["alpha"]["online"] is False
        assert after["beta"]["online"] is True
        # The other host's viewers go on as before.
        for port in hub.ports:
            assert (await next_metrics(viewers["beta", port], 5))["host"] == "beta"


async def test_a_frozen_agents_host_goes_offline_and_comes_back_with_its_data(
    tmp_path, access_token, clean_redis
):
    async with (
        fleet(tmp_path, publisher=False) as hub,
        viewers_of(["alpha"], hub.ports, access_token) as viewers,
    ):
        await asyncio.gather(*(next_metrics(ws) for ws in viewers.values()))
        # Stopped, not killed: its socket stays open, but no snapshot comes.
        frozen = hub.agents["alpha"].process
        stopped_at = time.monotonic()
        frozen.send_signal(signal.SIGSTOP)
        try:
            told = await asyncio.gather(
                *(host_state(ws, "alpha", stopped_at) for ws in viewers.values())
            )
            for frame, after in told:
                assert frame == {"type": "host", "host": "alpha", "online": False}
                logger.info("alpha offline %.2f s after SIGSTOP", after)
                assert after <= 3 * INTERVAL + 1, after
            hosts = await asyncio.to_thread(hosts_api, hub.ports[0], access_token)
            assert hosts["alpha"]["online"] is False
        finally:
            frozen.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        told = await asyncio.gather(
            *(host_state(ws, "alpha", resumed_at) for ws in viewers.values())
        )
        for frame, _ in told:
            assert frame == {"type": "host", "host": "alpha", "online": True}
        for ws in viewers.values():
            assert (await next_metrics(ws, 5))["host"] == "alpha"
        hosts = await asyncio.to_thread(hosts_api, hub.ports[1], access_token)
        assert hosts["alpha"]["online"] is True


async def test_agents_reconnect_after_every_worker_is_killed_and_history_is_whole(
    tmp_path, access_token, clean_redis
):
    tokens = {name: (await add_host(name))[1] for name in AGENT_HOSTS}
    ports = (free_port(), free_port())
    servers = dict(zip(AGENT_HOSTS, ports, strict=True))

    def start_workers(stack: ExitStack) -> list[subprocess.Popen]:
        return [
            stack.enter_context(
                processes.daphne(tmp_path, *processes.MAX_MESSAGE_FLAGS, port=port)
            )[0]
            for port in ports
        ]

    with ExitStack() as stack:
        workers = start_workers(stack)
        async with running_agents(tmp_path, servers, tokens) as agents:
            async with viewers_of(AGENT_HOSTS, ports, access_token) as viewers:
                firsts = await asyncio.gather(
                    *(next_metrics(ws) for ws in viewers.values())
                )
                went_live = {
                    host: min(f["timestamp"] for f in firsts if f["host"] == host)
                    for host in AGENT_HOSTS
                }
                await asyncio.gather(
                    *(listen(ws, 2 * INTERVAL) for ws in viewers.values())
                )
                connects = {h: len(a.lines("Connected to")) for h, a in agents.items()}
                backfills = {h: len(a.lines("Backfill: ")) for h, a in agents.items()}
                for worker in workers:
                    worker.send_signal(signal.SIGKILL)
                for worker in workers:
                    worker.wait(10)
                killed_at = time.time()
            # Away for a few intervals, then started again on the same ports (a
            # worker takes 1-4 s more to start): the agents go on taking snapshots,
            # with nowhere to send them.
            await asyncio.sleep(OUTAGE)
            start_workers(stack)
            restarted_at = time.time()
            for host, agent in agents.items():
                await eventually(
                    lambda agent=agent, host=host: (
                        len(agent.lines("Connected to")) > connects[host]
                        and len(agent.lines("Backfill: ")) > backfills[host]
                    ),
                    30,
                    f"the agent of {host} did not reconnect and backfill",
                )
                assert agent.process.poll() is None
                assert agent.lines("Disconnected: the connection was lost")
                assert not agent.lines("wait for the next connection"), agent.lines()
                buffered = agent.lines("buffered snapshot(s) as backfill")[-1]
                logger.info("%s: %s", host, buffered)
                assert int(buffered.split("Sending ")[1].split()[0]) >= 3, buffered
            # Viewers again, so that the hosts stay live; and snapshots reach them.
            async with viewers_of(AGENT_HOSTS, ports, access_token) as viewers:
                await asyncio.gather(*(next_metrics(ws) for ws in viewers.values()))
                finished_at = time.time()
    for host in AGENT_HOSTS:
        since_live = [s for s in history(clean_redis, host) if s >= went_live[host]]
        assert seconds(since_live[0]) < killed_at - 2 * INTERVAL, host
        assert seconds(since_live[-1]) > restarted_at, host
        assert_no_gap_and_no_duplicate(
            [s for s in since_live if seconds(s) <= finished_at]
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [("rotate", "invalid host token"), ("disable", "host disabled")],
)
async def test_a_rotated_token_or_disabled_host_closes_the_agent_and_stops_its_data(
    tmp_path, access_token, clean_redis, redis_in_test, change, reason
):
    host, token = await add_host("alpha")
    with processes.daphne(tmp_path, *processes.MAX_MESSAGE_FLAGS) as (_, port):
        async with (
            running_agents(tmp_path, {"alpha": port}, {"alpha": token}) as agents,
            viewers_of(["alpha"], [port], access_token) as viewers,
        ):
            agent = agents["alpha"]
            ws = viewers["alpha", port]
            await next_metrics(ws)
            await next_metrics(ws, 5)
            assert len(history(clean_redis, "alpha")) >= 2
            changed_at = time.monotonic()
            if change == "rotate":
                await database_sync_to_async(rotate_token)(host)
            else:
                await database_sync_to_async(set_enabled)(host, False)
            closed = await eventually(
                lambda: agent.lines("4001"), 5, "the agent's socket stayed open"
            )
            took = time.monotonic() - changed_at
            logger.info("agent closed with 4001 %.2f s after the change", took)
            assert took <= 2.0
            assert f"the server refused the token (4001 {reason})" in closed[0]
            stored = history(clean_redis, "alpha")
            # Three intervals more: the agent keeps trying, but nothing is stored.
            await asyncio.sleep(3 * INTERVAL)
            assert history(clean_redis, "alpha") == stored
            assert agent.process.poll() is None


async def test_ingest_resumes_after_redis_restarts_without_restarting_the_agent(
    tmp_path, access_token
):
    _, token = await add_host("alpha")
    _, other_token = await add_host("gamma")
    redis_port = free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    with (
        processes.redis_server(tmp_path, redis_port) as server,
        processes.daphne(tmp_path, *processes.MAX_MESSAGE_FLAGS, REDIS_URL=url) as (
            _,
            port,
        ),
    ):
        client = redis.Redis.from_url(url)
        try:
            async with (
                running_agents(tmp_path, {"alpha": port}, {"alpha": token}) as agents,
                viewers_of(["alpha"], [port], access_token) as viewers,
            ):
                agent = agents["alpha"]
                pid = agent.process.pid
                await next_metrics(viewers["alpha", port])
                assert history(client, "alpha")
                server.stop()
                stopped_at = time.monotonic()
                # An agent connecting meanwhile is told why it cannot stay.
                closed = await agent_socket_closed(port, other_token)
                assert closed == (1011, "data store unavailable")
                # Down for a few of the agent's intervals.
                await asyncio.sleep(3 * INTERVAL - (time.monotonic() - stopped_at))
                server.start()
                restarted_at = time.time()

                def live_since_restart() -> bool:
                    """A live snapshot taken after the restart is the latest, and
                    in the history."""
                    try:
                        latest = client.get(host_key("latest", host="alpha"))
                        found = history(client, "alpha")
                    except redis.RedisError:
                        return False
                    if latest is None or json.loads(latest)["ts"] <= restarted_at:
                        return False
                    return any(seconds(s) > restarted_at for s in found)

                await eventually(
                    live_since_restart, 30, "no snapshot stored after the restart"
                )
                assert agent.process.poll() is None
                assert agent.process.pid == pid
                assert len(agent.lines("Connected to")) >= 2
        finally:
            client.close()
