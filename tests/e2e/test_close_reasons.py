"""Every close of ours reaches a real client with its code and its short reason."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from core import closes
from tests.support import processes, tokens
from tests.support.clients import close_frame, open_socket, receive_json
from tests.support.users import watcher

pytestmark = pytest.mark.django_db(transaction=True)


def token_for(user, seconds: float = 300) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


@pytest.fixture
def bob(db, default_host):
    return watcher(User.objects.create_user(username="bob", password="irrelevant-here"))


async def refused_with(port: int, token: str | None) -> tuple[int, str]:
    return await close_frame(await open_socket(port, token))


async def test_no_token_closes_with_its_reason(server):
    assert await refused_with(server, None) == closes.NO_TOKEN


@pytest.mark.parametrize(
    "forge",
    [
        lambda user: "this-is-not-a-jwt",
        tokens.foreign_signed_token,
        tokens.unsigned_token,
        tokens.refresh_token,
    ],
    ids=["malformed", "foreign-signature", "alg-none", "refresh-token"],
)
async def test_invalid_token_closes_with_its_reason(server, user, forge):
    token = await sync_to_async(forge)(user)
    assert await refused_with(server, token) == closes.INVALID_TOKEN


async def test_expired_token_closes_with_its_reason(server, user):
    token = tokens.expired_token(user)
    assert await refused_with(server, token) == closes.TOKEN_EXPIRED


async def test_token_of_an_inactive_user_closes_with_its_reason(server, user):
    token = token_for(user)
    user.is_active = False
    await user.asave()
    assert await refused_with(server, token) == closes.USER_REFUSED


async def test_token_expiring_on_an_open_socket_closes_with_its_reason(server, user):
    ws = await open_socket(server, token_for(user, seconds=2))
    assert await close_frame(ws, within=10) == closes.TOKEN_EXPIRED


async def test_renewal_with_a_bad_token_closes_with_its_reason(server, user):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps({"type": "auth", "token": "not-a-jwt"}))
    assert await close_frame(ws) == closes.INVALID_TOKEN


async def test_renewal_without_a_token_closes_with_its_reason(server, user):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps({"type": "auth"}))
    assert await close_frame(ws) == closes.NO_TOKEN


async def test_renewal_with_another_users_token_closes_with_its_reason(
    server, user, bob
):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps({"type": "auth", "token": token_for(bob)}))
    assert await close_frame(ws) == closes.ANOTHER_USERS_TOKEN


async def test_deactivating_the_user_closes_with_its_reason(server, user):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps({"type": "ping"}))
    assert (await receive_json(ws))["type"] in {"pong", "metrics"}
    user.is_active = False
    await sync_to_async(user.save)()
    assert await close_frame(ws, within=5) == closes.USER_INACTIVE


async def test_too_big_a_frame_closes_with_its_reason(server, user):
    ws = await open_socket(server, token_for(user))
    await ws.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
    assert await close_frame(ws) == closes.FRAME_TOO_BIG


async def test_too_many_frames_close_with_their_reason(server, user):
    ws = await open_socket(server, token_for(user))
    for _ in range(200):
        await ws.send(json.dumps({"type": "ping"}))
    assert await close_frame(ws) == closes.RATE_EXCEEDED


async def test_missing_permission_closes_with_its_reason(tmp_path, user):
    env = {"METRICS_REQUIRED_PERMISSION": "metrics.view_metrics"}
    with processes.daphne(tmp_path, **env) as (_, port):
        assert await refused_with(port, token_for(user)) == closes.PERMISSION_REQUIRED


async def test_unreachable_redis_closes_with_1011_and_its_reason_no_traceback(
    tmp_path, user
):
    nowhere = f"redis://127.0.0.1:{processes.free_port()}/0"
    with processes.daphne(tmp_path, REDIS_URL=nowhere) as (_, port):
        assert await refused_with(port, token_for(user)) == (
            closes.DATA_STORE_UNAVAILABLE
        )
    log = "".join(path.read_text() for path in tmp_path.glob("daphne-*.log"))
    assert "Redis unavailable on connect" in log
    assert "Traceback" not in log


def test_every_reason_fits_a_close_frame():
    for close in closes.ALL:
        assert 0 < len(close.reason.encode()) <= closes.MAX_REASON_BYTES


def test_cut_reasons_never_split_a_character():
    assert closes.fit_reason("é" * 100) == "é" * 61
    assert closes.fit_reason("") is None


@pytest.mark.parametrize(
    ("document", "socket_closes"),
    [("protocol.md", closes.VIEWER), ("agent-protocol.md", closes.AGENT)],
)
def test_the_protocols_list_every_code_with_its_reason(document, socket_closes):
    protocol = (processes.ROOT / "docs" / document).read_text()
    for close in socket_closes:
        code = f"**{close.code}**" if close.code >= 4000 else str(close.code)
        assert f"| {code} | `{close.reason}` |" in protocol, close
