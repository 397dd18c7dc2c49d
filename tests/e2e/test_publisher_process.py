"""`manage.py publish_metrics` as a real process: flags, signals, Redis outages."""

import json
import signal
import time

import pytest
import redis

from tests.support import processes

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message)


def latest_ts(client: redis.Redis, prefix: str) -> float | None:
    try:
        raw = client.get(f"{prefix}:latest")
    except redis.ConnectionError:
        return None
    return json.loads(raw)["ts"] if raw else None


def log_of(tmp_path) -> str:
    return (tmp_path / "publisher.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_publisher_cleanly(tmp_path, clean_redis, settings, signum):
    with processes.publisher(tmp_path, "--interval", "0.5") as publisher:
        wait_until(
            lambda: latest_ts(clean_redis, settings.METRICS_REDIS_PREFIX),
            15,
            "the publisher published nothing",
        )
        publisher.send_signal(signum)
        assert publisher.wait(10) == 0
    log = log_of(tmp_path)
    assert "Stopped after" in log
    assert "Traceback" not in log


def test_once_publishes_one_snapshot_and_exits(tmp_path, clean_redis, settings):
    with processes.publisher(tmp_path, "--once") as publisher:
        assert publisher.wait(30) == 0
    assert latest_ts(clean_redis, settings.METRICS_REDIS_PREFIX) is not None


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan", "99999"])
def test_bad_interval_flag_is_refused_clearly(tmp_path, value):
    with processes.publisher(tmp_path, f"--interval={value}") as publisher:
        assert publisher.wait(30) != 0
    log = log_of(tmp_path)
    assert "--interval" in log
    assert "Traceback" not in log


def test_once_without_redis_fails_clearly(tmp_path):
    url = f"redis://127.0.0.1:{processes.free_port()}/0"
    with processes.publisher(tmp_path, "--once", REDIS_URL=url) as publisher:
        assert publisher.wait(30) != 0
    log = log_of(tmp_path)
    assert "Could not publish to Redis" in log
    assert "Traceback" not in log


def test_publisher_survives_a_redis_restart(tmp_path, settings):
    port = processes.free_port()
    client = redis.Redis(port=port)
    prefix = settings.METRICS_REDIS_PREFIX
    url = f"redis://127.0.0.1:{port}/0"
    with processes.publisher(tmp_path, "--interval", "0.5", REDIS_URL=url) as pub:
        with processes.redis_server(tmp_path, port):
            before = wait_until(
                lambda: latest_ts(client, prefix), 15, "nothing published"
            )
        wait_until(lambda: "Publish failed" in log_of(tmp_path), 10, "no outage log")
        assert pub.poll() is None
        with processes.redis_server(tmp_path, port):
            after = wait_until(
                lambda: latest_ts(client, prefix), 15, "publishing did not resume"
            )
            assert after > before
            assert pub.poll() is None
    assert "publishing resumed" in log_of(tmp_path)
    client.close()


def test_publisher_waits_for_redis_at_start_up(tmp_path, settings):
    port = processes.free_port()
    client = redis.Redis(port=port)
    url = f"redis://127.0.0.1:{port}/0"
    with processes.publisher(tmp_path, "--interval", "0.5", REDIS_URL=url) as pub:
        wait_until(lambda: "Publish failed" in log_of(tmp_path), 10, "no outage log")
        assert pub.poll() is None
        with processes.redis_server(tmp_path, port):
            wait_until(
                lambda: latest_ts(client, settings.METRICS_REDIS_PREFIX),
                15,
                "nothing published once Redis came up",
            )
    client.close()
