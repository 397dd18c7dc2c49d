"""/metrics: only for the configured bearer token; the service's families and the
hosts' gauges, read from the latest snapshots in Redis, in a text promtool accepts."""

import asyncio
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.redis import close_redis
from metrics.hostgauges import LOADS, PARTITIONS, SCALARS
from metrics.hosts import create_host
from metrics.store import store_snapshot
from tests.support.hosts import hold_host, host_event

TOKEN = "scrape-token-for-the-tests"
SERVICE_FAMILIES = {
    "monitor_viewer_sockets_open",
    "monitor_viewers",
    "monitor_agents_connected",
    "monitor_snapshots_delivered",
    "monitor_snapshot_delivery_seconds",
    "monitor_slow_clients_dropped",
    "monitor_client_frames_refused",
    "monitor_snapshots_ingested",
    "monitor_snapshots_rejected",
    "monitor_logins",
    "monitor_fleet_events_published",
    "monitor_fleet_frames_built",
    "monitor_fleet_frames_delivered",
    "monitor_fleet_delivery_seconds",
}
HOST_FAMILIES = {
    "host_online",
    "host_last_seen_timestamp_seconds",
    *(name for name, *_ in SCALARS),
    *(name for name, _ in LOADS),
    "host_disk_read_bytes_per_second",
    "host_disk_written_bytes_per_second",
    *(name for name, *_ in PARTITIONS),
}
DATA = {
    "cpu": {"usage_percent": 45.2, "per_core": [45.2], "load_avg": [1.5, 1.2, 0.9]},
    "memory": {
        "usage_percent": 62.4,
        "total_bytes": 17179869184,
        "used_bytes": 10724843520,
        "available_bytes": 6455025664,
        "swap_percent": 3.5,
    },
    "network": {"bytes_sent_per_sec": 125000.0, "bytes_recv_per_sec": 450000.0},
    "disk": {
        "partitions": {
            "/": {"total_bytes": 1000, "used_bytes": 500, "usage_percent": 50.0},
            "/srv": {"total_bytes": 4000, "used_bytes": 1000, "usage_percent": 25.0},
        },
        "io": {"read_bytes_per_sec": 40960.0, "write_bytes_per_sec": 81920.0},
    },
}
# Every figure the gauges read, not measured.
NULLS = {
    "cpu": {"usage_percent": None, "load_avg": None},
    "memory": {"usage_percent": 10.0, "swap_percent": None},
    "network": {"bytes_sent_per_sec": None, "bytes_recv_per_sec": 5.0},
    "disk": {
        "partitions": {"/": {"total_bytes": 1000, "usage_percent": None}},
        "io": {"read_bytes_per_sec": None},
    },
}


@pytest.fixture
def token(settings):
    settings.METRICS_PROMETHEUS_TOKEN = TOKEN
    return TOKEN


def store(host: str, data: dict, published_at: float) -> None:
    """Hold `host` as its sender would and store a snapshot of it as the latest."""

    async def run() -> None:
        try:
            await hold_host(host)
            snapshot = {"type": "metrics", "timestamp": "x", "data": data}
            await store_snapshot(host_event(snapshot, published_at, host), ttl=60)
        finally:
            await close_redis()

    asyncio.run(run())


def scrape(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the text, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_is_404_while_no_token_is_set(client, settings, clean_redis):
    settings.METRICS_PROMETHEUS_TOKEN = ""
    response = client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "header", [None, f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "]
)
def test_metrics_without_the_token_is_401(client, token, clean_redis, header):
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"monitor_" not in response.content


def test_the_output_parses_and_holds_every_family(client, token, clean_redis, db):
    create_host("web-1")
    store("web-1", DATA, time.time())
    families = {
        family.name for family in text_string_to_metric_families(scrape(client))
    }
    assert families >= SERVICE_FAMILIES | HOST_FAMILIES


def test_host_gauges_equal_the_stored_snapshot(client, token, clean_redis, db):
    create_host("web-1")
    published_at = round(time.time(), 3)
    store("web-1", DATA, published_at)
    found = samples(scrape(client))

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted({"host": "web-1", **labels}.items())))]

    assert value("host_cpu_usage_percent") == 45.2
    assert value("host_load1") == 1.5
    assert value("host_load5") == 1.2
    assert value("host_load15") == 0.9
    assert value("host_memory_usage_percent") == 62.4
    assert value("host_memory_used_bytes") == 10724843520
    assert value("host_memory_total_bytes") == 17179869184
    assert value("host_memory_available_bytes") == 6455025664
    assert value("host_swap_usage_percent") == 3.5
    assert value("host_network_sent_bytes_per_second") == 125000.0
    assert value("host_network_received_bytes_per_second") == 450000.0
    assert value("host_disk_read_bytes_per_second") == 40960.0
    assert value("host_disk_written_bytes_per_second") == 81920.0
    assert value("host_filesystem_usage_percent", mount="/") == 50.0
    assert value("host_filesystem_usage_percent", mount="/srv") == 25.0
    assert value("host_filesystem_used_bytes", mount="/srv") == 1000
    assert value("host_filesystem_size_bytes", mount="/srv") == 4000
    assert value("host_online") == 1
    # When it was stored (the server's clock), not the snapshot's own timestamp.
    assert abs(value("host_last_seen_timestamp_seconds") - time.time()) < 5


def test_a_null_figure_gives_no_sample(client, token, clean_redis, db):
    create_host("web-1")
    store("web-1", NULLS, time.time())
    found = {
        (name, dict(labels).get("mount")) for name, labels in samples(scrape(client))
    }
    for absent in (
        "host_cpu_usage_percent",
        "host_load1",
        "host_load15",
        "host_swap_usage_percent",
        "host_network_sent_bytes_per_second",
        "host_disk_read_bytes_per_second",
        "host_disk_written_bytes_per_second",
        "host_memory_used_bytes",
    ):
        assert (absent, None) not in found
    assert ("host_filesystem_usage_percent", "/") not in found
    assert ("host_filesystem_size_bytes", "/") in found
    assert ("host_memory_usage_percent", None) in found
    assert ("host_network_received_bytes_per_second", None) in found


def test_a_host_without_a_snapshot_is_offline_with_no_figures(
    client, token, clean_redis, db
):
    create_host("web-1")
    found = samples(scrape(client))
    assert found[("host_online", (("host", "web-1"),))] == 0
    assert not any(
        dict(labels).get("host") == "web-1" and name != "host_online"
        for name, labels in found
    )


def test_a_login_is_counted_by_outcome(client, token, clean_redis, db):
    key = ("monitor_logins_total", (("outcome", "failure"),))
    before = samples(scrape(client))[key]
    client.post(
        "/api/auth/login",
        {"username": "nobody", "password": "wrong"},
        content_type="application/json",
    )
    assert samples(scrape(client))[key] == before + 1


def test_promtool_accepts_the_output(client, token, clean_redis, db, promtool):
    create_host("web-1")
    store("web-1", DATA, time.time())
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape(client),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
