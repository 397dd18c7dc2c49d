"""Issue 14's overview stream with real processes: two daphne workers on one
Redis, the real agents of two hosts, and three users who may see different hosts
(one both, one a host granted to them, one a host granted to their group), each
with fleet sockets on both workers."""

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from prometheus_client.parser import text_string_to_metric_families
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import ClientConnection, connect

from accounts.models import User
from core import closes
from core.keys import redis_key
from metrics.fleet import FIGURES
from metrics.hosts import create_host
from metrics.models import Host
from tests.support import processes, tokens
from tests.support.agents import AgentProcess, running_agent
from tests.support.clients import RECEIVE_WITHIN, close_frame, open_socket, receive_json

pytestmark = pytest.mark.django_db(transaction=True)

logger = logging.getLogger(__name__)

# The agents' interval and the fleet's (METRICS_INTERVAL of the workers).
INTERVAL = 1.0
HOSTS = ("alpha", "beta")
# Who sees what: "both" is granted both hosts, "one" alpha, "grouped" is in a
# group granted beta.
SEES = {"both": ["alpha", "beta"], "one": ["alpha"], "grouped": ["beta"]}
# Fleet sockets each user opens on each worker: more sockets than grant sets.
SOCKETS = {"both": 2, "one": 3, "grouped": 1}
SCRAPE_TOKEN = "fleet-e2e-scrape-token"
# Time for a frame showing both hosts live: the agents go live within a second
# and a frame, and send within an interval; generous, for a busy 2-core machine.
LIVE_WITHIN = 20.0


def fleet_url(port: int, token: str | None) -> str:
    query = f"?token={token}" if token is not None else ""
    return f"ws://127.0.0.1:{port}/api/ws/fleet{query}"


async def open_fleet(port: int, token: str | None) -> ClientConnection:
    """Open the fleet socket as a browser on an allowed origin would."""
    return await connect(
        fleet_url(port, token),
        origin=f"http://127.0.0.1:{port}",
        open_timeout=RECEIVE_WITHIN,
    )


async def next_fleet(ws: ClientConnection, within: float = 5 * INTERVAL) -> dict:
    frame = await receive_json(ws, within)
    assert frame["type"] == "fleet", frame
    return frame


def built_at(frame: dict) -> float:
    return datetime.fromisoformat(frame["timestamp"]).timestamp()


def names(frame: dict) -> list[str]:
    return [entry["host"] for entry in frame["hosts"]]


async def frame_where(
    ws: ClientConnection, condition: Callable[[dict], bool], within: float
) -> tuple[dict, float]:
    """The first fleet frame that meets `condition`, and how long it took."""
    started = time.monotonic()
    deadline = started + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no fleet frame met the condition in time")
        frame = await next_fleet(ws, left)
        if condition(frame):
            return frame, time.monotonic() - started


def entry(frame: dict, host: str) -> dict | None:
    return next((e for e in frame["hosts"] if e["host"] == host), None)


def live(frame: dict) -> bool:
    """Whether every host of the frame is online, with every figure."""
    return all(
        e["online"] and all(e[figure] is not None for figure in FIGURES)
        for e in frame["hosts"]
    )


def scrape(port: int) -> dict[str, float]:
    """The worker's own fleet counters (no multiprocess directory: its figures)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("monitor_fleet")
        for sample in family.samples
        if sample.name.endswith("_total")
    }


@sync_to_async
def grant_setup() -> tuple[dict[str, str], dict[str, str]]:
    """The hosts (their tokens) and the users (their access tokens), granted as
    SEES says."""
    host_tokens = {}
    for name in HOSTS:
        _, host_tokens[name] = create_host(name)
    hosts = {host.name: host for host in Host.objects.all()}
    ops = Group.objects.create(name="ops")
    hosts["beta"].viewer_groups.add(ops)
    users = {}
    for username in SEES:
        user = User.objects.create_user(username=username, password="x")
        users[username] = str(AccessToken.for_user(user))
    User.objects.get(username="both").visible_hosts.add(hosts["alpha"], hosts["beta"])
    User.objects.get(username="one").visible_hosts.add(hosts["alpha"])
    User.objects.get(username="grouped").groups.add(ops)
    return host_tokens, users


@dataclass
class Deployment:
    """Two web workers, their ports, the hosts' tokens and the users' tokens."""

    ports: tuple[int, int]
    workers: list[subprocess.Popen]
    host_tokens: dict[str, str]
    users: dict[str, str]
    tmp_path: Path

    @asynccontextmanager
    async def agent(self, host: str, port: int) -> AsyncIterator[AgentProcess]:
        flags = ("--server", f"http://127.0.0.1:{port}")
        flags += ("--token", self.host_tokens[host], "--interval", f"{INTERVAL:g}")
        log = self.tmp_path / f"agent-{host}.log"
        async with running_agent(log, *flags) as agent:
            yield agent


@asynccontextmanager
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    host_tokens, users = await grant_setup()
    env = {
        "METRICS_INTERVAL": f"{INTERVAL:g}",
        "METRICS_PROMETHEUS_TOKEN": SCRAPE_TOKEN,
    }
    with ExitStack() as stack:
        started = [
            stack.enter_context(processes.daphne(tmp_path, **env)) for _ in range(2)
        ]
        ports = (started[0][1], started[1][1])
        workers = [worker for worker, _ in started]
        yield Deployment(ports, workers, host_tokens, users, tmp_path)


@asynccontextmanager
async def fleet_sockets(
    hub: Deployment,
) -> AsyncIterator[dict[tuple[str, int, int], ClientConnection]]:
    """SOCKETS[user] fleet sockets of each user on each worker, by (user, port, n)."""
    sockets: dict[tuple[str, int, int], ClientConnection] = {}
    try:
        for port in hub.ports:
            for user, count in SOCKETS.items():
                for n in range(count):
                    sockets[user, port, n] = await open_fleet(port, hub.users[user])
        yield sockets
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets.values()))


@asynccontextmanager
async def agents(hub: Deployment) -> AsyncIterator[dict[str, AgentProcess]]:
    """alpha's agent on the first worker, beta's on the second."""
    async with AsyncExitStack() as stack:
        yield {
            host: await stack.enter_async_context(hub.agent(host, port))
            for host, port in zip(HOSTS, hub.ports, strict=True)
        }


async def test_each_user_gets_one_frame_per_interval_with_exactly_their_hosts(
    tmp_path,
):
    async with deployment(tmp_path) as hub, fleet_sockets(hub) as sockets:
        # Before any agent ran: the hosts are offline, never seen, without figures.
        firsts = dict(
            zip(
                sockets,
                await asyncio.gather(*(next_fleet(ws) for ws in sockets.values())),
                strict=True,
            )
        )
        for (user, _, _), frame in firsts.items():
            assert names(frame) == SEES[user], (user, frame)
            for host in frame["hosts"]:
                assert host["online"] is False, frame
                assert host["last_seen"] is None, frame
                assert all(host[figure] is None for figure in FIGURES), frame
        async with agents(hub):
            await asyncio.gather(
                *(frame_where(ws, live, LIVE_WITHIN) for ws in sockets.values())
            )
            before = [await asyncio.to_thread(scrape, port) for port in hub.ports]
            windows = await asyncio.gather(
                *(collect(ws, 5 * INTERVAL) for ws in sockets.values())
            )
            after = [await asyncio.to_thread(scrape, port) for port in hub.ports]
    received = dict(zip(sockets, windows, strict=True))
    for (user, port, n), frames in received.items():
        assert all(names(frame) == SEES[user] for frame in frames), (user, frames)
        assert all(live(frame) for frame in frames), (user, port, frames)
        times = [built_at(frame) for frame in frames]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        logger.info("%s on %d (%d): gaps %s", user, port, n, gaps)
        # Once per interval: none twice, none missing.
        assert len(frames) >= 4, (user, port, frames)
        assert all(0.5 * INTERVAL <= gap <= 1.5 * INTERVAL for gap in gaps), gaps
    # One build per interval for the deployment: every socket on either worker got
    # the same frames (the same build times), within the window both heard.
    stamps = [{frame["timestamp"] for frame in frames} for frames in received.values()]
    common = set.intersection(*stamps)
    assert len(common) >= 3, stamps
    low, high = min(common), max(common)
    for seen in stamps:
        assert {stamp for stamp in seen if low <= stamp <= high} == common
    # Framed once per distinct set of visible hosts per worker, not per socket.
    for port, first, last in zip(hub.ports, before, after, strict=True):
        built = (
            last["monitor_fleet_frames_built_total"]
            - first["monitor_fleet_frames_built_total"]
        )
        delivered = (
            last["monitor_fleet_frames_delivered_total"]
            - first["monitor_fleet_frames_delivered_total"]
        )
        logger.info("worker %d: %d frames built, %d delivered", port, built, delivered)
        events = built / len(SEES)
        assert events >= 4, (port, built)
        assert delivered == events * sum(SOCKETS.values()), (port, built, delivered)
    published = sum(
        last["monitor_fleet_events_published_total"]
        - first["monitor_fleet_events_published_total"]
        for first, last in zip(before, after, strict=True)
    )
    assert abs(published - events) <= 1, (published, events)


async def collect(ws: ClientConnection, duration: float) -> list[dict]:
    """Every fleet frame a socket gets in the next `duration` seconds."""
    frames = []
    deadline = time.monotonic() + duration
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await next_fleet(ws, left)
        except TimeoutError:
            break
        # Sent at its timestamp, never before (the leader builds it ahead).
        assert time.time() >= built_at(frame), frame["timestamp"]
        frames.append(frame)
    return frames


async def test_a_killed_agents_host_is_offline_in_the_next_frame_and_comes_back(
    tmp_path,
):
    async with deployment(tmp_path) as hub:
        token = hub.users["both"]
        watchers = [await open_fleet(port, token) for port in hub.ports]
        try:
            async with agents(hub) as running:
                await asyncio.gather(
                    *(frame_where(ws, live, LIVE_WITHIN) for ws in watchers)
                )
                killed_at = time.monotonic()
                running["alpha"].process.send_signal(signal.SIGKILL)
                running["alpha"].process.wait(10)
                told = await asyncio.gather(
                    *(
                        frame_where(ws, lambda f: not entry(f, "alpha")["online"], 10)
                        for ws in watchers
                    )
                )
                for frame, _ in told:
                    assert entry(frame, "beta")["online"] is True, frame
                    after = time.monotonic() - killed_at
                    logger.info("alpha offline in a frame %.2f s after SIGKILL", after)
                    assert after <= 3 * INTERVAL + 1, after
                    assert entry(frame, "alpha")["last_seen"] is not None
                async with hub.agent("alpha", hub.ports[1]):
                    back = await asyncio.gather(
                        *(frame_where(ws, live, LIVE_WITHIN) for ws in watchers)
                    )
                    for frame, after in back:
                        logger.info("alpha back online after %.2f s", after)
                        assert entry(frame, "alpha")["online"] is True
        finally:
            await asyncio.gather(*(ws.close() for ws in watchers))


async def test_a_grant_or_group_change_shows_in_the_next_frame(tmp_path):
    # Needs no agent: entries are listed whether or not their hosts ever sent.
    async with deployment(tmp_path) as hub:
        one = [await open_fleet(port, hub.users["one"]) for port in hub.ports]
        grouped = [await open_fleet(port, hub.users["grouped"]) for port in hub.ports]
        try:
            for ws in one:
                assert names(await next_fleet(ws)) == ["alpha"]
            for ws in grouped:
                assert names(await next_fleet(ws)) == ["beta"]
            await sync_to_async(remove_grant)("one", "alpha")
            await sync_to_async(grant_group)("ops", "alpha")
            for ws in one:
                _, after = await frame_where(ws, lambda f: not f["hosts"], 5)
                logger.info("grant removed: gone from a frame after %.2f s", after)
                assert after <= 2 * INTERVAL + 1, after
            for ws in grouped:
                await frame_where(ws, lambda f: names(f) == ["alpha", "beta"], 5)
        finally:
            await asyncio.gather(*(ws.close() for ws in [*one, *grouped]))


def remove_grant(username: str, host: str) -> None:
    Host.objects.get(name=host).viewers.remove(User.objects.get(username=username))


def grant_group(group: str, host: str) -> None:
    Host.objects.get(name=host).viewer_groups.add(Group.objects.get(name=group))


@pytest.fixture
def refusals(user) -> dict[str, str | None]:
    """Tokens that both viewer sockets must refuse, by what is wrong with them."""
    inactive = User.objects.create_user(username="gone", password="x")
    inactive_token = str(AccessToken.for_user(inactive))
    inactive.is_active = False
    inactive.save()
    short = AccessToken.for_user(user)
    short.set_exp(lifetime=timedelta(seconds=300))
    return {
        "none": None,
        "malformed": "not-a-jwt",
        "alg-none": tokens.unsigned_token(user),
        "foreign": tokens.foreign_signed_token(user),
        "refresh": tokens.refresh_token(user),
        "expired": tokens.expired_token(user),
        "inactive": inactive_token,
    }


async def test_the_fleet_socket_refuses_tokens_as_the_metrics_socket_does(
    server, refusals
):
    for why, token in refusals.items():
        fleet = await close_frame(await open_fleet(server, token))
        metrics = await close_frame(await open_socket(server, token))
        assert fleet == metrics, why
        assert fleet[0] == closes.UNAUTHORIZED, why


async def test_a_fleet_socket_answers_ping_and_renews_its_token(server, user):
    ws = await open_fleet(server, str(AccessToken.for_user(user)))
    try:
        await next_fleet(ws)
        await ws.send('{"type": "ping"}')
        assert await receive_json(ws) == {"type": "pong"}
        await ws.send('{"type": "auth", "token": "nope"}')
        assert await close_frame(ws) == closes.INVALID_TOKEN
    finally:
        await ws.close()


def leader_pid(client) -> int:
    """The process id of the web worker holding the fleet leader lock."""
    owner = client.get(redis_key("fleet", "leader"))
    assert owner is not None, "no worker leads the fleet"
    return int(owner.decode().split(":")[1])


async def test_the_frames_go_on_within_two_intervals_when_the_leading_worker_dies(
    tmp_path, clean_redis
):
    async with deployment(tmp_path) as hub:
        token = hub.users["both"]
        watchers = {port: await open_fleet(port, token) for port in hub.ports}
        try:
            for ws in watchers.values():
                await next_fleet(ws)
                await next_fleet(ws)
            pid = leader_pid(clean_redis)
            (dying,) = [
                port
                for port, worker in zip(hub.ports, hub.workers, strict=True)
                if worker.pid == pid
            ]
            (survivor,) = set(hub.ports) - {dying}
            ws = watchers[survivor]
            last = built_at(await next_fleet(ws))
            os.kill(pid, signal.SIGKILL)
            frames = await collect(ws, 5 * INTERVAL)
            assert leader_pid(clean_redis) == hub.workers[hub.ports.index(survivor)].pid
        finally:
            await asyncio.gather(*(ws.close() for ws in watchers.values()))
    times = [last, *(built_at(frame) for frame in frames)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    logger.info("frames on the surviving worker after the leader died: gaps %s", gaps)
    assert len(frames) >= 3, frames
    assert max(gaps) <= 2 * INTERVAL + 0.5, gaps


# With the socket cap (counted in Redis) and without it (the fan-out's join is the
# first to reach Redis).
@pytest.mark.parametrize("cap", ["1000", "0"])
async def test_unreachable_redis_closes_the_fleet_socket_with_1011_no_traceback(
    tmp_path, user, cap
):
    nowhere = f"redis://127.0.0.1:{processes.free_port()}/0"
    env = {"REDIS_URL": nowhere, "METRICS_WS_MAX_SOCKETS_PER_USER": cap}
    with processes.daphne(tmp_path, **env) as (_, port):
        ws = await open_fleet(port, str(AccessToken.for_user(user)))
        assert await close_frame(ws) == closes.DATA_STORE_UNAVAILABLE
    log = "".join(path.read_text() for path in tmp_path.glob("daphne-*.log"))
    assert "Redis unavailable on connect" in log
    assert "Traceback" not in log
