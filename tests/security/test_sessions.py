"""Sessions against real daphne processes: refresh tokens stored as digests, a
session's absolute lifetime, one success among parallel refreshes of one token, and
a password change ending every session of its user."""

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts.models import User
from accounts.refresh_tokens import RefreshToken, digest
from core import closes
from tests.support import processes
from tests.support.clients import close_frame, open_socket, receive_json
from tests.support.hosts import PONG
from tests.support.http import Session, form_errors
from tests.support.users import service_user, watcher

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "an old and long passphrase"
NEW_PASSWORD = "a new and different passphrase 42"
PBKDF2 = "django.contrib.auth.hashers.PBKDF2PasswordHasher"
# Plenty for the tests of this module, which log in often.
LOGIN_RATES = {"LOGIN_RATE_PER_IP": "1000/min", "LOGIN_RATE_PER_USERNAME": "1000/min"}


@pytest.fixture
def alice(db, default_host):
    return watcher(service_user("alice", PASSWORD))


@pytest.fixture(scope="module")
def web(static_files, django_db_setup, django_db_blocker, tmp_path_factory):
    """One real daphne for the module's tests."""
    with processes.daphne(tmp_path_factory.mktemp("web"), **LOGIN_RATES) as (_, port):
        yield port


@pytest.fixture(autouse=True)
def _fresh_redis_keys(clean_redis):
    """Each test starts without throttle counts or snapshots of another."""


def claims(token: str) -> dict:
    """A JWT's claims, read without checking it (as any holder of it can)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def database_bytes() -> bytes:
    """The SQLite test database's file, as anyone able to read it would see it."""
    return Path(connection.settings_dict["NAME"]).read_bytes()


def log_in(port: int, password: str = PASSWORD) -> dict:
    answer = Session(port).post_json(
        "/api/auth/login", {"username": "alice", "password": password}
    )
    assert answer.status == 200, answer.text
    return answer.json()


def refresh(port: int, token: str):
    return Session(port).post_json("/api/auth/refresh", {"refresh": token})


def history(port: int, access: str) -> int:
    headers = {"Authorization": f"Bearer {access}"}
    return Session(port).get("/api/metrics/history?seconds=60", **headers).status


# --- refresh tokens as digests ---------------------------------------------------


async def test_refresh_tokens_are_stored_as_digests_and_still_work(web, alice):
    tokens = await asyncio.to_thread(log_in, web)
    first = tokens["refresh"]
    rotated = await asyncio.to_thread(refresh, web, first)
    assert rotated.status == 200
    second = rotated.json()["refresh"]

    stored = [row async for row in OutstandingToken.objects.order_by("id")]
    assert [row.token for row in stored] == [digest(first), digest(second)]
    assert all(first not in row.token and second not in row.token for row in stored)
    if connection.vendor == "sqlite":
        database = await asyncio.to_thread(database_bytes)
        assert first.encode() not in database
        assert second.encode() not in database

    # Blacklisting works by jti: the used token is refused, logout ends the session.
    assert (await asyncio.to_thread(refresh, web, first)).status == 401
    logout = await asyncio.to_thread(
        Session(web).post_json, "/api/auth/logout", {"refresh": second}
    )
    assert logout.status == 200
    assert (await asyncio.to_thread(refresh, web, second)).status == 401
    assert await BlacklistedToken.objects.acount() == 2


def test_flushexpiredtokens_removes_expired_digests(alice):
    expired = RefreshToken.for_user(alice)
    OutstandingToken.objects.filter(jti=expired["jti"]).update(
        expires_at="2000-01-01T00:00:00Z"
    )
    kept = RefreshToken.for_user(alice)
    call_command("flushexpiredtokens")
    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == [kept["jti"]]


def test_the_migration_replaces_stored_token_text_with_digests(alice):
    executor = MigrationExecutor(connection)
    before = [("accounts", "0001_initial")]
    latest = executor.loader.graph.leaf_nodes("accounts")
    executor.migrate(before)
    try:
        text = "eyJhbGciOiJIUzI1NiJ9.an-old-refresh-token-stored-as-text.c2ln"
        OutstandingToken.objects.create(
            user=alice, jti="old", token=text, expires_at="2100-01-01T00:00:00Z"
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert OutstandingToken.objects.get(jti="old").token == digest(text)
    if connection.vendor == "sqlite":
        # VACUUM: the old text is not left in the file's free pages either.
        assert text.encode() not in database_bytes()


# --- the absolute lifetime of a session --------------------------------------------


async def test_a_session_ends_when_its_first_refresh_token_would(tmp_path, alice):
    env = {**LOGIN_RATES, "JWT_REFRESH_TOKEN_LIFETIME": "4"}
    with processes.daphne(tmp_path, **env) as (_, port):
        first = (await asyncio.to_thread(log_in, port))["refresh"]
        session_ends = claims(first)["exp"]
        latest = first
        while True:
            answer = await asyncio.to_thread(refresh, port, latest)
            if answer.status != 200:
                break
            latest = answer.json()["refresh"]
            assert claims(latest)["exp"] == session_ends
            assert claims(answer.json()["access"])["exp"] <= session_ends
            assert time.time() < session_ends + 1, "renewed past the session's end"
            await asyncio.sleep(0.5)
        assert answer.status == 401
        assert time.time() >= session_ends - 1


# --- parallel refreshes -----------------------------------------------------------


def refresh_together(ports: list[int], token: str, count: int) -> list:
    barrier = threading.Barrier(count)

    def attempt(number: int):
        barrier.wait(timeout=30)
        return refresh(ports[number % len(ports)], token)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(attempt, range(count)))


async def test_twenty_parallel_refreshes_of_one_token_give_one_session(tmp_path, alice):
    with (
        processes.daphne(tmp_path, **LOGIN_RATES) as (_, first),
        processes.daphne(tmp_path, **LOGIN_RATES) as (_, second),
        processes.daphne(tmp_path, **LOGIN_RATES) as (_, third),
    ):
        ports = [first, second, third]
        token = (await asyncio.to_thread(log_in, first))["refresh"]
        answers = await asyncio.to_thread(refresh_together, ports, token, 20)
        statuses = sorted(answer.status for answer in answers)
        assert statuses == [200] + [401] * 19, [a.text for a in answers]
        (winner,) = [answer.json() for answer in answers if answer.status == 200]
        assert (await asyncio.to_thread(refresh, first, winner["refresh"])).status == (
            200
        )
        logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
        assert "database is locked" not in logs
        assert "Traceback" not in logs


# --- a password change ends every session ------------------------------------------


def change_with_set_password(port: int, user: User) -> None:
    user = User.objects.get(pk=user.pk)
    # The service's hasher, so that daphne can check the new password.
    with override_settings(PASSWORD_HASHERS=[PBKDF2]):
        user.set_password(NEW_PASSWORD)
    user.save()


def change_with_the_command(port: int, user: User) -> None:
    # No terminal (a new session): changepassword reads the password from stdin.
    result = subprocess.run(
        [sys.executable, "manage.py", "changepassword", user.username],
        cwd=processes.ROOT,
        env=processes.service_env(),
        input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Password changed successfully" in result.stdout


def change_in_the_admin(port: int, user: User) -> None:
    service_user("root", PASSWORD, is_staff=True, is_superuser=True)
    admin = Session(port)
    assert admin.admin_login("root", PASSWORD).status == 302
    path = f"/admin/accounts/user/{user.pk}/password/"
    assert admin.get(path).status == 200
    fields = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    answer = admin.post_form(path, {"usable_password": "true", **fields})
    assert answer.status == 302, form_errors(answer)


CHANGES = {
    "set_password": change_with_set_password,
    "changepassword": change_with_the_command,
    "admin": change_in_the_admin,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_a_password_change_ends_every_session_of_the_user(web, alice, change):
    await sync_to_async(lambda: watcher(service_user("bob", PASSWORD)))()
    sessions = [await asyncio.to_thread(log_in, web) for _ in range(2)]
    sockets = [await open_socket(web, tokens["access"]) for tokens in sessions]
    bobs = await open_socket(web, await asyncio.to_thread(bob_access, web))
    for ws in [*sockets, bobs]:
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive_json(ws) == PONG

    await sync_to_async(change)(web, alice)
    changed = time.monotonic()

    for ws in sockets:
        assert await close_frame(ws, within=10) == closes.PASSWORD_CHANGED
    # Within AUTH_USER_CACHE_SECONDS (30 s here); the revocation is immediate.
    assert time.monotonic() - changed < 5
    for tokens in sessions:
        assert (await asyncio.to_thread(refresh, web, tokens["refresh"])).status == 401
        assert await asyncio.to_thread(history, web, tokens["access"]) == 401
        again = await open_socket(web, tokens["access"])
        assert await close_frame(again) == closes.USER_REFUSED
    revoked = BlacklistedToken.objects.filter(token__user=alice)
    assert await revoked.acount() == len(sessions)
    # Other users are not affected; the new password opens a new session.
    await bobs.send(json.dumps({"type": "ping"}))
    assert await receive_json(bobs) == PONG
    fresh = await asyncio.to_thread(log_in, web, NEW_PASSWORD)
    assert await asyncio.to_thread(history, web, fresh["access"]) == 200
    new = await open_socket(web, fresh["access"])
    await new.send(json.dumps({"type": "ping"}))
    assert await receive_json(new) == PONG
    for ws in (new, bobs):
        await ws.close()


def bob_access(port: int) -> str:
    answer = Session(port).post_json(
        "/api/auth/login", {"username": "bob", "password": PASSWORD}
    )
    return answer.json()["access"]
