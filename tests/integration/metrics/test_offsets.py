"""Offsets: each live snapshot of a host gets the next `seq` of the host's `epoch`
as it is stored, and is held by it for resuming sockets (metrics.store)."""

import json
import time

import pytest
from django.conf import settings

from core.frames import SharedText
from core.redis import close_redis
from metrics.store import (
    load_latest,
    load_missed,
    offsets_key,
    store_backfill,
    store_snapshot,
    stream_key,
)
from tests.support.hosts import HOST, host_event

# Bytes of missed snapshots a resume may take: more than these tests store.
BUDGET = 10**6


@pytest.fixture
async def redis_client(clean_redis):
    yield clean_redis
    await close_redis()


def snapshot_event(ts: float, host: str = HOST) -> dict:
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05.000Z", "data": {}}
    return host_event(snapshot, ts, host)


async def store(ts: float, host: str = HOST) -> dict:
    return await store_snapshot(snapshot_event(ts, host), ttl=60)


async def test_each_snapshot_gets_the_next_seq_of_one_epoch_in_its_text(redis_client):
    stored = [await store(100.0 + n) for n in range(3)]
    assert [event["seq"] for event in stored] == [1, 2, 3]
    epoch = stored[0]["epoch"]
    assert len(epoch) == 16
    assert all(event["epoch"] == epoch for event in stored)
    original = json.loads(snapshot_event(102.0)["text"])
    assert json.loads(stored[2]["text"]) == {**original, "seq": 3, "epoch": epoch}
    assert stored[2]["text"].endswith(f',"seq":3,"epoch":"{epoch}"}}')


async def test_the_latest_is_stored_with_its_offset(redis_client):
    stored = await store(100.0)
    latest = (await load_latest(HOST)).event
    assert latest["text"] == stored["text"]
    assert (latest["seq"], latest["epoch"], latest["ts"]) == (1, stored["epoch"], 100.0)


async def test_each_host_counts_its_own_snapshots(redis_client):
    await store(100.0)
    await store(101.0)
    other = await store(100.0, host="db-1")
    assert other["seq"] == 1


async def test_backfill_takes_no_seq_and_is_not_held(redis_client):
    first = await store(100.0)
    assert await store_backfill(HOST, 90.0, '{"type":"metrics"}')
    second = await store(101.0)
    assert second["seq"] == 2
    missed = await load_missed(HOST, 0, first["epoch"], BUDGET)
    assert missed.texts == [first["text"], second["text"]]


async def test_missed_snapshots_are_those_after_since_oldest_first(redis_client):
    stored = [await store(100.0 + n) for n in range(4)]
    missed = await load_missed(HOST, 1, stored[0]["epoch"], BUDGET)
    assert missed.recovered
    assert missed.texts == [event["text"] for event in stored[1:]]


async def test_nothing_missed_at_the_last_seq_is_recovered(redis_client):
    stored = await store(100.0)
    missed = await load_missed(HOST, 1, stored["epoch"], BUDGET)
    assert (missed.recovered, missed.texts) == (True, [])


@pytest.mark.parametrize("since", [2, 10**17])
async def test_since_ahead_of_the_stream_is_not_recovered(redis_client, since):
    stored = await store(100.0)
    missed = await load_missed(HOST, since, stored["epoch"], BUDGET)
    assert (missed.recovered, missed.texts) == (False, [])


async def test_another_epoch_is_not_recovered(redis_client):
    await store(100.0)
    missed = await load_missed(HOST, 0, "0" * 16, BUDGET)
    assert (missed.recovered, missed.texts) == (False, [])


async def test_a_host_never_stored_is_not_recovered(redis_client):
    missed = await load_missed(HOST, 0, "0" * 16, BUDGET)
    assert not missed.recovered
    assert not missed.state.known


async def test_a_lost_counter_starts_a_new_epoch_and_drops_what_was_held(
    redis_client,
):
    before = await store(100.0)
    await store(101.0)
    redis_client.delete(offsets_key(HOST))
    after = await store(102.0)
    assert after["seq"] == 1
    assert after["epoch"] != before["epoch"]
    assert not (await load_missed(HOST, 1, before["epoch"], BUDGET)).recovered
    assert redis_client.xlen(stream_key(HOST)) == 1


async def test_offsets_redis_lost_start_a_new_epoch_above_the_last_seq_stored(
    redis_client,
):
    # Seq 1 to 5 were stored and sent; the Redis that takes over (a replica promoted
    # after a failover) has only 1 to 3, in the same epoch.
    stored = [await store(100.0 + n) for n in range(5)]
    epoch = stored[0]["epoch"]
    redis_client.hset(offsets_key(HOST), "seq", 3)
    redis_client.xdel(stream_key(HOST), "4-0", "5-0")
    after = [await store(200.0 + n) for n in range(2)]
    assert [event["seq"] for event in after] == [6, 7]
    assert after[0]["epoch"] != epoch
    assert after[1]["epoch"] == after[0]["epoch"]
    # A viewer that had seq 5 is not told it missed nothing.
    assert not (await load_missed(HOST, 5, epoch, BUDGET)).recovered
    resumed = await load_missed(HOST, 6, after[0]["epoch"], BUDGET)
    assert resumed.recovered
    assert [json.loads(text)["seq"] for text in resumed.texts] == [7]


async def test_snapshots_that_arrived_longer_ago_than_history_keeps_are_dropped(
    redis_client,
):
    # Seq 1 of this epoch arrived before the kept window.
    epoch = "0123456789abcdef"
    redis_client.hset(offsets_key(HOST), mapping={"seq": 1, "epoch": epoch})
    too_old = time.time() - settings.METRICS_HISTORY_SECONDS - 1
    key = stream_key(HOST)
    redis_client.xadd(key, {"at": repr(too_old), "text": "{}"}, id="1-0")
    second = await store(101.0)
    assert (second["seq"], second["epoch"]) == (2, epoch)
    assert redis_client.xlen(key) == 1
    assert not (await load_missed(HOST, 0, epoch, BUDGET)).recovered
    missed = await load_missed(HOST, 1, epoch, BUDGET)
    assert (missed.recovered, missed.texts) == (True, [second["text"]])
    assert redis_client.ttl(key) > settings.METRICS_HISTORY_SECONDS


async def test_more_missed_than_the_budget_is_not_recovered(redis_client):
    stored = [await store(100.0 + n) for n in range(3)]
    size = sum(len(event["text"]) for event in stored[1:])
    epoch = stored[0]["epoch"]
    assert (await load_missed(HOST, 1, epoch, size)).recovered
    missed = await load_missed(HOST, 1, epoch, size - 1)
    assert (missed.recovered, missed.texts) == (False, [])


async def test_sockets_resuming_from_one_offset_share_each_replayed_text(redis_client):
    await store(100.0)
    stored = [await store(101.0 + n) for n in range(2)]
    first = await load_missed(HOST, 1, stored[0]["epoch"], BUDGET)
    second = await load_missed(HOST, 2, stored[0]["epoch"], BUDGET)
    assert first.texts == [event["text"] for event in stored]
    # Framed and compressed once in this process, whoever resumes.
    assert second.texts[0] is first.texts[1]
    assert isinstance(first.texts[0], SharedText)
