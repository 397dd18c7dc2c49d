"""Access re-checked beside the delivery of snapshots: a slow re-check holds no
snapshot back; a change no signal announces closes its sockets within
AUTH_USER_CACHE_SECONDS; a token renewal checks the host again."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.revocation import REVOCATION_GROUP
from core import closes
from metrics.access import HostAccess
from metrics.grants import access_event
from tests.support.hosts import GROUP, HOST, host_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_host_online"),
]

SNAPSHOT = {"type": "metrics", "timestamp": "2026-01-19T14:30:05.000Z", "data": {}}


async def connect(communicator, token: str):
    comm = communicator(f"token={token}")
    assert (await comm.connect())[0]
    return comm


@sync_to_async
def leave_groups_unannounced(user: User) -> None:
    """Take the user out of every group in raw SQL: no signal sees it."""
    table = User.groups.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE user_id = %s", [user.pk])  # noqa: S608


async def closed_with(comm) -> tuple[int, str]:
    while True:
        output = await comm.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output["code"], output["reason"]


async def test_a_slow_recheck_holds_no_snapshot_back(
    communicator, redis_layer, user, access_token, monkeypatch
):
    comm = await connect(communicator, access_token)
    read = HostAccess.load

    async def slow(self, key):
        await asyncio.sleep(3)
        return await read(self, key)

    monkeypatch.setattr(HostAccess, "load", slow)
    await redis_layer.group_send(REVOCATION_GROUP, access_event([user.pk], [HOST]))
    event = host_event(SNAPSHOT, 1000.0)
    await redis_layer.group_send(GROUP, event)
    assert await comm.receive_from(timeout=1) == event["text"]


async def test_a_change_no_signal_announced_closes_within_the_cache_time(
    communicator, user, access_token, settings
):
    settings.AUTH_USER_CACHE_SECONDS = 0.5
    comm = await connect(communicator, access_token)
    await leave_groups_unannounced(user)
    code, reason = await asyncio.wait_for(closed_with(comm), 3)
    assert (code, reason) == closes.NO_SUCH_HOST


async def test_a_renewal_checks_the_host_again(communicator, user, access_token):
    comm = await connect(communicator, access_token)
    await leave_groups_unannounced(user)
    await comm.send_json_to({"type": "auth", "token": str(AccessToken.for_user(user))})
    assert await closed_with(comm) == closes.NO_SUCH_HOST
