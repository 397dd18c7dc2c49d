"""Logout blacklists refresh tokens; logins are throttled per IP and per username.

The throttles count in the real Redis at REDIS_URL, through Django's cache, under
this run's key prefix; each test starts and ends with no counts of this run.
"""

import logging
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.throttles import LoginIPThrottle
from core.redis import delete_by_prefix
from monitor.settings import env_rate
from runner.embedded_redis import EmbeddedRedis
from tests.conftest import PASSWORD
from tests.support.processes import free_port, run_to_end, service_env
from tests.support.users import watcher

pytestmark = pytest.mark.django_db

PER_USERNAME = 5  # LOGIN_RATE_PER_USERNAME's default, 5/min
PER_IP = 20  # LOGIN_RATE_PER_IP's default, 20/min


def delete_cache_keys(client: redis.Redis) -> None:
    """Delete this run's cache keys (throttle counts) and nothing else: no FLUSHDB."""
    delete_by_prefix(client, settings.CACHES["default"]["KEY_PREFIX"])


@pytest.fixture(autouse=True)
def no_throttle_counts(redis_sync):
    """Each test starts and ends without login counts."""
    delete_cache_keys(redis_sync)
    yield
    delete_cache_keys(redis_sync)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def bob(db, default_host):
    return watcher(User.objects.create_user(username="bob", password=PASSWORD))


def login(api, username, password=PASSWORD, ip="192.0.2.1", **extra):
    body = {"username": username, "password": password}
    return api.post("/api/auth/login", body, format="json", REMOTE_ADDR=ip, **extra)


def post(api, path, body):
    return api.post(f"/api/auth/{path}", body, format="json")


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()
    retry_after = response["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 0 < int(retry_after) <= 60


# --- logout ------------------------------------------------------------------------


def test_logout_blacklists_the_refresh_token(api, user):
    refresh = login(api, "alice").json()["refresh"]

    response = post(api, "logout", {"refresh": refresh})
    assert response.status_code == 200
    assert response.json() == {}

    response = post(api, "refresh", {"refresh": refresh})
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_logout_twice_is_401(api, user):
    refresh = login(api, "alice").json()["refresh"]
    assert post(api, "logout", {"refresh": refresh}).status_code == 200
    assert post(api, "logout", {"refresh": refresh}).status_code == 401


def test_logout_leaves_other_sessions_logged_in(api, user):
    first = login(api, "alice").json()["refresh"]
    second = login(api, "alice").json()["refresh"]
    assert post(api, "logout", {"refresh": first}).status_code == 200
    assert post(api, "refresh", {"refresh": second}).status_code == 200


@pytest.mark.parametrize(
    "token", ["garbage", "", "a.b.c"], ids=["garbage", "empty", "three-dots"]
)
def test_logout_with_a_malformed_token_is_refused(api, user, token):
    response = post(api, "logout", {"refresh": token})
    # SimpleJWT's answers: 400 for a blank field, 401 for a token that is no token.
    assert response.status_code == (400 if token == "" else 401)
    assert isinstance(response.json(), dict)


def test_logout_with_an_access_token_is_401(api, user):
    access = str(AccessToken.for_user(user))
    assert post(api, "logout", {"refresh": access}).status_code == 401


def test_logout_without_a_token_is_400(api, user):
    response = post(api, "logout", {})
    assert response.status_code == 400
    assert "refresh" in response.json()


def test_a_rotated_refresh_token_cannot_be_used_again(api, user):
    refresh = login(api, "alice").json()["refresh"]
    rotated = post(api, "refresh", {"refresh": refresh})
    assert rotated.status_code == 200
    assert post(api, "refresh", {"refresh": refresh}).status_code == 401
    new_refresh = rotated.json()["refresh"]
    assert post(api, "refresh", {"refresh": new_refresh}).status_code == 200


# --- throttling per username -------------------------------------------------------


def test_sixth_login_for_a_username_is_429_even_from_other_ips(api, user):
    # Wrong and right passwords both count.
    for attempt in range(PER_USERNAME):
        password = PASSWORD if attempt % 2 else "wrong"
        response = login(api, "alice", password, ip=f"198.51.100.{attempt}")
        assert response.status_code in {200, 401}

    response = login(api, "alice", ip="203.0.113.99")
    assert_throttled(response)
    assert "access" not in response.json()


def test_username_count_ignores_case(api, user):
    for attempt in range(PER_USERNAME):
        login(api, "ALICE" if attempt % 2 else "Alice", "wrong", ip=f"10.0.0.{attempt}")
    assert_throttled(login(api, "alice", ip="10.0.1.1"))


def test_another_username_from_another_ip_is_not_throttled(api, user, bob):
    for attempt in range(PER_USERNAME + 1):
        login(api, "alice", "wrong", ip=f"10.0.0.{attempt}")
    assert login(api, "alice", ip="10.0.2.1").status_code == 429

    assert login(api, "bob", ip="10.0.3.1").status_code == 200


# The username as authentication sees it: " bob" and "bob" are one account.
SPELLINGS_OF_BOB = [" bob", "bob ", "\tbob", "bob\n", "\u00a0bob", "BOB", "\uff42ob"]


@pytest.mark.parametrize("spelling", SPELLINGS_OF_BOB)
def test_every_spelling_of_a_username_counts_against_it(api, bob, spelling):
    for attempt in range(PER_USERNAME):
        response = login(api, spelling, "wrong", ip=f"10.1.0.{attempt}")
        assert response.status_code == 401
    # The right password, from a new address, spelled plainly: refused.
    assert_throttled(login(api, "bob", ip="10.1.1.1"))


@pytest.mark.parametrize("spelling", SPELLINGS_OF_BOB[:4])
def test_a_full_count_is_not_escaped_by_respelling_the_username(api, bob, spelling):
    for attempt in range(PER_USERNAME):
        login(api, "bob", "wrong", ip=f"10.2.0.{attempt}")
    # Login strips whitespace: these would log bob in, were they not counted.
    assert_throttled(login(api, spelling, ip="10.2.1.1"))


def test_a_numeric_username_sent_as_a_number_counts_against_it(api):
    User.objects.create_user(username="12345", password=PASSWORD)
    for attempt in range(PER_USERNAME):
        body = {"username": 12345, "password": "wrong"}
        response = api.post(
            "/api/auth/login", body, format="json", REMOTE_ADDR=f"10.3.0.{attempt}"
        )
        assert response.status_code == 401
    assert_throttled(login(api, "12345", ip="10.3.1.1"))


@pytest.mark.parametrize(
    "body",
    [
        {"password": "x"},
        {"username": "", "password": "x"},
        {"username": " \t", "password": "x"},
        {"username": ["alice"]},
    ],
    ids=["no-username", "empty", "blank", "not-a-string"],
)
def test_bodies_without_a_username_count_only_per_ip(api, user, body):
    for _ in range(PER_USERNAME + 1):
        response = api.post(
            "/api/auth/login", body, format="json", REMOTE_ADDR="10.0.4.1"
        )
        assert response.status_code == 400


def test_malformed_json_is_400_not_a_server_error(api, user):
    response = api.post(
        "/api/auth/login",
        data='{"username": ',
        content_type="application/json",
        REMOTE_ADDR="10.0.5.1",
    )
    assert response.status_code == 400
    assert "detail" in response.json()


# --- throttling per IP -------------------------------------------------------------


def test_twenty_first_login_from_one_ip_is_429_across_usernames(api, user, bob):
    for attempt in range(PER_IP):
        response = login(api, f"user{attempt}", "wrong", ip="192.0.2.7")
        assert response.status_code == 401

    assert_throttled(login(api, "bob", ip="192.0.2.7"))
    assert login(api, "bob", ip="192.0.2.8").status_code == 200


def test_x_forwarded_for_does_not_give_a_fresh_ip_count(api, user):
    for attempt in range(PER_IP):
        login(api, f"user{attempt}", "wrong", HTTP_X_FORWARDED_FOR=f"10.9.0.{attempt}")
    response = login(api, "alice", HTTP_X_FORWARDED_FOR="10.9.1.1")
    assert_throttled(response)


def test_get_on_login_does_not_count(api, user):
    for _ in range(PER_IP + 1):
        assert api.get("/api/auth/login", REMOTE_ADDR="10.0.6.1").status_code == 405
    assert login(api, "alice", ip="10.0.6.1").status_code == 200


def test_concurrent_attempts_are_all_counted():
    # Workers checking at the same moment must not overwrite each other's counts.
    requests = 3 * PER_IP
    barrier = threading.Barrier(requests)
    factory = APIRequestFactory()

    def attempt(_: int) -> bool:
        request = Request(
            factory.post("/api/auth/login", {}, format="json", REMOTE_ADDR="10.0.7.1")
        )
        throttle = LoginIPThrottle()
        barrier.wait(timeout=10)
        try:
            return throttle.allow_request(request, None)
        finally:
            caches["default"].close()

    with ThreadPoolExecutor(max_workers=requests) as pool:
        allowed = list(pool.map(attempt, range(requests)))
    assert allowed.count(True) == PER_IP


# --- the shared cache --------------------------------------------------------------


def test_login_works_and_warns_when_redis_is_down(api, user, caplog):
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    cache = {**settings.CACHES["default"], "LOCATION": unreachable}
    with (
        override_settings(CACHES={"default": cache}),
        caplog.at_level(logging.WARNING, logger="accounts.throttles"),
    ):
        responses = [login(api, "alice") for _ in range(PER_USERNAME + 1)]
    assert [response.status_code for response in responses] == [200] * 6
    assert "cache is unreachable" in caplog.text
    assert PASSWORD not in caplog.text


def test_throttle_counts_in_redis_over_a_unix_socket(api, user):
    # Short directory: a unix socket path must fit in 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="monitor-rl-"))
    server = EmbeddedRedis(directory)
    url = server.start()
    try:
        options = {
            name: value
            for name, value in settings.REDIS_CONNECTION_OPTIONS.items()
            if name != "socket_keepalive"  # TCP only
        }
        cache = {**settings.CACHES["default"], "LOCATION": url, "OPTIONS": options}
        with override_settings(CACHES={"default": cache}):
            statuses = [
                login(api, "alice", "wrong", ip=f"10.0.8.{attempt}").status_code
                for attempt in range(PER_USERNAME + 1)
            ]
        client = redis.Redis.from_url(url)
        try:
            stored = client.keys(f"{settings.CACHES['default']['KEY_PREFIX']}:*")
        finally:
            client.close()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    assert statuses == [401] * PER_USERNAME + [429]
    # One count per IP (the sixth IP's first attempt passed its IP throttle) and
    # alice's, stored under a hash of her name.
    assert len(stored) == PER_USERNAME + 2
    assert not any(b"alice" in key for key in stored)


def test_cache_clear_deletes_only_the_caches_own_keys(redis_sync):
    own = f"{settings.METRICS_REDIS_PREFIX}:not-the-cache"
    redis_sync.set(own, "kept", ex=60)
    try:
        caches["default"].set("throttle-test", [1.0], 60)
        assert caches["default"].clear() is True
        assert caches["default"].get("throttle-test") is None
        assert redis_sync.get(own) == b"kept"
    finally:
        redis_sync.delete(own)


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "rate"),
    [("5/min", "5/min"), (" 10 / MIN ", "10/min"), ("1/s", "1/s"), ("3/day", "3/day")],
)
def test_login_rates_are_read_in_drf_form(monkeypatch, raw, rate):
    monkeypatch.setenv("LOGIN_RATE_PER_IP", raw)
    assert env_rate("LOGIN_RATE_PER_IP", "20/min") == rate


@pytest.mark.parametrize(
    "raw", ["5", "five/min", "0/min", "-1/min", "5/fortnight", "5/min/s", "²/min"]
)
def test_a_bad_login_rate_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("LOGIN_RATE_PER_USERNAME", raw)
    with pytest.raises(ImproperlyConfigured, match="LOGIN_RATE_PER_USERNAME"):
        env_rate("LOGIN_RATE_PER_USERNAME", "5/min")


def test_a_bad_login_rate_stops_start_up(db):
    env = service_env(LOGIN_RATE_PER_IP="lots")
    result = run_to_end([sys.executable, "manage.py", "check"], env)
    assert result.returncode != 0
    assert "LOGIN_RATE_PER_IP" in result.stderr
    assert "Traceback" not in result.stderr
