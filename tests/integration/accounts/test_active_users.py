"""A web process reads a socket's user from the database once, not per socket."""

import asyncio

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts import tokens
from accounts.models import User
from accounts.tokens import authenticate_socket_token, get_active_users
from tests.support.calls import recorded

pytestmark = pytest.mark.django_db(transaction=True)


def fresh_token(user) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Records each database read of a user (the real read still happens)."""
    return recorded(monkeypatch, tokens, "check_user")


async def test_a_storm_of_one_users_sockets_reads_the_user_once(user, reads):
    raw = [fresh_token(user) for _ in range(50)]
    found = await asyncio.gather(*(authenticate_socket_token(token) for token in raw))
    assert {result.user.pk for result in found} == {user.pk}
    assert reads == [str(user.pk)]


async def test_each_user_is_read_and_remembered_separately(user, reads):
    bob = await User.objects.acreate_user("bob", password="bob-pass-123")
    for _ in range(2):
        assert (await authenticate_socket_token(fresh_token(user))).user == user
        assert (await authenticate_socket_token(fresh_token(bob))).user == bob
    assert sorted(reads) == sorted([str(user.pk), str(bob.pk)])


async def test_a_change_behind_the_orms_back_is_seen_after_the_cache_lifetime(
    user, settings
):
    settings.AUTH_USER_CACHE_SECONDS = 0.3
    assert await authenticate_socket_token(fresh_token(user)) is not None
    # update() sends no signal: only the lifetime bounds how long it goes unseen.
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)
    await asyncio.sleep(0.4)
    assert await authenticate_socket_token(fresh_token(user)) is None


async def test_a_forgotten_user_is_read_again(user, reads):
    assert await authenticate_socket_token(fresh_token(user)) is not None
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)
    get_active_users().forget(user.pk)
    assert await authenticate_socket_token(fresh_token(user)) is None
    assert reads == [str(user.pk)] * 2


async def test_an_inactive_user_is_not_remembered(user, reads):
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)
    assert await authenticate_socket_token(fresh_token(user)) is None
    await User.objects.filter(pk=user.pk).aupdate(is_active=True)
    assert await authenticate_socket_token(fresh_token(user)) is not None


async def test_a_bad_token_costs_no_database_read(reads):
    assert await authenticate_socket_token("not.a.jwt") is None
    assert await authenticate_socket_token(None) is None
    assert reads == []
