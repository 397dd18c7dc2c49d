"""Deleting by prefix deletes all of a prefix's keys and nothing else."""

import pytest
from django.conf import settings

from core.redis import DELETE_BATCH, delete_by_prefix


@pytest.fixture
def prefix(clean_redis):
    """A prefix under this run's own, with a glob character in it (the run's
    keys, these among them, are deleted after the test)."""
    return f"{settings.METRICS_REDIS_PREFIX}:delete*"


def test_every_key_of_the_prefix_is_deleted_in_batches(redis_sync, prefix):
    count = DELETE_BATCH * 2 + 7
    redis_sync.mset({f"{prefix}:{number}": "x" for number in range(count)})
    assert delete_by_prefix(redis_sync, prefix) == count
    assert list(redis_sync.scan_iter(match=f"{prefix[:-1]}*")) == []


def test_keys_outside_the_prefix_are_kept(redis_sync, prefix):
    # The glob character in the prefix matches only itself.
    neighbours = [f"{prefix[:-1]}x:kept", f"{prefix}kept", prefix]
    for key in [*neighbours, f"{prefix}:gone"]:
        redis_sync.set(key, "x", ex=60)
    assert delete_by_prefix(redis_sync, prefix) == 1
    assert all(redis_sync.get(key) == b"x" for key in neighbours)
