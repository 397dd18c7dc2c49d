"""Who may hold the metrics socket open, and what a client may send on it."""

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accounts.models import User
from core import closes
from core.bounds import DAPHNE_MAX_MESSAGE_BYTES
from tests.support import processes
from tests.support.clients import close_code, open_socket, receive_json
from tests.support.hosts import PONG
from tests.support.users import watcher

pytestmark = pytest.mark.django_db(transaction=True)


def token_for(user, seconds: float = 300) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


async def ping(ws) -> dict:
    await ws.send(json.dumps({"type": "ping"}))
    reply = await receive_json(ws)
    while reply.get("type") == "metrics":
        reply = await receive_json(ws)
    return reply


@pytest.fixture
def bob(db, default_host):
    return watcher(User.objects.create_user(username="bob", password="irrelevant-here"))


# --- token lifetime on an open socket ---------------------------------------------


async def test_socket_closes_with_4001_when_its_token_expires(server, user):
    ws = await open_socket(server, token_for(user, seconds=2))
    started = time.monotonic()
    assert await ping(ws) == PONG
    assert await close_code(ws, within=10) == closes.UNAUTHORIZED
    assert time.monotonic() - started <= 5.0


async def test_auth_message_with_a_new_token_keeps_the_socket_open(server, user):
    ws = await open_socket(server, token_for(user, seconds=2))
    fresh = AccessToken.for_user(user)
    await ws.send(json.dumps({"type": "auth", "token": str(fresh)}))
    reply = await receive_json(ws)
    assert reply["type"] == "auth"
    assert reply["expires"].endswith("Z")
    assert reply["expires"] == time.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(fresh["exp"])
    )
    await asyncio.sleep(3)
    assert await ping(ws) == PONG
    await ws.close()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "auth", "token": "not-a-jwt"},
        {"type": "auth"},
        {"type": "auth", "token": 12},
    ],
    ids=["malformed", "missing", "not-a-string"],
)
async def test_auth_message_with_a_bad_token_closes_with_4001(server, user, message):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps(message))
    assert await close_code(ws) == closes.UNAUTHORIZED


async def test_auth_message_with_another_users_token_closes_with_4001(
    server, user, bob
):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps({"type": "auth", "token": token_for(bob)}))
    assert await close_code(ws) == closes.UNAUTHORIZED


async def test_deactivating_a_user_closes_their_sockets_only(server, user, bob):
    alice_sockets = [await open_socket(server, token_for(user)) for _ in range(2)]
    bobs = await open_socket(server, token_for(bob))
    assert await ping(alice_sockets[0]) == PONG
    user.is_active = False
    started = time.monotonic()
    await sync_to_async(user.save)()
    for ws in alice_sockets:
        assert await close_code(ws, within=5) == closes.UNAUTHORIZED
    assert time.monotonic() - started < 5
    assert await ping(bobs) == PONG
    await bobs.close()


async def test_a_deactivated_user_cannot_reopen_though_the_worker_knew_them(
    server, user
):
    ws = await open_socket(server, token_for(user))
    assert await ping(ws) == PONG
    user.is_active = False
    await sync_to_async(user.save)()
    assert await close_code(ws, within=5) == closes.UNAUTHORIZED
    again = await open_socket(server, token_for(user))
    assert await close_code(again, within=5) == closes.UNAUTHORIZED


async def test_a_change_made_without_signals_is_seen_within_the_cache_lifetime(
    tmp_path, user
):
    with processes.daphne(tmp_path, AUTH_USER_CACHE_SECONDS="1") as (_, port):
        ws = await open_socket(port, token_for(user))
        assert await ping(ws) == PONG
        await User.objects.filter(pk=user.pk).aupdate(is_active=False)
        await asyncio.sleep(1.2)
        again = await open_socket(port, token_for(user))
        assert await close_code(again, within=5) == closes.UNAUTHORIZED
        await ws.close()


async def test_deleting_a_user_closes_their_sockets(server, user):
    ws = await open_socket(server, token_for(user))
    assert await ping(ws) == PONG
    await sync_to_async(user.delete)()
    assert await close_code(ws, within=5) == closes.UNAUTHORIZED


# --- the token outside the URL ------------------------------------------------------


async def test_token_in_the_subprotocol_header_is_accepted(server, user):
    token = token_for(user)
    ws = await open_socket(server, None, subprotocols=["bearer", token])
    assert ws.subprotocol == "bearer"
    assert token not in str(ws.response.headers)
    assert await ping(ws) == PONG
    await ws.close()


async def test_bad_token_in_the_subprotocol_header_closes_with_4001(server):
    ws = await open_socket(server, None, subprotocols=["bearer", "not-a-jwt"])
    assert await close_code(ws) == closes.UNAUTHORIZED


async def test_no_log_line_contains_a_token(tmp_path, user):
    tokens = [token_for(user), token_for(user, seconds=-60), "eyJhbGciOiJub25lIn0.e30."]
    with processes.daphne(tmp_path, METRICS_LOG_LEVEL="DEBUG") as (_, port):
        for token in tokens:
            ws = await open_socket(port, token)
            # A refused token's socket may be closed already.
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "auth", "token": token}))
                await receive_json(ws)
            await ws.close()
            ws = await open_socket(port, None, subprotocols=["bearer", token])
            await ws.close()
            # Over HTTP too: a bearer header and a body carrying the token.
            await asyncio.to_thread(http_with_token, port, token)
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "WSCONNECT" in logs, "the access log was not written"
    for token in tokens:
        assert token not in logs
    assert "eyJ" not in logs


def http_with_token(port: int, token: str) -> None:
    base = f"http://127.0.0.1:{port}/api"
    requests = [
        urllib.request.Request(
            f"{base}/metrics/history?seconds=60",
            headers={"Authorization": f"Bearer {token}"},
        ),
        urllib.request.Request(
            f"{base}/auth/verify",
            data=json.dumps({"token": token}).encode(),
            headers={"Content-Type": "application/json"},
        ),
    ]
    for request in requests:
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as error:
            error.close()


# --- origins ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", None], ids=["foreign", "none"]
)
async def test_socket_from_a_disallowed_origin_is_refused_with_403(
    server, user, origin
):
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(server, token_for(user), origin=origin)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:1", "https://localhost"], ids=["port", "scheme"]
)
async def test_another_port_or_scheme_of_an_allowed_host_opens_nothing_by_cookies(
    server, user, origin
):
    # The origin check compares host names only (SECURITY.md says why that is safe):
    # such a page's socket is accepted, but a logged-in admin's session cookie,
    # which the browser would send along, authenticates nothing; only a token does.
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    ws = await open_socket(
        server, None, origin=origin, additional_headers={"Cookie": cookie}
    )
    assert await close_code(ws) == closes.UNAUTHORIZED
    ws = await open_socket(server, token_for(user), origin=origin)
    assert await ping(ws) == PONG
    await ws.close()


# --- size and rate of client frames ---------------------------------------------


async def test_frame_over_the_limit_closes_that_socket_with_4009(server, user):
    big = await open_socket(server, token_for(user))
    other = await open_socket(server, token_for(user))
    await big.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
    assert await close_code(big) == closes.MESSAGE_TOO_BIG
    assert await ping(other) == PONG
    await other.close()


async def test_frame_over_daphnes_limit_is_refused_with_1009(server, user):
    ws = await open_socket(server, token_for(user), max_size=None)
    await ws.send("x" * (DAPHNE_MAX_MESSAGE_BYTES + 1))
    assert await close_code(ws) == 1009


async def test_frame_under_daphnes_limit_but_over_ours_is_closed_with_4009(
    server, user
):
    ws = await open_socket(server, token_for(user), max_size=None)
    await ws.send("x" * 70_000)
    assert await close_code(ws) == closes.MESSAGE_TOO_BIG


async def test_flood_of_frames_closes_that_socket_with_4008(server, user):
    flooder = await open_socket(server, token_for(user))
    other = await open_socket(server, token_for(user))
    for _ in range(200):
        await flooder.send(json.dumps({"type": "ping"}))
    assert await close_code(flooder) == closes.TOO_MANY_MESSAGES
    started = time.monotonic()
    assert await ping(other) == PONG
    assert time.monotonic() - started < 1.0
    await other.close()


async def test_pings_at_a_normal_pace_are_never_limited(server, user):
    ws = await open_socket(server, token_for(user))
    for _ in range(30):
        assert await ping(ws) == PONG
        await asyncio.sleep(0.25)
    await ws.close()


# --- permission -------------------------------------------------------------------


async def test_required_permission_is_checked_at_connect(tmp_path, user, bob):
    permission = await Permission.objects.aget(codename="view_metrics")
    await sync_to_async(bob.user_permissions.add)(permission)
    env = {"METRICS_REQUIRED_PERMISSION": "metrics.view_metrics"}
    with processes.daphne(tmp_path, **env) as (_, port):
        refused = await open_socket(port, token_for(user))
        assert await close_code(refused) == closes.FORBIDDEN
        allowed = await open_socket(port, token_for(bob))
        assert await ping(allowed) == PONG
        await allowed.close()


def test_required_permission_guards_the_history(client, user, settings, clean_redis):
    settings.METRICS_REQUIRED_PERMISSION = "metrics.view_metrics"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token_for(user)}"}
    assert client.get("/api/metrics/history", **headers).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_metrics"))
    assert client.get("/api/metrics/history", **headers).status_code == 200
