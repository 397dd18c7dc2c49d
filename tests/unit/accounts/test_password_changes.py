"""A save that changes a user's password, however made, blacklists the user's
refresh tokens; a save that changes anything else does not."""

import pytest
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import User
from accounts.refresh_tokens import RefreshToken

pytestmark = pytest.mark.django_db


def blacklisted(user) -> int:
    return BlacklistedToken.objects.filter(token__user=user).count()


@pytest.fixture
def sessions(user):
    return [RefreshToken.for_user(user) for _ in range(2)]


def test_set_password_and_save_blacklists_every_refresh_token(user, sessions):
    read = User.objects.get(pk=user.pk)
    read.set_password("an entirely new passphrase")
    read.save()
    assert blacklisted(user) == len(sessions)


def test_a_hash_written_directly_counts_as_a_change(user, sessions):
    read = User.objects.get(pk=user.pk)
    read.set_unusable_password()
    read.save(update_fields=["password"])
    assert blacklisted(user) == len(sessions)


@pytest.mark.parametrize("fields", [None, ["first_name"]], ids=["all", "some"])
def test_other_changes_revoke_nothing(user, sessions, fields):
    user.first_name = "Alice"
    user.save(update_fields=fields)
    read = User.objects.get(pk=user.pk)
    read.last_name = "Liddell"
    read.save()
    assert blacklisted(user) == 0


def test_an_instance_refreshed_after_a_change_elsewhere_changes_nothing(user, sessions):
    elsewhere = User.objects.get(pk=user.pk)
    elsewhere.set_password("changed in another process")
    elsewhere.save()
    assert blacklisted(user) == len(sessions)
    later = RefreshToken.for_user(user)

    user.refresh_from_db()
    user.first_name = "Alice"
    user.save()
    assert not BlacklistedToken.objects.filter(token__jti=later["jti"]).exists()


def test_a_password_read_late_is_remembered(user, sessions):
    deferred = User.objects.only("username").get(pk=user.pk)
    assert deferred.password  # loaded now, on first use
    deferred.first_name = "Alice"
    deferred.save()
    assert blacklisted(user) == 0
