"""One user may hold METRICS_WS_MAX_SOCKETS_PER_USER sockets, counted across real
workers; one more is accepted, then closed with 4029 and a reason."""

import json
import signal

import pytest
from websockets.exceptions import ConnectionClosed

from core import closes
from tests.support import processes
from tests.support.clients import close_frame, open_socket, receive_json
from tests.support.hosts import PONG
from tests.support.tokens import claims_of, signed_token
from tests.support.users import watcher
from tests.support.waiting import eventually_equal

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 3
ENV = {"METRICS_WS_MAX_SOCKETS_PER_USER": str(CAP), "METRICS_VIEWER_TTL": "2"}


@pytest.fixture(autouse=True)
def _fresh_redis_keys(clean_redis):
    """Each test starts with no socket counted."""


@pytest.fixture
def bob(django_user_model):
    return watcher(
        django_user_model.objects.create_user(username="bob", password="unused")
    )


def token(user) -> str:
    return signed_token(claims_of(user))


async def served(ws) -> bool:
    """Whether a socket is open and answers a ping."""
    try:
        await ws.send(json.dumps({"type": "ping"}))
        return await receive_json(ws) == PONG
    except ConnectionClosed:
        return False


async def open_one_more(port: int, user) -> bool:
    """Open a socket; True if it is served, False if closed with 4029 (closed)."""
    ws = await open_socket(port, token(user))
    if await served(ws):
        await ws.close()
        return True
    assert await close_frame(ws) == closes.SOCKET_QUOTA_EXCEEDED
    return False


async def test_a_socket_over_the_cap_is_closed_with_4029_on_any_worker(
    tmp_path, user, bob
):
    with (
        processes.daphne(tmp_path, **ENV) as (_, first),
        processes.daphne(tmp_path, **ENV) as (_, second),
    ):
        held = [await open_socket(port, token(user)) for port in (first, first, second)]
        for ws in held:
            assert await served(ws)
        for port in (first, second):
            over = await open_socket(port, token(user))
            assert await close_frame(over) == closes.SOCKET_QUOTA_EXCEEDED
        # The sockets it has are untouched; other users are not counted with it.
        for ws in held:
            assert await served(ws)
        bobs = [await open_socket(second, token(bob)) for _ in range(CAP)]
        for ws in bobs:
            assert await served(ws)

        # A socket closed frees its place, on whichever worker.
        await held.pop(0).close()
        await eventually_equal(
            lambda: open_one_more(second, user), True, 10, "the place was not freed"
        )
        for ws in held + bobs:
            await ws.close()


async def test_a_killed_workers_sockets_stop_counting(tmp_path, user):
    with (
        processes.daphne(tmp_path, **ENV) as (doomed, doomed_port),
        processes.daphne(tmp_path, **ENV) as (_, port),
    ):
        lost = [await open_socket(doomed_port, token(user)) for _ in range(CAP - 1)]
        kept = await open_socket(port, token(user))
        assert all([await served(ws) for ws in [*lost, kept]])
        assert not await open_one_more(port, user)

        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        # Within METRICS_VIEWER_TTL (2 s here) its count no longer holds anyone back.
        await eventually_equal(
            lambda: open_one_more(port, user), True, 10, "the dead worker still counts"
        )
        more = [await open_socket(port, token(user)) for _ in range(CAP - 1)]
        assert all([await served(ws) for ws in more])
        assert not await open_one_more(port, user)
        for ws in [kept, *more]:
            await ws.close()


async def test_no_cap_when_it_is_0(tmp_path, user):
    with processes.daphne(tmp_path, METRICS_WS_MAX_SOCKETS_PER_USER="0") as (_, port):
        sockets = [await open_socket(port, token(user)) for _ in range(3 * CAP)]
        assert all([await served(ws) for ws in sockets])
        for ws in sockets:
            await ws.close()
