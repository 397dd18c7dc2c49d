"""The dashboard when the server loses Redis: it says so, and recovers by itself."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SERVICE_ENV
from tests.browser.test_dashboard import expect_live, log_in
from tests.support import processes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

UNAVAILABLE = re.compile(r"cannot reach its data store \(Redis\)")


@pytest.fixture
def own_redis_service(browser, static_files, tmp_path, monkeypatch):
    """A daphne and a publisher (1 s interval) on a redis-server of the test's own."""
    for name, value in SERVICE_ENV.items():
        monkeypatch.setenv(name, value)
    with processes.service_on_own_redis(tmp_path, interval="1") as (redis, port, _):
        yield redis, port


def test_the_page_says_the_server_cannot_reach_its_data_store_then_recovers(
    own_redis_service, user, page
):
    redis, port = own_redis_service
    log_in(page, port)
    expect_live(page)
    connection = page.locator("#connection")

    redis.stop()
    expect(connection).to_have_attribute("data-state", "unavailable", timeout=15_000)
    expect(connection).to_have_text(UNAVAILABLE)

    # Opened while Redis is away: the history answers 503, /readyz says why.
    page.reload()
    expect(page.locator("#dashboard")).to_be_visible()
    expect(connection).to_have_attribute("data-state", "unavailable", timeout=15_000)
    expect(connection).to_have_text(UNAVAILABLE)

    redis.start()
    expect_live(page, timeout=30_000)
