"""Who sees what, with real processes: two real agents (alpha, beta), two daphne
workers on one Redis, and three users: ann sees both hosts, ben sees alpha, cat is
in the group ops, which sees beta. Their sockets, /api/hosts and history show
exactly their hosts; a forbidden host answers as a missing one; grants taken away
in the admin (a host's viewers, a user's groups) or by `manage.py hosts revoke`
close the sockets they allowed on every worker; a user added to a group (by the
ORM in another process) sees its hosts on the next connect."""

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import ClientConnection

from accounts.models import User
from core import closes
from metrics.hosts import create_host
from metrics.models import Host
from tests.conftest import PASSWORD
from tests.support import processes
from tests.support.agents import running_agent
from tests.support.clients import close_frame, open_socket, receive_json
from tests.support.http import Session
from tests.support.users import service_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

logger = logging.getLogger(__name__)

INTERVAL = 1.0
HOSTS = ("alpha", "beta")
# Who sees what at the start.
SEES = {"ann": {"alpha", "beta"}, "ben": {"alpha"}, "cat": {"beta"}}
NO_SUCH_HOST = (closes.NO_SUCH_HOST.code, closes.NO_SUCH_HOST.reason)
# The limit for a grant taken away to close its sockets.
CLOSED_WITHIN = 2.0
FIRST_SNAPSHOT_WITHIN = 10.0


@dataclass
class Setting:
    """The workers' ports, and each user's access token by name."""

    ports: tuple[int, int]
    tokens: dict[str, str]


def make_people() -> dict[str, str]:
    """The hosts' grants and the users (and an admin); each user's access token."""
    ops = Group.objects.create(name="ops")
    ann, ben, cat = (User.objects.create_user(name) for name in SEES)
    cat.groups.add(ops)
    alpha, beta = (Host.objects.get(name=name) for name in HOSTS)
    alpha.viewers.add(ann, ben)
    beta.viewers.add(ann)
    beta.viewer_groups.add(ops)
    service_user("root", PASSWORD, is_staff=True, is_superuser=True)
    return {user.username: str(AccessToken.for_user(user)) for user in (ann, ben, cat)}


@asynccontextmanager
async def setting(tmp_path) -> AsyncIterator[Setting]:
    """Two workers; alpha's agent on the first, beta's on the second."""
    tokens = {
        name: (await database_sync_to_async(create_host)(name))[1] for name in HOSTS
    }
    users = await database_sync_to_async(make_people)()
    with ExitStack() as stack:
        started = [stack.enter_context(processes.daphne(tmp_path)) for _ in range(2)]
        ports = (started[0][1], started[1][1])
        async with (
            running_agent(
                tmp_path / "alpha.log", *agent_flags(ports[0], tokens["alpha"])
            ) as a,
            running_agent(
                tmp_path / "beta.log", *agent_flags(ports[1], tokens["beta"])
            ) as b,
        ):
            for agent in (a, b):
                await eventually(
                    lambda agent=agent: agent.lines("Connected to"),
                    20,
                    "an agent did not connect",
                )
            yield Setting(ports, users)


def agent_flags(port: int, token: str) -> tuple[str, ...]:
    server = f"http://127.0.0.1:{port}"
    return ("--server", server, "--token", token, "--interval", f"{INTERVAL:g}")


async def next_metrics(ws: ClientConnection) -> dict:
    """The next snapshot frame a viewer gets (other frames skipped)."""
    deadline = time.monotonic() + FIRST_SNAPSHOT_WITHIN
    while True:
        frame = await receive_json(ws, within=max(deadline - time.monotonic(), 0.1))
        if frame["type"] == "metrics":
            return frame


async def streamed(port: int, token: str, host: str) -> ClientConnection:
    """A socket of `host` that has received one of its snapshots."""
    ws = await open_socket(port, token, host=host)
    assert (await next_metrics(ws))["host"] == host
    return ws


async def refused(port: int, token: str, host: str) -> tuple[int, str]:
    """The close the server answers a socket of `host` with."""
    ws = await open_socket(port, token, host=host)
    return await close_frame(ws)


def api(port: int, token: str, path: str) -> tuple[int, str]:
    answer = Session(port).get(path, Authorization=f"Bearer {token}")
    return answer.status, answer.text


def hosts_listed(port: int, token: str) -> set[str]:
    answer = Session(port).get("/api/hosts", Authorization=f"Bearer {token}")
    assert answer.status == 200, answer.text
    return {host["name"] for host in answer.json()}


def manage(*args: str) -> None:
    """Run a manage.py command as its own process on this test's database."""
    command = [sys.executable, "manage.py", *args]
    result = processes.run_to_end(command, processes.service_env())
    assert result.returncode == 0, result.stderr


def admin(port: int) -> Session:
    """A superuser's session in the admin of the worker on `port`."""
    session = Session(port)
    assert session.admin_login("root", PASSWORD).status == 302
    return session


async def closed(sockets: list[ClientConnection], within: float) -> list[tuple]:
    """The close each socket gets (every receive within `within` s)."""
    return await asyncio.gather(*(close_frame(ws, within) for ws in sockets))


async def still_streaming(sockets: list[ClientConnection]) -> None:
    for ws in sockets:
        await next_metrics(ws)


async def test_each_user_sees_exactly_their_hosts_and_a_forbidden_one_is_missing(
    tmp_path,
):
    async with setting(tmp_path) as fleet:
        for name, token in fleet.tokens.items():
            for port in fleet.ports:
                missing = await refused(port, token, "no-such-host")
                assert missing == NO_SUCH_HOST
                for host in HOSTS:
                    if host in SEES[name]:
                        await (await streamed(port, token, host)).close()
                    else:
                        assert await refused(port, token, host) == missing
                assert await asyncio.to_thread(hosts_listed, port, token) == SEES[name]
                unknown = await asyncio.to_thread(
                    api, port, token, "/api/metrics/history?host=no-such-host"
                )
                assert unknown == (404, '{"detail":"No such host."}')
                for host in HOSTS:
                    status, body = await asyncio.to_thread(
                        api, port, token, f"/api/metrics/history?host={host}"
                    )
                    if host in SEES[name]:
                        assert status == 200, body
                    else:
                        assert (status, body) == unknown


async def test_grants_taken_away_in_the_admin_close_sockets_on_every_worker_in_2_s(
    tmp_path,
):
    async with setting(tmp_path) as fleet:
        tokens = fleet.tokens
        bens = [await streamed(port, tokens["ben"], "alpha") for port in fleet.ports]
        cats = [await streamed(port, tokens["cat"], "beta") for port in fleet.ports]
        anns = [
            await streamed(port, tokens["ann"], host)
            for port in fleet.ports
            for host in HOSTS
        ]
        session = await asyncio.to_thread(admin, fleet.ports[0])
        alpha = await Host.objects.aget(name="alpha")
        ann = await User.objects.aget(username="ann")

        # alpha's page: ben taken off its viewers.
        began = time.monotonic()
        page = f"/admin/metrics/host/{alpha.pk}/change/"
        await asyncio.to_thread(session.get, page)
        answer = await asyncio.to_thread(
            session.post_form, page, {"enabled": "on", "viewers": [str(ann.pk)]}
        )
        assert answer.status == 302, answer.text
        assert await closed(bens, CLOSED_WITHIN + 3) == [NO_SUCH_HOST] * 2
        took = time.monotonic() - began
        logger.info("ben's sockets closed %.2f s after the admin's change began", took)
        assert took <= CLOSED_WITHIN

        # cat's page: cat taken out of ops, the group that sees beta.
        cat = await User.objects.aget(username="cat")
        page = f"/admin/accounts/user/{cat.pk}/change/"
        await asyncio.to_thread(session.get, page)
        form = {
            "username": "cat",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        }
        began = time.monotonic()
        answer = await asyncio.to_thread(session.post_form, page, form)
        assert answer.status == 302, answer.text
        assert await closed(cats, CLOSED_WITHIN + 3) == [NO_SUCH_HOST] * 2
        took = time.monotonic() - began
        logger.info("cat's sockets closed %.2f s after the admin's change began", took)
        assert took <= CLOSED_WITHIN

        # Nobody else lost anything.
        await still_streaming(anns)
        for port in fleet.ports:
            assert await refused(port, tokens["ben"], "alpha") == NO_SUCH_HOST
            assert await refused(port, tokens["cat"], "beta") == NO_SUCH_HOST


async def test_a_user_added_to_a_group_sees_its_hosts_and_a_revoke_closes_them(
    tmp_path,
):
    async with setting(tmp_path) as fleet:
        ben = fleet.tokens["ben"]
        for port in fleet.ports:
            assert await refused(port, ben, "beta") == NO_SUCH_HOST
        # Another process, through the ORM: ben joins ops.
        add = (
            "from django.contrib.auth.models import Group;"
            "from accounts.models import User;"
            "User.objects.get(username='ben').groups.add(Group.objects.get(name='ops'))"
        )
        await asyncio.to_thread(manage, "shell", "-c", add)
        sockets = [await streamed(port, ben, "beta") for port in fleet.ports]
        cats = [
            await streamed(port, fleet.tokens["cat"], "beta") for port in fleet.ports
        ]
        for port in fleet.ports:
            assert await asyncio.to_thread(hosts_listed, port, ben) == set(HOSTS)

        # `manage.py hosts revoke` in another process: ops no longer sees beta.
        revoke = ("hosts", "revoke", "beta", "--group", "ops")
        revoking = asyncio.create_task(asyncio.to_thread(manage, *revoke))
        # Within the command's start-up (some seconds), and the 2 s.
        assert await closed([*sockets, *cats], 30) == [NO_SUCH_HOST] * 4
        await revoking
        for port in fleet.ports:
            assert await asyncio.to_thread(hosts_listed, port, ben) == {"alpha"}
