import pytest

# Chromium, a fresh profile and a page of it, for the pages' tests (test_pages.py).
from tests.browser.conftest import browser, context, page  # noqa: F401
from tests.support import processes


@pytest.fixture(scope="module", params=["1", "0"], ids=["extensions", "stock"])
def server(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """One real daphne process, with daphne's own message-size limit as in ./run;
    every test runs against it with the server's extensions on, and off (stock
    daphne, Twisted and autobahn: the same promises must hold)."""
    with processes.daphne(
        tmp_path_factory.mktemp("daphne"),
        *processes.MAX_MESSAGE_FLAGS,
        METRICS_SERVER_EXTENSIONS=request.param,
    ) as (_, port):
        yield port


@pytest.fixture(autouse=True)
def _fresh_redis_keys(clean_redis):
    """Each test starts without a latest snapshot left by another."""
