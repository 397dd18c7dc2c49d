"""GET /api/metrics/history: the recent snapshots, kept bounded in Redis."""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework.test import APIClient

from core.redis import close_redis
from metrics.hosts import create_host, set_enabled
from metrics.store import store_backfill, store_snapshot
from tests.support.hosts import HOST, host_event, host_key
from tests.support.users import watched

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(access_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def publish(ts: float, marker: str, host: str = HOST) -> dict:
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05Z", "data": {}}
    snapshot["data"]["marker"] = marker
    event = host_event(snapshot, ts, host=host)

    async def store():
        await store_snapshot(event, ttl=60)
        await close_redis()

    async_to_sync(store)()
    return {**snapshot, "host": host}


def test_history_returns_recent_snapshots_oldest_first(api, clean_redis):
    now = time.time()
    published = [publish(now - age, f"m{age}") for age in (30, 20, 10)]
    response = api.get("/api/metrics/history?seconds=60")
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["seconds"] == 60
    assert body["snapshots"] == published


def test_history_honours_the_window(api, clean_redis):
    now = time.time()
    publish(now - 50, "old")
    recent = publish(now - 5, "recent")
    body = json.loads(api.get("/api/metrics/history?seconds=20").content)
    assert body["snapshots"] == [recent]


def test_history_is_trimmed_to_the_kept_window(clean_redis):
    now = time.time()
    publish(now - settings.METRICS_HISTORY_SECONDS - 10, "too old")
    publish(now, "fresh")
    assert clean_redis.zcard(host_key("history")) == 1


def test_a_host_is_kept_once_per_timestamp(clean_redis):
    now = time.time()
    publish(now, "first")
    publish(now, "again")

    async def backfill():
        added = await store_backfill(HOST, now, '{"type":"metrics"}')
        await close_redis()
        return added

    assert async_to_sync(backfill)() is False
    assert clean_redis.zcard(host_key("history")) == 1


def test_history_of_a_named_host_holds_only_its_snapshots(api, clean_redis):
    create_host("db-1")
    watched("db-1")
    now = time.time()
    publish(now - 3, "default")
    theirs = publish(now - 2, "db", host="db-1")
    body = json.loads(api.get("/api/metrics/history?host=db-1&seconds=60").content)
    assert body["host"] == "db-1"
    assert body["snapshots"] == [theirs]


@pytest.mark.parametrize("name", ["nope", "UPPER", "", "a/b"])
def test_history_of_an_unknown_host_is_404(api, clean_redis, name):
    response = api.get(f"/api/metrics/history?host={name}")
    assert response.status_code == 404


def test_history_of_a_disabled_host_is_404(api, clean_redis):
    host, _ = create_host("db-1")
    watched("db-1")
    set_enabled(host, False)
    assert api.get("/api/metrics/history?host=db-1").status_code == 404


def test_history_defaults_to_everything_kept(api, clean_redis):
    publish(time.time() - 1, "one")
    body = json.loads(api.get("/api/metrics/history").content)
    assert body["seconds"] == settings.METRICS_HISTORY_SECONDS
    assert len(body["snapshots"]) == 1


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "100000", ""])
def test_history_rejects_a_bad_window(api, clean_redis, value):
    response = api.get(f"/api/metrics/history?seconds={value}")
    assert response.status_code == 400
    assert "seconds" in response.json()


def test_history_needs_a_token(clean_redis, db):
    response = APIClient().get("/api/metrics/history")
    assert response.status_code == 401
