"""The real agent process against a stand-in for the server's agent socket.

The server's /api/ws/agent does not exist yet: tests/support/agent_stub.py speaks its
protocol (docs/agent-protocol.md). These tests hold the agent's side of it; e2e tests
against the real server replace them once it exists.
"""

import asyncio
import itertools
import re
import signal
import statistics
import time
from datetime import UTC, datetime

import pytest

from agent.collectors import HostCollector
from agent.snapshots import build_snapshot
from tests.support.agent_stub import AgentStub
from tests.support.agents import running_agent
from tests.support.waiting import eventually

TOKEN = "t0ken-for-edge-1_ABC"
HOST = "edge-1"
INTERVAL = 0.5
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _fresh_redis_keys():
    """Overrides tests/e2e/conftest.py's: nothing here touches Redis."""


def agent_flags(stub: AgentStub, *extra: str) -> list[str]:
    return ["--server", stub.url, "--token", TOKEN, *extra]


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def shape(snapshot: dict) -> dict:
    """The keys of each section of a snapshot's data."""
    return {name: sorted(section) for name, section in snapshot["data"].items()}


async def test_agent_connects_with_the_bearer_token_and_no_origin(tmp_path):
    async with AgentStub({TOKEN: HOST}, interval=5) as stub:
        flags = agent_flags(stub, "--interval", "0.5", "--verbose")
        async with running_agent(tmp_path / "agent.log", *flags) as agent:
            connection = await eventually(
                lambda: next((c for c in stub.connections if c.host), None),
                within=15,
                message="the agent did not connect",
            )
            await eventually(lambda: stub.metrics(), within=10, message="no snapshot")
    assert connection.path == "/api/ws/agent?interval=0.5"
    assert connection.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Origin" not in connection.headers
    assert connection.headers["User-Agent"].startswith("monitor-agent/")
    # The server adopts the agent's --interval for the host.
    assert connection.interval == 0.5
    # Even logging everything, the agent never writes its token.
    assert agent.lines("Connected to ")
    assert not agent.lines(TOKEN)


async def test_agent_sends_snapshots_in_the_seeds_format_every_interval(tmp_path):
    async with AgentStub({TOKEN: HOST}, live=True) as stub:
        flags = agent_flags(stub, "--interval", str(INTERVAL))
        async with running_agent(tmp_path / "agent.log", *flags) as agent:
            await eventually(
                lambda: len(stub.metrics()) >= 5,
                within=15,
                message=f"fewer than 5 snapshots arrived:\n{agent.log.read_text()}",
            )
    received = stub.metrics()
    assert stub.rejected == []
    assert not any(r.backfill for r in received)
    local = build_snapshot(HostCollector().collect(), datetime.now(UTC))
    for frame in (r.frame for r in received):
        assert set(frame) == {"type", "timestamp", "data"}
        assert frame["type"] == "metrics"
        assert TIMESTAMP.match(frame["timestamp"])
        # What the local publisher would publish on this machine, key for key.
        assert shape(frame) == shape(local)
    stamps = [seconds(r.timestamp) for r in received]
    assert stamps == sorted(set(stamps))
    spacing = statistics.median(b - a for a, b in itertools.pairwise(stamps))
    assert 0.8 * INTERVAL <= spacing <= 1.5 * INTERVAL


async def test_agent_follows_the_servers_live_idle_and_silent_cadence(tmp_path):
    async with AgentStub({TOKEN: HOST}, live=False, idle_interval=0) as stub:
        flags = agent_flags(stub, "--interval", str(INTERVAL))
        async with running_agent(tmp_path / "agent.log", *flags) as agent:
            await eventually(
                lambda: stub.open_connections(), within=15, message="no connection"
            )
            # Not live, idle interval 0: nothing at all.
            await asyncio.sleep(2.5)
            assert stub.metrics(backfill=False) == []

            # Not live, idle interval 1 s: one snapshot a second.
            await stub.configure(idle_interval=1)
            await eventually(
                lambda: len(stub.metrics(backfill=False)) >= 3,
                within=10,
                message="no idle snapshots",
            )
            idle = [seconds(r.timestamp) for r in stub.metrics(backfill=False)]
            assert min(b - a for a, b in itertools.pairwise(idle)) >= 0.8

            # Live: a fresh snapshot within a second, then one every interval.
            before = len(stub.metrics())
            switched = time.monotonic()
            await stub.configure(live=True)
            await eventually(
                lambda: len(stub.metrics()) > before, within=5, message="no snapshot"
            )
            assert stub.metrics()[before].at - switched <= 1.0
            await eventually(
                lambda: len(stub.metrics()) >= before + 5,
                within=10,
                message="no live snapshots",
            )
            live = [seconds(r.timestamp) for r in stub.metrics()[before:]]
            spacing = statistics.median(b - a for a, b in itertools.pairwise(live))
            assert 0.8 * INTERVAL <= spacing <= 1.5 * INTERVAL

            # Silent again.
            await stub.configure(live=False, idle_interval=0)
            await asyncio.sleep(1.0)  # a snapshot already on its way may arrive
            settled = len(stub.metrics())
            await asyncio.sleep(2.0)
            assert len(stub.metrics()) == settled
    assert agent.lines("Live: a snapshot every 0.5 s")
    assert len(agent.lines("Idle: nobody is watching; a snapshot every 1 s")) == 1
    assert len(agent.lines("no snapshots until somebody does")) == 2
    assert stub.rejected == []


async def test_agent_reconnects_and_sends_what_it_missed_once_as_backfill(tmp_path):
    stub = AgentStub({TOKEN: HOST}, live=True)
    await stub.start()
    try:
        flags = agent_flags(stub, "--interval", str(INTERVAL))
        async with running_agent(tmp_path / "agent.log", *flags) as agent:
            await eventually(
                lambda: len(stub.metrics()) >= 3, within=15, message="no snapshots"
            )
            # The server dies: connections dropped without a close frame, and
            # nothing listens for a while.
            await stub.stop()
            outage = time.monotonic()
            await asyncio.sleep(3.0)
            await stub.start()
            announced = await eventually(
                lambda: agent.lines("as backfill"), within=40, message="no backfill"
            )
            buffered = int(re.search(r"Sending (\d+) buffered", announced[0])[1])
            await eventually(
                lambda: (
                    len(stub.metrics(backfill=True)) >= buffered
                    and len([r for r in stub.metrics() if r.at > outage]) > buffered + 2
                ),
                within=20,
                message="the backfill or the live snapshots after it did not arrive",
            )
            # Nothing is sent twice, even once the connection is steady again.
            await asyncio.sleep(1.0)
    finally:
        await stub.stop()

    received = stub.metrics()
    backfill = stub.metrics(backfill=True)
    assert buffered >= 4  # 3 s at 0.5 s, less the time to notice
    assert len(backfill) == buffered
    assert all(
        set(r.frame) == {"type", "timestamp", "data", "backfill"} for r in backfill
    )
    assert len({r.connection for r in received}) == 2
    # Oldest first, all taken between the last live snapshot before the outage and
    # the first after it.
    stamps = [seconds(r.timestamp) for r in backfill]
    assert stamps == sorted(stamps)
    first_connection = [seconds(r.timestamp) for r in received if r.connection == 1]
    second_live = [
        seconds(r.timestamp) for r in received if r.connection == 2 and not r.backfill
    ]
    assert max(first_connection) < stamps[0]
    assert stamps[-1] < min(second_live)
    # Never twice, and no hole: every tick is there once.
    every = sorted(seconds(r.timestamp) for r in received)
    assert len(every) == len(set(every))
    assert max(b - a for a, b in itertools.pairwise(every)) < 2.5 * INTERVAL
    # Paced: no more than 20 a second.
    arrivals = [r.at for r in backfill]
    assert arrivals[-1] - arrivals[0] >= 0.9 * (len(arrivals) - 1) / 20
    # One line per change of state, not one per attempt.
    assert len(agent.lines("Disconnected: the connection was lost")) == 1
    assert len(agent.lines("Cannot connect: connection refused")) <= 1
    assert len(agent.lines("Connected to ")) == 2
    assert stub.rejected == []


async def test_agent_keeps_retrying_with_backoff_while_its_token_is_refused(tmp_path):
    async with AgentStub({}, live=True) as stub:
        flags = agent_flags(stub, "--interval", str(INTERVAL))
        async with running_agent(tmp_path / "agent.log", *flags) as agent:
            await eventually(
                lambda: len(stub.connections) >= 4,
                within=20,
                message="the agent stopped trying",
            )
            attempts = [c.opened_at for c in stub.connections]
            assert all(c.closed_by_stub == 4001 for c in stub.connections)
            # Delays of at least half of 0.5, 1 and 2 s: it backs off.
            assert attempts[3] - attempts[0] >= (0.25 + 0.5 + 1.0)
            assert agent.process.poll() is None
            # The host is enabled again: the agent gets in by itself, and sends what
            # it took meanwhile as backfill.
            stub.tokens[TOKEN] = HOST
            await eventually(
                lambda: stub.metrics(backfill=True) and stub.metrics(backfill=False),
                within=30,
                message="the agent did not come back",
            )
    refused = agent.lines("4001")
    assert len(refused) == 1, refused
    assert "the server refused the token (4001 invalid host token)" in refused[0]


async def test_a_server_that_drops_the_agent_at_once_gets_growing_delays(tmp_path):
    async with AgentStub({TOKEN: HOST}, live=True) as stub:
        stub.close_after_hello = (1011, "broken")
        async with running_agent(tmp_path / "agent.log", *agent_flags(stub)) as agent:
            await eventually(
                lambda: len(stub.connections) >= 4,
                within=20,
                message="the agent stopped trying",
            )
    attempts = [c.opened_at for c in stub.connections]
    # A hello alone does not start the backoff again: 0.25 + 0.5 + 1 s at least.
    assert attempts[3] - attempts[0] >= 1.75
    # Each connection is a change of state both ways: two lines, no more.
    connected = len(agent.lines("Connected to "))
    assert connected >= 4
    assert len(
        agent.lines("Disconnected: the server closed the socket (1011 broken)")
    ) in (
        connected,
        connected - 1,  # the last one may still have been open when the agent stopped
    )


async def test_agent_unreachable_at_start_retries_then_backfills(tmp_path):
    stub = AgentStub({TOKEN: HOST}, live=True)
    flags = agent_flags(stub, "--interval", str(INTERVAL))
    async with running_agent(tmp_path / "agent.log", *flags) as agent:
        await eventually(
            lambda: agent.lines("Cannot connect"), within=15, message="no retry line"
        )
        await asyncio.sleep(2.0)
        async with stub:
            await eventually(
                lambda: stub.metrics(backfill=True) and stub.metrics(backfill=False),
                within=30,
                message="no backfill after the server appeared",
            )
    assert len(agent.lines("Cannot connect")) == 1


async def test_replaced_agent_exits_with_status_3_and_stays_away(tmp_path):
    async with AgentStub({TOKEN: HOST}, live=True) as stub:
        flags = agent_flags(stub, "--interval", "1")
        async with running_agent(tmp_path / "first.log", *flags) as first:
            await eventually(
                lambda: stub.open_connections(), within=15, message="no connection"
            )
            async with running_agent(tmp_path / "second.log", *flags) as second:
                status = await asyncio.to_thread(first.process.wait, 15)
                assert status == 3
                connections = len(stub.connections)
                await eventually(
                    lambda: [r for r in stub.metrics() if r.connection == connections],
                    within=10,
                    message="the newer agent does not stream",
                )
                assert second.process.poll() is None
            # Only the newer agent's connection was made after the replacement.
            assert connections == 2
    assert stub.connections[0].closed_by_stub == 4010
    message = first.lines("Replaced")
    assert message
    assert "status 3" in message[0]
    assert "Traceback" not in first.log.read_text()


async def test_agent_stops_on_sigterm_closing_with_1001(tmp_path):
    stub = AgentStub({TOKEN: HOST}, live=True)
    async with (
        stub,
        running_agent(tmp_path / "agent.log", *agent_flags(stub)) as agent,
    ):
        await eventually(
            lambda: stub.open_connections(), within=15, message="no connection"
        )
        agent.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(agent.process.wait, 10) == 0
        await eventually(
            lambda: stub.connections[0].closed_by_agent,
            within=5,
            message="no close frame",
        )
    assert stub.connections[0].closed_by_agent == 1001
    assert agent.lines("Stopped")


async def test_agent_stops_at_once_while_a_handshake_hangs(tmp_path):
    # A server that accepts TCP connections and never answers the handshake.
    accepted = []

    async def hang(reader, writer):
        accepted.append(writer)
        await reader.read()  # until the agent goes away

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        flags = ["--server", f"http://127.0.0.1:{port}", "--token", TOKEN]
        async with running_agent(tmp_path / "agent.log", *flags) as agent:
            await eventually(lambda: accepted, within=15, message="no connection")
            agent.process.send_signal(signal.SIGTERM)
            # Well within the 15 s the handshake would be given.
            assert await asyncio.to_thread(agent.process.wait, 3) == 0
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--token", TOKEN], "the following arguments are required: --server"),
        (["--server", "example.com", "--token", TOKEN], "must start with http://"),
        (
            ["--server", "http://x", "--interval", "0.1", "--token", TOKEN],
            "0.5 to 3600",
        ),
        (["--server", "http://x"], "a host token is needed"),
    ],
)
async def test_bad_flags_exit_with_status_2_and_one_clear_line(
    tmp_path, flags, message
):
    log = tmp_path / "agent.log"
    async with running_agent(log, *flags) as agent:
        assert await asyncio.to_thread(agent.process.wait, 30) == 2
    output = log.read_text()
    assert message in output
    assert "Traceback" not in output
