"""The admin's login form counts against the same limits as /api/auth/login, in the
same Redis counts: a real daphne, a browser-less client with cookies and CSRF."""

import asyncio
import re

import pytest

from tests.support import processes
from tests.support.http import Session, form_errors
from tests.support.users import service_user

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "the administrator's passphrase"
PER_USERNAME = 3
PER_IP = 6
LIMITS = {
    "LOGIN_RATE_PER_USERNAME": f"{PER_USERNAME}/min",
    "LOGIN_RATE_PER_IP": f"{PER_IP}/min",
}
THROTTLED = re.compile(r"^Too many login attempts\. Try again in (\d+) seconds\.$")


@pytest.fixture(scope="module")
def web(static_files, django_db_setup, django_db_blocker, tmp_path_factory):
    with processes.daphne(tmp_path_factory.mktemp("admin"), **LIMITS) as (_, port):
        yield port


@pytest.fixture(autouse=True)
def _fresh_redis_keys(clean_redis):
    """Each test starts with no login counts."""


@pytest.fixture
def root(db, default_host):
    return service_user("root", PASSWORD, is_staff=True, is_superuser=True)


def assert_refused_with_a_message(answer, client: Session) -> None:
    """The form came back with the throttle's message, and nobody is logged in."""
    assert answer.status == 200
    (message,) = form_errors(answer)
    seconds = THROTTLED.match(message)
    assert seconds, message
    assert 0 < int(seconds.group(1)) <= 60
    assert client.cookie("sessionid") is None
    assert client.get("/admin/").status == 302


def api_login(port: int, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    return Session(port).post_json("/api/auth/login", body).status


def admin_attempts(port: int, usernames: list[str], password: str) -> list[str]:
    """Log in to the admin once per username; return the messages shown."""
    shown = []
    for username in usernames:
        client = Session(port)
        answer = client.admin_login(username, password)
        assert answer.status == 200
        shown += form_errors(answer)
    return shown


async def test_past_the_per_username_limit_the_right_password_is_refused(web, root):
    shown = await asyncio.to_thread(
        admin_attempts, web, ["root"] * PER_USERNAME, "wrong"
    )
    assert all("correct username and password" in message for message in shown)

    client = Session(web)
    answer = await asyncio.to_thread(client.admin_login, "root", PASSWORD)
    await asyncio.to_thread(assert_refused_with_a_message, answer, client)
    # One count for both logins: the API refuses too.
    assert await asyncio.to_thread(api_login, web, "root", PASSWORD) == 429


async def test_api_attempts_count_against_the_admin_login(web, root):
    for _ in range(PER_USERNAME):
        assert await asyncio.to_thread(api_login, web, "root", "wrong") == 401
    client = Session(web)
    answer = await asyncio.to_thread(client.admin_login, "root", PASSWORD)
    await asyncio.to_thread(assert_refused_with_a_message, answer, client)


async def test_past_the_per_ip_limit_the_admin_login_is_refused(web, root):
    names = [f"nobody-{number}" for number in range(PER_IP)]
    await asyncio.to_thread(admin_attempts, web, names, "wrong")
    client = Session(web)
    answer = await asyncio.to_thread(client.admin_login, "root", PASSWORD)
    await asyncio.to_thread(assert_refused_with_a_message, answer, client)


@pytest.mark.parametrize("spelling", [" root", "root ", "\troot", "ROOT"])
async def test_every_spelling_of_the_username_shares_the_admins_count(
    web, root, spelling
):
    await asyncio.to_thread(admin_attempts, web, [spelling] * PER_USERNAME, "wrong")
    client = Session(web)
    answer = await asyncio.to_thread(client.admin_login, "root", PASSWORD)
    await asyncio.to_thread(assert_refused_with_a_message, answer, client)


async def test_the_right_password_works_again_once_the_window_has_passed(
    tmp_path, root, static_files
):
    with processes.daphne(tmp_path, LOGIN_RATE_PER_USERNAME="1/s") as (_, port):
        client = Session(port)
        # An attempt without a password counts too, and costs no hashing.
        first = await asyncio.to_thread(client.admin_login, "root", "")
        assert first.status == 200
        refused = await asyncio.to_thread(client.admin_login, "root", PASSWORD)
        assert [THROTTLED.match(m) is not None for m in form_errors(refused)] == [True]
        await asyncio.sleep(1.5)
        answer = await asyncio.to_thread(client.admin_login, "root", PASSWORD)
        assert answer.status == 302
        assert answer.headers["Location"] == "/admin/"
        assert client.cookie("sessionid")
