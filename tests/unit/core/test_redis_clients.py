"""Every Redis client and pool is made by core/redis.py from REDIS_URL: a server's
URL as redis-py reads it, a Sentinel URL as Sentinel-managed pools, for the async
and blocking clients, Django's cache and the channel layer alike. Made, not
connected: no network here."""

import redis
import redis.sentinel
from channels_redis.utils import create_pool
from redis import asyncio as aioredis
from redis.asyncio import sentinel as aiosentinel

from core.cache import PrefixedRedisCache
from core.redis import (
    POOL_WAIT,
    SentinelBlockingConnectionPool,
    channel_layer_host,
    make_async_pool,
    make_sync_client,
    make_sync_pool,
)
from core.redis_urls import SENTINEL_TIMEOUT

OPTIONS = {"socket_timeout": None, "socket_connect_timeout": 5, "max_connections": 77}
SENTINELS = "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26380/mymaster/2"


def sentinel_addresses(manager) -> list[tuple[str, int]]:
    return [
        (
            client.connection_pool.connection_kwargs["host"],
            client.connection_pool.connection_kwargs["port"],
        )
        for client in manager.sentinels
    ]


def test_a_server_url_is_read_by_redis_py_as_before():
    url = "redis://:pw@10.0.0.9:6380/4"
    pool = make_sync_pool(url, OPTIONS)
    assert type(pool) is redis.ConnectionPool
    assert pool.connection_kwargs["host"] == "10.0.0.9"
    assert pool.connection_kwargs["db"] == 4
    assert pool.max_connections == 77
    async_pool = make_async_pool(url, OPTIONS)
    assert type(async_pool) is aioredis.BlockingConnectionPool
    assert async_pool.timeout == POOL_WAIT
    assert channel_layer_host(url, OPTIONS) == {"address": url, **OPTIONS}


def test_a_unix_socket_url_still_makes_a_unix_socket_connection():
    pool = make_sync_pool("unix:///run/redis.sock?db=1", {})
    assert pool.connection_class is redis.UnixDomainSocketConnection
    assert pool.connection_kwargs["path"] == "/run/redis.sock"


def test_a_sentinel_url_makes_sentinel_managed_pools_for_both_clients():
    pool = make_sync_pool(SENTINELS, OPTIONS)
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.is_master
    assert sentinel_addresses(pool.sentinel_manager) == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
    ]
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"
    assert pool.max_connections == 77

    async_pool = make_async_pool(SENTINELS, OPTIONS)
    assert isinstance(async_pool, aiosentinel.SentinelConnectionPool)
    assert isinstance(async_pool, aioredis.BlockingConnectionPool)
    assert async_pool.timeout == POOL_WAIT
    assert async_pool.service_name == "mymaster"
    assert async_pool.connection_kwargs["db"] == 2
    sentinel = async_pool.sentinel_manager.sentinels[0].connection_pool
    assert sentinel.connection_kwargs["socket_timeout"] == SENTINEL_TIMEOUT


def test_the_async_sentinel_pool_waits_for_a_connection_like_the_blocking_pool():
    # Blocking's get_connection and release, Sentinel's address lookup and reset.
    mro = SentinelBlockingConnectionPool.__mro__
    assert mro.index(aiosentinel.SentinelConnectionPool) < mro.index(
        aioredis.BlockingConnectionPool
    )
    assert (
        SentinelBlockingConnectionPool.get_connection
        is aioredis.BlockingConnectionPool.get_connection
    )


def test_the_channel_layer_is_given_the_sentinels_in_channels_redis_own_form():
    host = channel_layer_host(SENTINELS, OPTIONS)
    assert host["master_name"] == "mymaster"
    assert host["sentinels"] == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    pool = create_pool(host)
    assert isinstance(pool, aiosentinel.SentinelConnectionPool)
    assert pool.connection_kwargs["password"] == "pw"
    assert pool.max_connections == 77
    assert sentinel_addresses(pool.sentinel_manager) == host["sentinels"]


def test_the_cache_takes_a_sentinel_url_whole_and_makes_its_pools_here():
    cache = PrefixedRedisCache(SENTINELS, {"OPTIONS": dict(OPTIONS)})
    assert cache.location == SENTINELS
    pool = cache._cache.get_client(write=True).connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    scripts = cache.redis.connection_pool
    assert isinstance(scripts, redis.sentinel.SentinelConnectionPool)


def test_the_cache_on_a_server_url_uses_redis_pys_own_pool():
    cache = PrefixedRedisCache("redis://10.0.0.9:6379/0", {"OPTIONS": dict(OPTIONS)})
    pool = cache._cache.get_client(write=True).connection_pool
    assert type(pool) is redis.ConnectionPool
    assert pool.connection_kwargs["host"] == "10.0.0.9"


def test_a_sync_client_owns_its_pool():
    client = make_sync_client(SENTINELS, OPTIONS)
    assert client.auto_close_connection_pool
    assert isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
