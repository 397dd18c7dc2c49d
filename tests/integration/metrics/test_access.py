"""Who sees which host (metrics.access), through the full ASGI stack and the HTTP
API on the real Redis layer: grants to users and groups, superusers, the default
host per user, forbidden hosts answered as unknown ones, and grant changes
reaching open sockets and each process's memory of them."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from core import closes
from metrics import access, grants
from metrics.access import get_access, visible_hosts
from metrics.hosts import create_host, set_enabled
from metrics.models import Host
from tests.support.hosts import HOST

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_host_online"),
]


def token_of(user: User) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
def hosts(default_host) -> tuple[str, str]:
    """Two agent hosts besides the default one, granted to nobody."""
    for name in ("db-1", "db-2"):
        create_host(name)
    return ("db-1", "db-2")


@pytest.fixture
def carol(db) -> User:
    """A user granted nothing, in no group."""
    return User.objects.create_user(username="carol", password="unused-here")


@pytest.fixture
def ops(db) -> Group:
    return Group.objects.create(name="ops")


async def opened(communicator, user: User, host: str | None = None):
    """A socket of `user` (of `host` if given) that the server accepted and kept."""
    query = f"token={token_of(user)}" + (f"&host={host}" if host else "")
    comm = communicator(query)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"type": "ping"})
    pong = await comm.receive_json_from(timeout=5)
    assert pong["type"] == "pong", pong
    return comm, pong["host"]


async def closed_with(communicator, user: User, query: str) -> dict:
    comm = communicator(f"token={token_of(user)}{query}")
    connected, _ = await comm.connect()
    assert connected
    return await comm.receive_output(timeout=5)


async def close_of(comm) -> tuple[int, str]:
    """The close the server sends on an open socket (snapshots skipped)."""
    while True:
        output = await comm.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output["code"], output["reason"]


def grant(name: str, user: User | None = None, group: Group | None = None) -> None:
    host = Host.objects.get(name=name)
    if user is not None:
        host.viewers.add(user)
    if group is not None:
        host.viewer_groups.add(group)


# --- the rule ---------------------------------------------------------------------


def test_a_user_sees_the_hosts_granted_to_them_or_their_groups(hosts, carol, ops):
    assert visible_hosts(carol) == frozenset()
    grant("db-1", user=carol)
    assert visible_hosts(carol) == {"db-1"}
    grant("db-2", group=ops)
    assert visible_hosts(carol) == {"db-1"}
    carol.groups.add(ops)
    assert visible_hosts(carol) == {"db-1", "db-2"}


def test_a_superuser_sees_every_enabled_host(hosts, carol):
    set_enabled(create_host("off")[0], False)
    User.objects.filter(pk=carol.pk).update(is_superuser=True)
    # Read from the database, not from the object the caller holds.
    assert visible_hosts(carol) == {HOST, "db-1", "db-2"}


def test_a_disabled_host_is_seen_by_nobody(hosts, carol):
    grant("db-1", user=carol)
    set_enabled(create_host("db-3")[0], False)
    grant("db-3", user=carol)
    assert visible_hosts(carol) == {"db-1"}


async def test_overlapping_lookups_of_one_user_share_one_query(
    hosts, carol, monkeypatch
):
    reads: list[str] = []
    real = access.read_visible_hosts

    async def counted(user_id):
        reads.append(user_id)
        return await real(user_id)

    monkeypatch.setattr(access, "read_visible_hosts", counted)
    cache = get_access()
    cache.heard = True
    found = await asyncio.gather(*(cache.get(carol.pk) for _ in range(20)))
    assert {hosts for hosts, _ in found} == {frozenset()}
    await cache.get(carol.pk)
    assert reads == [str(carol.pk)]
    # Not trusted by a process that does not hear grant changes.
    cache.heard = False
    await cache.get(carol.pk)
    assert len(reads) == 2


# --- the socket -------------------------------------------------------------------


async def test_a_host_not_granted_closes_as_an_unknown_host_does(
    communicator, hosts, carol
):
    forbidden = await closed_with(communicator, carol, "&host=db-1")
    unknown = await closed_with(communicator, carol, "&host=no-such-host")
    assert (
        forbidden
        == unknown
        == {
            "type": "websocket.close",
            "code": closes.NOT_FOUND,
            "reason": closes.NO_SUCH_HOST.reason,
        }
    )


async def test_a_granted_host_is_served(communicator, hosts, carol, ops):
    await sync_to_async(grant)("db-1", user=carol)
    await sync_to_async(grant)("db-2", group=ops)
    await carol.groups.aadd(ops)
    for name in hosts:
        _, host = await opened(communicator, carol, name)
        assert host == name


async def test_without_a_host_a_user_gets_their_only_host_if_not_the_default(
    communicator, hosts, carol
):
    await sync_to_async(grant)("db-2", user=carol)
    _, host = await opened(communicator, carol)
    assert host == "db-2"


async def test_without_a_host_a_user_who_sees_several_gets_the_default(
    communicator, hosts, user
):
    await sync_to_async(grant)("db-2", user=user)
    _, host = await opened(communicator, user)
    assert host == HOST


async def test_without_a_host_a_user_who_sees_none_gets_no_host_to_show(
    communicator, hosts, carol
):
    assert await closed_with(communicator, carol, "") == {
        "type": "websocket.close",
        "code": closes.NOT_FOUND,
        "reason": closes.NO_DEFAULT_HOST.reason,
    }


async def test_a_superuser_is_served_any_host(communicator, hosts):
    root = await User.objects.acreate_superuser("root", password="unused-here")
    _, host = await opened(communicator, root, "db-2")
    assert host == "db-2"


async def test_a_grant_taken_away_closes_only_that_users_sockets_of_the_host(
    communicator, hosts, carol, user
):
    for viewer in (carol, user):
        for name in hosts:
            await sync_to_async(grant)(name, user=viewer)
    mine = await opened(communicator, carol, "db-1")
    my_other = await opened(communicator, carol, "db-2")
    theirs = await opened(communicator, user, "db-1")
    host = await Host.objects.aget(name="db-1")
    await host.viewers.aremove(carol)
    assert await close_of(mine[0]) == closes.NO_SUCH_HOST
    for comm, name in (my_other, theirs):
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=5) == {"type": "pong", "host": name}
    # The next socket is refused as for an unknown host.
    assert (await closed_with(communicator, carol, "&host=db-1"))["code"] == 4004


async def test_leaving_a_group_closes_the_sockets_it_allowed(
    communicator, hosts, carol, ops
):
    await sync_to_async(grant)("db-1", group=ops)
    await carol.groups.aadd(ops)
    comm, _ = await opened(communicator, carol, "db-1")
    await carol.groups.aremove(ops)
    assert await close_of(comm) == closes.NO_SUCH_HOST


async def test_a_group_losing_its_grant_closes_its_members_sockets(
    communicator, hosts, carol, ops
):
    await sync_to_async(grant)("db-1", group=ops)
    await carol.groups.aadd(ops)
    comm, _ = await opened(communicator, carol, "db-1")
    await ops.visible_hosts.aclear()
    assert await close_of(comm) == closes.NO_SUCH_HOST


async def test_a_superuser_made_ordinary_loses_the_hosts_not_granted(
    communicator, hosts
):
    root = await User.objects.acreate_superuser("root", password="unused-here")
    comm, _ = await opened(communicator, root, "db-1")
    root.is_superuser = False
    await root.asave()
    assert await close_of(comm) == closes.NO_SUCH_HOST


async def test_a_grant_made_is_seen_by_the_next_socket(
    communicator, hosts, carol, user
):
    # This process has a socket (it hears grant changes), and remembers carol.
    await opened(communicator, user)
    assert (await closed_with(communicator, carol, "&host=db-1"))["code"] == 4004
    await sync_to_async(grant)("db-1", user=carol)
    _, host = await opened(communicator, carol, "db-1")
    assert host == "db-1"


# --- the HTTP API -----------------------------------------------------------------


def api(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_of(user)}")
    return client


def test_the_hosts_api_lists_only_the_users_hosts(hosts, carol, user):
    grant("db-2", user=carol)
    listed = [host["name"] for host in api(carol).get("/api/hosts").json()]
    assert listed == ["db-2"]
    assert [host["name"] for host in api(user).get("/api/hosts").json()] == [HOST]


def test_the_history_of_a_host_not_granted_is_the_404_of_an_unknown_host(hosts, carol):
    forbidden = api(carol).get("/api/metrics/history?host=db-1")
    unknown = api(carol).get("/api/metrics/history?host=no-such-host")
    assert forbidden.status_code == unknown.status_code == 404
    assert forbidden.content == unknown.content == b'{"detail":"No such host."}'
    grant("db-1", user=carol)
    assert api(carol).get("/api/metrics/history?host=db-1").status_code == 200


def test_the_history_without_a_host_is_the_users_default(hosts, carol):
    assert api(carol).get("/api/metrics/history").status_code == 404
    grant("db-2", user=carol)
    assert api(carol).get("/api/metrics/history").json()["host"] == "db-2"


async def test_a_host_disabled_closes_its_viewers_as_if_it_were_gone(
    communicator, hosts, user
):
    await sync_to_async(grant)("db-1", user=user)
    comm, _ = await opened(communicator, user, "db-1")
    await sync_to_async(set_enabled)(await Host.objects.aget(name="db-1"), False)
    assert await close_of(comm) == closes.NO_SUCH_HOST


async def test_a_choice_is_checked_again_only_if_grants_changed_since(hosts, carol):
    await sync_to_async(grant)("db-1", user=carol)
    choice = await access.choose_visible_host(str(carol.pk), "db-1")
    assert choice.host == "db-1"
    # Taken away without a signal: the choice stands until the process forgets.
    await Host.viewers.through.objects.filter(user=carol).adelete()
    assert await choice.still_visible()
    get_access().forget([str(carol.pk)])
    assert not await choice.still_visible()


def test_an_access_event_names_its_users_and_hosts_and_a_malformed_one_everyone():
    event = grants.access_event([3, "1", 3], ["b", "a"])
    assert event == {
        "type": "access.changed",
        "user_ids": ["1", "3"],
        "hosts": ["a", "b"],
    }
    assert grants.read_access_event(event) == ({"1", "3"}, {"a", "b"})
    assert grants.read_access_event({"user_ids": [1], "hosts": "a"}) == (None, None)
