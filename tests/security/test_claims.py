"""Whatever a token signed with the service's key contains, a real daphne refuses it
as invalid: close code 4001 on the socket, 401 on every HTTP endpoint, never a 500."""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from core.closes import UNAUTHORIZED
from tests.support.clients import close_code, open_socket
from tests.support.hosts import PONG
from tests.support.tokens import claims_of, signed_token

pytestmark = pytest.mark.django_db(transaction=True)

# Each: what to change in a valid token's claims (None deletes the claim).
MALFORMED = {
    "no-user-id": {"user_id": None},
    "list-user-id": {"user_id": ["1"]},
    "nested-user-id": {"user_id": {"id": 1}},
    "boolean-user-id": {"user_id": True},
    "float-user-id": {"user_id": 1.5},
    "text-user-id": {"user_id": "alice"},
    "huge-user-id": {"user_id": 10**30},
    "huge-text-user-id": {"user_id": "9" * 40},
    "null-user-id": {"user_id": [None]},
    "no-exp": {"exp": None},
    "text-exp": {"exp": "9999999999"},
    "word-exp": {"exp": "tomorrow"},
    "list-exp": {"exp": [9999999999]},
    "nested-exp": {"exp": {"at": 9999999999}},
    "huge-exp": {"exp": 10**20},
    "infinite-exp": {"exp": float("inf")},
    "nan-exp": {"exp": float("nan")},
    "negative-exp": {"exp": -(10**20)},
    "text-iat": {"iat": "yesterday"},
    "huge-iat": {"iat": 10**20},
    "huge-nbf": {"nbf": -(10**20)},
    "no-jti": {"jti": None},
    "list-jti": {"jti": ["a"]},
    "long-jti": {"jti": "j" * 300},
    "no-type": {"token_type": None},
    "list-type": {"token_type": ["access"]},
    "nested-password-claim": {"hash_password": {"md5": "x"}},
}


def forged(user, change: dict, kind: str) -> str:
    claims = claims_of(user, kind)
    for claim, value in change.items():
        if value is None:
            claims.pop(claim, None)
        else:
            claims[claim] = value
    return signed_token(claims)


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def post(port: int, path: str, body: dict) -> int:
    return status_of(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    )


def history(port: int, token: str) -> int:
    return status_of(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/api/metrics/history?seconds=60",
            headers={"Authorization": f"Bearer {token}"},
        )
    )


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_access_token_closes_the_socket_with_4001(
    server, user, change
):
    token = forged(user, change, "access")
    try:
        ws = await open_socket(server, token)
    except InvalidStatus as refused:
        pytest.fail(f"handshake answered HTTP {refused.response.status_code}")
    assert await close_code(ws) == UNAUTHORIZED
    # The same token renewing an open socket closes that one too.
    ws = await open_socket(server, forged(user, {}, "access"))
    await ws.send(json.dumps({"type": "auth", "token": token}))
    assert await close_code(ws) == UNAUTHORIZED


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_token_is_401_on_every_endpoint(server, user, change):
    access = forged(user, change, "access")
    refresh = forged(user, change, "refresh")
    statuses = await asyncio.to_thread(
        lambda: {
            "history": history(server, access),
            "verify": post(server, "verify", {"token": access}),
            "refresh": post(server, "refresh", {"refresh": refresh}),
            "logout": post(server, "logout", {"refresh": refresh}),
        }
    )
    assert statuses == dict.fromkeys(statuses, 401)


async def test_a_well_formed_token_still_works(server, user):
    ws = await open_socket(server, forged(user, {}, "access"))
    await ws.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == PONG
    await ws.close()
    assert await asyncio.to_thread(history, server, forged(user, {}, "access")) == 200
