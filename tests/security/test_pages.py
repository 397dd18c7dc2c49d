"""Every page of a real daphne carries a Content-Security-Policy that its pages live
with (checked in Chromium: the dashboard and the admin work, and no violation is
reported), and the login page names no host before a login."""

import asyncio
import re
import time

import pytest
from playwright.sync_api import Page, expect

from core.keys import redis_key
from metrics.hosts import register_local_host
from tests.support import processes
from tests.support.http import Session
from tests.support.users import service_user

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a passphrase for the pages"
# The monitored host's name.
HOST_NAME = "secret-host-4711"
LIMITS = {"LOGIN_RATE_PER_IP": "1000/min", "LOGIN_RATE_PER_USERNAME": "1000/min"}


@pytest.fixture
def secret_host(clean_redis, db):
    """The only host, named HOST_NAME (so the default host), seen a moment ago."""
    register_local_host(HOST_NAME)
    clean_redis.hset(
        redis_key("host", HOST_NAME, "state"),
        mapping={"last_seen": time.time(), "interval": 5.0},
    )


@pytest.fixture
def root(db):
    return service_user("root", PASSWORD, is_staff=True, is_superuser=True)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_policy(answer, port: int) -> None:
    policy = directives(answer.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert set(policy["connect-src"]) == {
        "'self'",
        f"ws://127.0.0.1:{port}",
        f"wss://127.0.0.1:{port}",
    }
    assert "'unsafe-inline'" not in answer.headers["Content-Security-Policy"]


async def test_every_page_has_the_policy_and_the_login_page_names_no_host(
    tmp_path, static_files, root, secret_host
):
    with processes.daphne(tmp_path, **LIMITS) as (_, port):

        def visit() -> None:
            visitor = Session(port)
            dashboard = visitor.get("/")
            assert dashboard.status == 200
            assert HOST_NAME not in dashboard.text
            assert re.search(r"<title>Host monitor</title>", dashboard.text)
            for path in ("/", "/admin/login/", "/healthz", "/api/metrics/history"):
                assert_policy(visitor.get(path), port)

            admin = Session(port)
            assert admin.admin_login("root", PASSWORD).status == 302
            for path in ("/admin/", "/admin/accounts/user/"):
                page = admin.get(path)
                assert page.status == 200
                assert_policy(page, port)

            # The name is for those who logged in: it comes with the history.
            login = {"username": "root", "password": PASSWORD}
            access = Session(port).post_json("/api/auth/login", login).json()["access"]
            history = Session(port).get(
                "/api/metrics/history?seconds=60", Authorization=f"Bearer {access}"
            )
            assert history.json()["host"] == HOST_NAME

        await asyncio.to_thread(visit)


# --- in Chromium ---------------------------------------------------------------------

REPORT_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def watch_for_violations(page: Page) -> list[str]:
    """Every CSP violation the page reports, through the console or its event."""
    seen: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and seen.append(message.text)
        ),
    )
    return seen


def reported(page: Page, seen: list[str]) -> list[str]:
    return [*seen, *page.evaluate("window.violations || []")]


@pytest.fixture
def service(browser, static_files, redis_sync, tmp_path):
    with (
        processes.daphne(tmp_path, **LIMITS) as (_, port),
        processes.publisher(tmp_path, "--interval", "1"),
    ):
        yield port


def test_the_overview_and_a_hosts_page_work_under_their_policy(service, root, page):
    seen = watch_for_violations(page)
    response = page.goto(f"http://127.0.0.1:{service}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#login")).to_be_visible()
    assert page.title() == "Host monitor"
    expect(page.locator("#host-name")).to_be_hidden()

    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=15_000
    )
    # The overview's cards (a sparkline drawn into an SVG), then a host's page. The
    # publisher may register its host after the first frame: the next one has it.
    card = page.locator(".card").first
    expect(card.locator(".sparkline path")).to_have_attribute(
        "d", re.compile("^M"), timeout=15_000
    )
    card.click()
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=15_000
    )
    expect(page.locator("#chart-cpu canvas")).to_have_count(1)
    expect(page.locator("#partitions tr").first).to_contain_text("%")
    host = page.locator("#host-name").text_content()
    assert host
    assert page.title() == f"{host} · Host monitor"

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login")).to_be_visible()
    assert page.title() == "Host monitor"
    expect(page.locator("#host-name")).to_be_hidden()
    assert reported(page, seen) == []


def test_the_admin_works_under_its_policy(service, root, page):
    seen = watch_for_violations(page)
    base = f"http://127.0.0.1:{service}"
    response = page.goto(f"{base}/admin/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Users")).to_be_visible()
    page.get_by_role("link", name="Users").click()
    page.get_by_role("link", name="root").click()
    expect(page.locator("#id_username")).to_have_value("root")
    page.goto(f"{base}/admin/accounts/user/add/")
    expect(page.locator("#id_username")).to_be_visible()
    assert reported(page, seen) == []
