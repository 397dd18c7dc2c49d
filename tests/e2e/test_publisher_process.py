"""`manage.py publish_metrics` as a real process: flags, signals, Redis outages."""

import json
import signal

import pytest
import redis

from tests.support import processes
from tests.support.clients import open_socket, receive_json
from tests.support.hosts import HOST
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def latest_ts(client: redis.Redis, prefix: str) -> float | None:
    try:
        raw = client.get(f"{prefix}:host:{HOST}:latest")
    except redis.ConnectionError:
        return None
    return json.loads(raw)["ts"] if raw else None


def log_of(tmp_path) -> str:
    return (tmp_path / "publisher.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_the_publisher_cleanly(
    tmp_path, server, access_token, signum
):
    ws = await open_socket(server, access_token)
    with processes.publisher(tmp_path, "--interval", "0.5") as publisher:
        assert (await receive_json(ws))["type"] == "metrics"
        publisher.send_signal(signum)
        assert publisher.wait(10) == 0
    await ws.close()
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


async def test_publishing_survives_a_redis_restart(tmp_path, access_token):
    service = processes.service_on_own_redis(tmp_path, interval="0.5")
    with service as (redis_server, web_port, pub):
        ws = await open_socket(web_port, access_token)
        before = await receive_json(ws)
        redis_server.stop()
        await eventually(
            lambda: "Redis unavailable" in log_of(tmp_path), 10, "no outage log"
        )
        redis_server.start()
        after = await receive_json(ws, within=20)
        # The host went offline in the outage (a host frame), and came back.
        while after["type"] != "metrics" or after["timestamp"] == before["timestamp"]:
            after = await receive_json(ws, within=20)
        assert pub.poll() is None
        await ws.close()
    assert "publishing resumed" in log_of(tmp_path)


async def test_publisher_waits_for_redis_at_start_up(tmp_path, access_token):
    port = processes.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with processes.publisher(tmp_path, "--interval", "0.5", REDIS_URL=url) as pub:
        await eventually(
            lambda: "Redis unavailable" in log_of(tmp_path), 10, "no outage log"
        )
        assert pub.poll() is None
        with (
            processes.redis_server(tmp_path, port),
            processes.daphne(tmp_path, REDIS_URL=url) as (_, web_port),
        ):
            ws = await open_socket(web_port, access_token)
            assert (await receive_json(ws))["type"] == "metrics"
            await ws.close()
