"""/healthz and /readyz, for load balancers and orchestrators."""

import time

import pytest
from asgiref.sync import async_to_sync

from core.redis import close_redis
from metrics.store import save_heartbeat
from tests.support.processes import free_port

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_database_and_redis(client, clean_redis):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok"},
        "publisher_last_tick_age_seconds": None,
    }


def test_readyz_reports_the_publishers_last_tick(client, clean_redis):
    async def beat():
        await save_heartbeat(time.time() - 12, interval=5)
        await close_redis()

    async_to_sync(beat)()
    age = client.get("/readyz").json()["publisher_last_tick_age_seconds"]
    assert 11 <= age <= 20


def test_readyz_is_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"] == {"database": "ok", "redis": "unavailable"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_refuse_other_methods(client, path):
    assert client.post(path).status_code == 405
