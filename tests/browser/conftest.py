"""Browser tests: Debian's Chromium driven by Playwright against real processes."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, delete_own_keys
from tests.support import processes
from tests.support.users import service_user, watcher

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = processes.ROOT / "artifacts"
# The tests log alice in a dozen times a minute: lift the login throttles.
SERVICE_ENV = {"LOGIN_RATE_PER_IP": "1000/min", "LOGIN_RATE_PER_USERNAME": "1000/min"}
VIEWPORT = {"width": 1280, "height": 800}


def require(ok: bool, reason: str) -> None:
    """Skip when something the browser tests need is missing; fail instead in CI."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, for the failure screenshot below."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def user(db, default_host):
    """alice, with a password hash that the daphne children can check.

    The test settings hash with MD5 for speed; the service knows only its own
    hashers, so the login form needs the project's default, PBKDF2.
    """
    return watcher(service_user("alice", PASSWORD))


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for a module's tests."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Between its calls, Playwright's sync API leaves its event loop marked as
        # running in this thread (its greenlets resume through it), so Django would
        # refuse the fixtures' queries (SynchronousOnlyOperation) though nothing
        # runs concurrently. Playwright's documentation gives this setting for that.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def service(
    browser, static_files, django_db_setup, redis_sync, tmp_path_factory
) -> Iterator[int]:
    """A real daphne and a publisher (1 s interval, and a fleet frame every second)
    shared by a module's tests."""
    delete_own_keys(redis_sync)
    logs = tmp_path_factory.mktemp("service")
    try:
        with (
            processes.daphne(logs, **SERVICE_ENV, METRICS_INTERVAL="1") as (_, port),
            processes.publisher(logs, "--interval", "1"),
        ):
            yield port
    finally:
        delete_own_keys(redis_sync)


@pytest.fixture
def context(browser):
    """A fresh browser profile (its own sessionStorage) at laptop size."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context, request):
    """A page of the fresh profile; screenshot saved in artifacts/ if the test fails."""
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"failed-{request.node.name}.png")
