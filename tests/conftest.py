import contextlib
import itertools
import os

import pytest
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from core.redis import close_redis, delete_by_prefix, make_sync_client
from metrics.hosts import register_local_host
from tests.support import processes, sentinels
from tests.support.users import watched, watcher

PASSWORD = "correct horse battery staple"
# Folders whose tests start real processes or a browser: marked `slow`, so that
# `./run-tests -m "not slow"` runs the fast part alone.
SLOW_FOLDERS = {"e2e", "faults", "browser", "deploy"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of the slow folders `slow`."""
    tests = processes.ROOT / "tests"
    for item in items:
        if item.path.relative_to(tests).parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def redis_sync():
    """A client of the test run's Redis (REDIS_URL, Sentinels too); fails the run if
    none answers."""
    client = make_sync_client(settings.REDIS_URL, {})
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"No Redis at REDIS_URL={settings.REDIS_URL}: {error}", pytrace=False
        )
    yield client
    delete_own_keys(client)
    client.close()


def delete_own_keys(client: redis.Redis) -> None:
    """Delete the keys under this run's prefix, and nothing else."""
    delete_by_prefix(client, settings.METRICS_REDIS_PREFIX)


@pytest.fixture
def clean_redis(redis_sync):
    """Start and end a test with none of this run's keys in Redis."""
    delete_own_keys(redis_sync)
    yield redis_sync
    delete_own_keys(redis_sync)


@pytest.fixture
def default_host(db) -> str:
    """The host viewers that name none watch: the local publisher's, registered as
    publish_metrics registers it, and watched by the tests' users."""
    return watched(register_local_host(settings.METRICS_HOST_NAME).name)


@pytest.fixture
def user(db, default_host):
    """A user who sees the tests' watched hosts (tests/support/users.py)."""
    return watcher(User.objects.create_user(username="alice", password=PASSWORD))


@pytest.fixture
def access_token(user) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
async def redis_in_test():
    """Lets the test use the project's Redis helpers; closes them afterwards."""
    layer = get_channel_layer()
    yield layer
    await layer.flush()
    await close_redis()


@pytest.fixture(scope="session")
def static_files() -> None:
    """Collect the static files: daphne serves them with WhiteNoise's manifest."""
    processes.collect_static()


@pytest.fixture
def start_sentinel_cluster(tmp_path):
    """Starts a master, a replica and three Sentinels of Debian's Redis on loopback
    ports (tests/support/sentinels.py; keyword arguments: passwords, TLS), each
    stopped by its PID after the test. Skipped where Debian's binaries are missing,
    except in CI."""
    missing = sentinels.missing_binaries()
    if missing:
        reason = f"Debian's Redis is not installed: {', '.join(missing)} missing"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is an error)", pytrace=False)
        pytest.skip(reason)
    numbers = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def start(**options) -> sentinels.SentinelCluster:
            directory = tmp_path / f"sentinels-{next(numbers)}"
            return stack.enter_context(sentinels.sentinel_cluster(directory, **options))

        yield start


def debian_binary(path: str, package: str) -> str:
    """The path of a binary from a Debian package; the test is skipped where it is
    missing, except in CI (.ci/run installs the package), where that is an error."""
    if not os.access(path, os.X_OK):
        reason = f"{path} is missing (Debian's {package} package installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this is an error", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def promtool() -> str:
    """Prometheus's promtool, from Debian's prometheus package."""
    return debian_binary("/usr/bin/promtool", "prometheus")


@pytest.fixture
def prometheus_binary() -> str:
    """The Prometheus server, from Debian's prometheus package."""
    return debian_binary("/usr/bin/prometheus", "prometheus")


@pytest.fixture
def sentinel_cluster(start_sentinel_cluster):
    """A running master, replica and three Sentinels, without passwords or TLS."""
    return start_sentinel_cluster()
