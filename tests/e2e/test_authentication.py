"""Every way a token can be wrong ends, for a real client, in close code 4001."""

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from core import closes
from tests.support import tokens
from tests.support.clients import close_code, open_socket, receive_json
from tests.support.hosts import PONG

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_closed_with_4001(port: int, token: str | None) -> None:
    ws = await open_socket(port, token)
    assert await close_code(ws) == closes.UNAUTHORIZED


async def test_valid_token_is_accepted_and_stays_open(server, access_token):
    ws = await open_socket(server, access_token)
    await ws.send('{"type": "ping"}')
    assert await receive_json(ws) == PONG
    await ws.close()


async def test_no_token_is_closed_with_4001(server):
    await assert_closed_with_4001(server, None)


async def test_empty_token_is_closed_with_4001(server):
    await assert_closed_with_4001(server, "")


async def test_malformed_token_is_closed_with_4001(server):
    await assert_closed_with_4001(server, "this-is-not-a-jwt")


async def test_token_with_bad_signature_is_closed_with_4001(server, user):
    await assert_closed_with_4001(server, tokens.foreign_signed_token(user))


async def test_token_with_alg_none_is_closed_with_4001(server, user):
    await assert_closed_with_4001(server, tokens.unsigned_token(user))


async def test_expired_token_is_closed_with_4001(server, user):
    await assert_closed_with_4001(server, tokens.expired_token(user))


async def test_refresh_token_is_closed_with_4001(server, user):
    token = await sync_to_async(tokens.refresh_token)(user)
    await assert_closed_with_4001(server, token)


async def test_token_of_deleted_user_is_closed_with_4001(server, user):
    token = str(AccessToken.for_user(user))
    await user.adelete()
    await assert_closed_with_4001(server, token)


async def test_token_of_inactive_user_is_closed_with_4001(server, user):
    token = str(AccessToken.for_user(user))
    user.is_active = False
    await user.asave()
    await assert_closed_with_4001(server, token)
