"""Login, refresh and verify, as SimpleJWT defines them, at /api/auth/."""

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from core.cache import PrefixedRedisCache
from tests.conftest import PASSWORD
from tests.support import tokens

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_login_throttle_counts():
    """Logins are throttled (tests/security/test_login.py): start each test afresh."""
    cache = caches["default"]
    # Its clear() deletes only the cache's own keys; Django's RedisCache would FLUSHDB.
    assert isinstance(cache, PrefixedRedisCache)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


def login(api, body, **kwargs):
    return api.post("/api/auth/login", body, format="json", **kwargs)


def test_login_returns_access_and_refresh_tokens(api, user):
    response = login(api, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert AccessToken(response.json()["access"])["user_id"] == str(user.pk)


def test_wrong_password_is_401_with_json_error(api, user):
    response = login(api, {"username": "alice", "password": "wrong"})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_unknown_user_is_401(api, db):
    response = login(api, {"username": "nobody", "password": "whatever"})
    assert response.status_code == 401


def test_inactive_user_cannot_log_in(api, user):
    user.is_active = False
    user.save()
    response = login(api, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "alice"}, {"password": PASSWORD}, [], "alice"],
    ids=["empty", "no-password", "no-username", "list", "string"],
)
def test_body_without_credentials_is_400(api, user, body):
    response = login(api, body)
    assert response.status_code == 400
    assert isinstance(response.json(), dict)


@pytest.mark.parametrize("endpoint", ["login", "logout"])
def test_invalid_json_is_400(api, user, endpoint):
    response = api.post(
        f"/api/auth/{endpoint}", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert "detail" in response.json()


def test_login_accepts_post_only(api, user):
    assert api.get("/api/auth/login").status_code == 405


def test_refresh_returns_a_new_access_and_refresh_token(api, user):
    refresh = tokens.refresh_token(user)
    old_jti = RefreshToken(refresh)["jti"]
    response = api.post("/api/auth/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert AccessToken(response.json()["access"])["user_id"] == str(user.pk)
    rotated = RefreshToken(response.json()["refresh"])
    assert rotated["user_id"] == str(user.pk)
    assert rotated["jti"] != old_jti


def test_a_refresh_token_works_once(api, user):
    refresh = tokens.refresh_token(user)
    first = api.post("/api/auth/refresh", {"refresh": refresh}, format="json")
    again = api.post("/api/auth/refresh", {"refresh": refresh}, format="json")
    assert first.status_code == 200
    assert again.status_code == 401


def test_refresh_rejects_an_access_token(api, user):
    access = str(AccessToken.for_user(user))
    response = api.post("/api/auth/refresh", {"refresh": access}, format="json")
    assert response.status_code == 401


def test_verify_accepts_a_valid_token(api, user):
    token = str(AccessToken.for_user(user))
    response = api.post("/api/auth/verify", {"token": token}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "make_token",
    [tokens.expired_token, tokens.foreign_signed_token, tokens.unsigned_token],
    ids=["expired", "bad-signature", "alg-none"],
)
def test_verify_rejects_a_bad_token(api, user, make_token):
    response = api.post("/api/auth/verify", {"token": make_token(user)}, format="json")
    assert response.status_code == 401


def test_admin_is_served(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_can_manage_users_in_admin(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/accounts/user/").status_code == 200


def test_refresh_token_of_a_deleted_user_is_401(api, user):
    refresh = tokens.refresh_token(user)
    user.delete()
    response = api.post("/api/auth/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert "detail" in response.json()
