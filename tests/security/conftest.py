import pytest

from tests.support import processes


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One real daphne process, with daphne's own message-size limit as in ./run."""
    with processes.daphne(
        tmp_path_factory.mktemp("daphne"), *processes.MAX_MESSAGE_FLAGS
    ) as (_, port):
        yield port


@pytest.fixture(autouse=True)
def _fresh_redis_keys(clean_redis):
    """Each test starts without a latest snapshot left by another."""
